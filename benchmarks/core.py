#!/usr/bin/env python3
"""Core benchmarks of safepoint: save latency against the raw durable-write floor, bytes stored, scaling.

    python benchmarks/core.py                  # the full run (a few minutes)
    python benchmarks/core.py --quick          # a smoke test with smaller counts (under a minute)
    python benchmarks/core.py --out section.md # also write the results as a Markdown section
    python benchmarks/core.py --strict         # exit with status 1 when a target is missed

Four workloads, each checked against a target (PASS/FAIL):

1. Durable save of a 1 KiB and a 64 KiB dict state as the FIRST checkpoint of a fresh session (a keyframe),
   for the file store and the SQLite store, against the raw floor of writing the same canonical bytes
   durably (file: temp + fsync + rename + directory fsync; SQLite: one WAL/synchronous=FULL insert
   transaction). Also steady-state saves (~1% of the state changed per save). Target: store/raw <= 1.5.
2. A 1,000-step conversation gaining one ~500-byte message per step: bytes stored after 200 and 1,000 steps
   against the state's JSON size. Target: <= 3x.
3. Scaling with history length: save latency at step ~1,000 against step ~10, and head load time after
   10,000 checkpoints against 10, with a fixed-size (~64 KiB) state. Target: ratio <= 1.3.
4. A 16 MiB state with one 1 KiB change per save: bytes written per save (target: median <= 256 KiB) and save
   time against a full durable write of the state (target: median <= 0.3x).

Stores live in a temporary directory on the same filesystem as the working directory (never a tmpfs) and
are removed afterwards. The workloads are seeded: every run saves the same states.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import safepoint as sp
from safepoint.core import codec
from safepoint.core.history import KEYFRAME_EVERY

REPO_ROOT = Path(__file__).resolve().parent.parent
KIB = 1024
MIB = 1024 * 1024
LANGGRAPH_SQLITE_MB = 361  # LangGraph SqliteSaver on the 1,000-step chat (measured beforehand, quoted; not re-run)

console = Console(width=None if sys.stdout.isatty() else 200)


class FsyncCounter:
    """Counts the syncs made from Python: `os.fsync` calls (the file store's and the raw floor's) and the file
    store's `syncfs` calls, if it has them. SQLite's own syncs happen inside the library and are not seen."""

    def __init__(self) -> None:
        self.fsync = 0
        self.syncfs = 0
        self._real_fsync = os.fsync

    def _fsync(self, fd: Any) -> None:
        self.fsync += 1
        self._real_fsync(fd)

    def install(self) -> None:
        os.fsync = self._fsync  # type: ignore[assignment]
        from safepoint.stores import files

        real_syncfs = getattr(files, "_syncfs", None)
        if callable(real_syncfs):

            def counting_syncfs(*args: Any, **kwargs: Any) -> Any:
                self.syncfs += 1
                return real_syncfs(*args, **kwargs)

            files._syncfs = counting_syncfs

    def mark(self) -> tuple[int, int]:
        return self.fsync, self.syncfs

    def since(self, mark: tuple[int, int]) -> tuple[int, int]:
        return self.fsync - mark[0], self.syncfs - mark[1]


def sync_label(counts: list[tuple[int, int]]) -> str:
    """`3 fsync` or `8 (3-9) fsync` (median and range), `+ 1 syncfs` when the store used syncfs."""
    fsyncs = [c[0] for c in counts]
    syncfs = [c[1] for c in counts]
    text = f"{median(fsyncs):g}"
    if min(fsyncs) != max(fsyncs):
        text += f" ({min(fsyncs)}-{max(fsyncs)})"
    text += " fsync"
    if any(syncfs):
        text += f" + {median(syncfs):g} syncfs" + (
            f" ({min(syncfs)}-{max(syncfs)})" if min(syncfs) != max(syncfs) else ""
        )
    return text


FSYNC = FsyncCounter()


# --------------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    quick: bool
    first_saves: int  # timed first-checkpoint saves per (store, size)
    steady_saves: int  # timed steady-state saves per (store, size)
    warmup: int  # untimed iterations before each timed loop
    chat_steps: tuple[int, ...]  # steps at which the chat's storage is measured (the last is the length)
    latency_early: tuple[int, int]  # inclusive window of steps for "early" save latency
    latency_late: tuple[int, int]  # inclusive window of steps for "late" save latency
    long_history: int  # checkpoints before the "long history" head load
    short_history: int  # checkpoints before the "short history" head load
    loads: int  # head loads per measurement
    ab_loads: int  # loads per side in the side-by-side diagnostic
    big_docs: int  # documents in the big state (16,384 x ~1 KiB = ~16 MiB)
    big_saves: int  # 1 KiB-change saves of the big state
    big_full_writes: int  # raw full durable writes of the big state


FULL = Settings(
    quick=False,
    first_saves=200,
    steady_saves=200,
    warmup=5,
    chat_steps=(200, 1000),
    latency_early=(5, 15),
    latency_late=(995, 1005),
    long_history=10_000,
    short_history=10,
    loads=20,
    ab_loads=100,
    big_docs=16 * 1024,
    big_saves=64,
    big_full_writes=5,
)

QUICK = Settings(
    quick=True,
    first_saves=20,
    steady_saves=20,
    warmup=2,
    chat_steps=(50, 200),
    latency_early=(5, 15),
    latency_late=(95, 105),
    long_history=300,
    short_history=10,
    loads=10,
    ab_loads=20,
    big_docs=2 * 1024,
    big_saves=8,
    big_full_writes=3,
)


# --------------------------------------------------------------------------------------------------------
# Report: sections of tables and notes, rendered to the terminal (rich) and to Markdown
# --------------------------------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    measured: str
    limit: str
    passed: bool


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)


@dataclass
class Report:
    sections: list[Section] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, value: float, limit: float, fmt: Callable[[float], str]) -> str:
        passed = value <= limit
        self.checks.append(Check(name, fmt(value), "<= " + fmt(limit), passed))
        return "PASS" if passed else "FAIL"


def verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


# --------------------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------------------
def ms(seconds: float) -> str:
    value = seconds * 1e3
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def size(n: float) -> str:
    if abs(n) >= MIB:
        return f"{n / MIB:.2f} MiB"
    if abs(n) >= KIB:
        return f"{n / KIB:.1f} KiB"
    return f"{n:.0f} B"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def median(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[8]


# --------------------------------------------------------------------------------------------------------
# Machine description
# --------------------------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _virtualisation() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Hypervisor vendor:"):
                return line.split(":", 1)[1].strip() + " virtual machine"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        if " hypervisor" in Path("/proc/cpuinfo").read_text():
            return "virtual machine"
    except OSError:
        pass
    return ""


def filesystem_of(path: Path) -> dict[str, str]:
    """The mount holding `path`: mount point, filesystem type, source device and options (Linux only)."""
    st_dev = os.stat(path).st_dev
    dev = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    best: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return {"type": "unknown", "mount": "?", "source": "?", "options": ""}
    text = str(path.resolve())
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) < 6 or len(rest) < 2:
            continue
        mount = fields[4]
        inside = text == mount or text.startswith(mount.rstrip("/") + "/")
        if fields[2] == dev and inside and len(mount) >= len(best.get("mount", "")):
            best = {"mount": mount, "type": rest[0], "source": rest[1], "options": fields[5]}
    return best or {"type": "unknown", "mount": "?", "source": "?", "options": ""}


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "safepoint"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return f"{rev}{' + uncommitted or untracked library files' if dirty else ''}" if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe_machine(tmp_base: Path) -> list[str]:
    fs = filesystem_of(tmp_base)
    virt = _virtualisation()
    load = os.getloadavg()
    return [
        f"CPU: {_cpu_model()} ({platform.machine()}{', ' + virt + ' guest' if virt else ''}), {os.cpu_count()} cores",
        f"RAM: {_ram_bytes() / 2**30:.1f} GiB",
        f"Stores in: `{tmp_base}` on {fs['type']} ({fs['source']} mounted at {fs['mount']}, {fs['options']})",
        f"OS: {platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}",
        f"safepoint {sp.__version__}, git {_git_revision()}",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    ]


def choose_tmp_base(requested: str | None) -> Path:
    """A directory for stores on the same filesystem as the working directory, and not a tmpfs."""
    if requested:
        return Path(requested).resolve()
    work = Path.cwd()
    candidate = Path(tempfile.gettempdir())
    same_device = os.stat(candidate).st_dev == os.stat(work).st_dev
    if same_device and filesystem_of(candidate).get("type") not in ("tmpfs", "ramfs"):
        return candidate
    return work


# --------------------------------------------------------------------------------------------------------
# Workload data: realistic JSON made of words
# --------------------------------------------------------------------------------------------------------
class Words:
    """A seeded vocabulary of pseudo-words with a Zipf-like frequency, and text made of them."""

    def __init__(self, rng: random.Random, count: int = 5000) -> None:
        syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "sh", "qu", "st", "er", "an"]
        vocab: set[str] = set()
        while len(vocab) < count:
            vocab.add("".join(rng.choice(syllables) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
        self.vocab = sorted(vocab)
        rng.shuffle(self.vocab)
        self.weights = [1.0 / (rank + 1) ** 0.9 for rank in range(count)]
        self.rng = rng

    def text(self, length: int) -> str:
        """About `length` characters of words; exactly `length` (truncated) so replacements keep the size."""
        out = " ".join(self.rng.choices(self.vocab, self.weights, k=max(4, length // 4)))
        while len(out) < length:
            out += " " + " ".join(self.rng.choices(self.vocab, self.weights, k=16))
        return out[:length]

    def word(self) -> str:
        return self.rng.choices(self.vocab, self.weights)[0]


def make_agent_state(target: int, words: Words) -> dict[str, Any]:
    """A nested dict of lists and strings that looks like an agent's state, about `target` bytes of JSON."""
    rng = words.rng
    scale = 1 if target <= 4 * KIB else 4
    state: dict[str, Any] = {
        "mission": {"goal": words.text(40), "done": [], "remaining": [], "reasoning": words.text(60)},
        "tools": {"cursors": {}, "results": []},
        "model": {"name": "model-large-1", "temperature": 0.2, "prompts": {"system": words.text(80)}},
        "context": {"summary": words.text(60 * scale)},
        "data": {"step": 0, "notes": []},
    }
    adders = [
        lambda: state["mission"]["done"].append(words.text(30 * scale)),
        lambda: state["mission"]["remaining"].append(words.text(30 * scale)),
        lambda: state["tools"]["cursors"].__setitem__(words.word() + str(rng.randrange(100)), rng.randrange(10**6)),
        lambda: state["tools"]["results"].append(
            {
                "tool": words.word(),
                "args": {"query": words.text(20 * scale), "limit": rng.randrange(1, 50)},
                "output": words.text(100 * scale),
                "ok": rng.random() > 0.1,
            }
        ),
        lambda: state["data"]["notes"].append({"by": words.word(), "text": words.text(40 * scale)}),
    ]
    i = 0
    while len(codec.dumps(state)) < target:
        adders[i % len(adders)]()
        if i % len(adders) == 3:  # tool results dominate real states: add a second one in each round
            adders[3]()
        i += 1
    return state


def string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every string leaf of a JSON value."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from string_leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from string_leaves(child, (*path, index))
    elif isinstance(value, str):
        yield path


def _set(root: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        root = root[step]
    root[path[-1]] = value


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


class Mutator:
    """Changes a state in place: random string leaves replaced by new text of the same length (fixed size)."""

    def __init__(self, state: dict[str, Any], words: Words) -> None:
        self.state = state
        self.words = words
        self.leaves = list(string_leaves(state))

    def change_bytes(self, at_least: int) -> int:
        """Replace leaves until at least `at_least` characters are new; bump data.step. Returns the count."""
        changed = 0
        while changed < at_least:
            path = self.words.rng.choice(self.leaves)
            old = _get(self.state, path)
            _set(self.state, path, self.words.text(len(old)))
            changed += len(old)
        self.state["data"]["step"] += 1
        return changed

    def change_values(self, count: int) -> None:
        for _ in range(count):
            path = self.words.rng.choice(self.leaves)
            _set(self.state, path, self.words.text(len(_get(self.state, path))))
        self.state["data"]["step"] += 1


# --------------------------------------------------------------------------------------------------------
# Raw durable-write floors
# --------------------------------------------------------------------------------------------------------
class RawFile:
    """The floor of the file store: temp file in the target directory, write, fsync, rename, fsync directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        _fsync_dir(directory.parent)

    def write(self, name: str, data: bytes) -> None:
        tmp = self.dir / f".tmp-{name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, self.dir / name)
        _fsync_dir(self.dir)

    def close(self) -> None:
        pass


class RawSQLite:
    """The floor of the SQLite store: one INSERT per transaction, WAL, synchronous=FULL."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB)")

    def write(self, name: str, data: bytes) -> None:
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO kv VALUES (?, ?)", (name, data))
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------------
# Stores and their sizes
# --------------------------------------------------------------------------------------------------------
@dataclass
class Bench:
    """One store of a given kind in its own temp directory, with its raw floor next to it."""

    kind: str  # "file", "sqlite" or "memory"
    root: Path
    repo: sp.Repository = field(init=False)
    raw: RawFile | RawSQLite | None = field(init=False, default=None)
    sessions: list[sp.Session] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.kind == "file":
            self.repo = sp.open(str(self.root / "store"))
            self.raw = RawFile(self.root / "raw")
        elif self.kind == "sqlite":
            self.repo = sp.open(f"sqlite:///{self.root / 'store.db'}")
            self.raw = RawSQLite(self.root / "raw.db")
        else:
            self.repo = sp.open("memory://")

    @property
    def db_path(self) -> Path:
        return self.root / "store.db"

    def session(self, session_id: str) -> sp.Session:
        """Open a session (with its lease, as an agent would); closed with the bench."""
        opened = self.repo.session(session_id, schema=dict)
        self.sessions.append(opened)
        return opened

    def close(self) -> None:
        for opened in self.sessions:  # close() twice is harmless
            opened.close()  # stops the lease heartbeat before the store is removed
        self.repo.close()
        if self.raw is not None:
            self.raw.close()


@dataclass
class Usage:
    apparent: int = 0  # sum of file sizes (or of value lengths)
    allocated: int = 0  # disk blocks of the files
    files: int = 0
    dirs: int = 0
    dir_allocated: int = 0
    logical: int = 0  # SQLite: sum of key and value lengths in the table


def file_usage(root: Path) -> Usage:
    usage = Usage()
    for dirpath, _, filenames in os.walk(root):
        st = os.stat(dirpath)
        usage.dirs += 1
        usage.dir_allocated += st.st_blocks * 512
        for name in filenames:
            st = os.stat(os.path.join(dirpath, name))
            usage.files += 1
            usage.apparent += st.st_size
            usage.allocated += st.st_blocks * 512
    return usage


def sqlite_usage(path: Path, *, checkpoint: bool = True) -> Usage:
    """db + wal file sizes after a TRUNCATE checkpoint, and the logical bytes held in the kv table."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if checkpoint:
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if busy:
                console.print(f"[yellow]wal_checkpoint(TRUNCATE) on {path} was blocked (busy={busy})")
        sql = "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM kv"
        count, logical = conn.execute(sql).fetchone()
    finally:
        conn.close()
    usage = Usage(files=count, logical=logical)
    for suffix in ("", "-wal"):
        part = Path(str(path) + suffix)
        if part.exists():
            st = os.stat(part)
            usage.apparent += st.st_size
            usage.allocated += st.st_blocks * 512
    return usage


def memory_usage(repo: sp.Repository) -> Usage:
    store = repo.store
    keys = store.list("")
    return Usage(apparent=sum(len(store.get(k) or b"") for k in keys), files=len(keys))


# --------------------------------------------------------------------------------------------------------
# 1. Durable save against the raw floor
# --------------------------------------------------------------------------------------------------------
def bench_first_saves(bench: Bench, states: list[dict[str, Any]], warmup: int, tag: str) -> dict[str, Any]:
    """Each state saved as the first checkpoint of a new session, alternating with the raw write of its bytes."""
    assert bench.raw is not None
    store_times: list[float] = []
    raw_times: list[float] = []
    open_times: list[float] = []
    store_fsyncs: list[tuple[int, int]] = []
    raw_fsyncs: list[tuple[int, int]] = []
    store_cpu: list[float] = []
    raw_cpu: list[float] = []
    keyframes = 0
    gc.collect()
    for i, state in enumerate(states):
        blob = codec.dumps(state)
        t0 = time.perf_counter()
        session = bench.session(f"{tag}-{i}")
        t1 = time.perf_counter()
        session.state.update(state)

        def store_save(session: sp.Session = session) -> float:
            mark = FSYNC.mark()
            start, start_cpu = time.perf_counter(), time.process_time()
            checkpoint = session.save(step="first")
            elapsed = time.perf_counter() - start
            store_cpu.append(time.process_time() - start_cpu)
            store_fsyncs.append(FSYNC.since(mark))
            assert checkpoint.seq == 1
            return elapsed if checkpoint.keyframe else -elapsed

        def raw_save(i: int = i, blob: bytes = blob) -> float:
            mark = FSYNC.mark()
            start, start_cpu = time.perf_counter(), time.process_time()
            bench.raw.write(f"{tag}-{i}", blob)  # type: ignore[union-attr]
            elapsed = time.perf_counter() - start
            raw_cpu.append(time.process_time() - start_cpu)
            raw_fsyncs.append(FSYNC.since(mark))
            return elapsed

        # Alternate the order so neither side always runs right after the other's fsyncs.
        if i % 2:
            raw_t, store_t = raw_save(), store_save()
        else:
            store_t, raw_t = store_save(), raw_save()
        session.close()  # an agent's session ends; 200 open ones would renew 200 leases in the background
        if i >= warmup:
            keyframes += store_t > 0
            store_times.append(abs(store_t))
            raw_times.append(raw_t)
            open_times.append(t1 - t0)
    encode_times = []
    for state in states[warmup:]:  # after the saves (caches warm): what no raw floor pays, a save must
        start = time.perf_counter()
        hashlib.sha256(codec.dumps(state)).digest()
        encode_times.append(time.perf_counter() - start)
    return {
        "store": store_times,
        "raw": raw_times,
        "encode": encode_times,
        "open": open_times,
        "fsyncs": (store_fsyncs[warmup:], raw_fsyncs[warmup:]),
        "cpu": (store_cpu[warmup:], raw_cpu[warmup:]),
        "keyframes": keyframes,
        "size": len(codec.dumps(states[0])),
    }


def bench_steady_saves(
    bench: Bench, state: dict[str, Any], words: Words, saves: int, warmup: int, tag: str
) -> dict[str, Any]:
    """A session with a head; ~1% of the state changed before each save. Raw floor: the full state rewritten."""
    assert bench.raw is not None
    session = bench.session(tag)
    session.state.update(state)
    session.save(step="start")
    mutator = Mutator(session.state, words)
    full = len(codec.dumps(session.state))
    store_times: list[float] = []
    raw_times: list[float] = []
    store_fsyncs: list[tuple[int, int]] = []
    raw_fsyncs: list[tuple[int, int]] = []
    store_cpu: list[float] = []
    raw_cpu: list[float] = []
    keyframes = 0
    gc.collect()
    for i in range(saves + warmup):
        mutator.change_bytes(max(1, full // 100))
        blob = codec.dumps(session.state)
        mark = FSYNC.mark()
        start = time.perf_counter()
        start_cpu = time.process_time()
        checkpoint = session.save(step="steady")
        store_t = time.perf_counter() - start
        cpu_t = time.process_time() - start_cpu
        middle = FSYNC.mark()
        start, start_cpu = time.perf_counter(), time.process_time()
        bench.raw.write(f"{tag}-{i}", blob)
        raw_t = time.perf_counter() - start
        raw_cpu_t = time.process_time() - start_cpu
        if i >= warmup:
            store_times.append(store_t)
            raw_times.append(raw_t)
            store_fsyncs.append((middle[0] - mark[0], middle[1] - mark[1]))
            raw_fsyncs.append(FSYNC.since(middle))
            store_cpu.append(cpu_t)
            raw_cpu.append(raw_cpu_t)
            keyframes += checkpoint.keyframe
    return {
        "store": store_times,
        "raw": raw_times,
        "fsyncs": (store_fsyncs, raw_fsyncs),
        "cpu": (store_cpu, raw_cpu),
        "keyframes": keyframes,
        "size": full,
    }


def fsyncs(kind: str, counts: tuple[list[tuple[int, int]], list[tuple[int, int]]]) -> str:
    if kind != "file":
        return "(inside SQLite)"
    return f"{sync_label(counts[0])} / {sync_label(counts[1])}"


def section_saves(settings: Settings, tmp: Path, report: Report) -> None:
    n = settings.first_saves + settings.warmup
    section = Section(
        "1. Durable save against the raw durable-write floor",
        [
            "case",
            "store",
            "state",
            "save median",
            "save p90",
            "raw median",
            "raw p90",
            "ratio",
            "target",
            "result",
            "syncs per save: store / raw",
        ],
    )
    rng = random.Random(1)
    words = Words(rng)
    states = {sz: [make_agent_state(sz, words) for _ in range(n)] for sz in (KIB, 64 * KIB)}
    extra: list[list[str]] = []
    for kind in ("file", "sqlite"):
        for sz, label in ((KIB, "1 KiB"), (64 * KIB, "64 KiB")):
            bench = Bench(kind, Path(tempfile.mkdtemp(prefix=f"first-{kind}-", dir=tmp)))
            try:
                res = bench_first_saves(bench, states[sz], settings.warmup, f"first{sz}")
            finally:
                bench.close()
                shutil.rmtree(bench.root)
            r = median(res["store"]) / median(res["raw"])
            status = report.check(f"first save, {kind} store, {label}: store/raw", r, 1.5, ratio)
            section.rows.append(
                [
                    "first checkpoint",
                    kind,
                    f"{label} ({res['size']:,} B)",
                    ms(median(res["store"])),
                    ms(p90(res["store"])),
                    ms(median(res["raw"])),
                    ms(p90(res["raw"])),
                    ratio(r),
                    "<= 1.50x",
                    status,
                    fsyncs(kind, res["fsyncs"]),
                ]
            )
            paired = median([a / b for a, b in zip(res["store"], res["raw"], strict=True)])
            encode = median(res["encode"])
            extra.append(
                [
                    "first checkpoint",
                    kind,
                    label,
                    f"{ms(median(res['cpu'][0]))} / {ms(median(res['cpu'][1]))}",
                    ratio(paired),
                    f"{ms(encode)}; {ratio(median(res['store']) / (median(res['raw']) + encode))}",
                    f"{ms(median(res['open']))} / {ms(p90(res['open']))}",
                    f"{res['keyframes']} of {len(res['store'])}",
                ]
            )
            console.print(f"  first save {kind:6} {label:6}: {ms(median(res['store']))}, raw {ms(median(res['raw']))}")
    for kind in ("file", "sqlite"):
        for sz, label in ((KIB, "1 KiB"), (64 * KIB, "64 KiB")):
            bench = Bench(kind, Path(tempfile.mkdtemp(prefix=f"steady-{kind}-", dir=tmp)))
            try:
                state = codec.loads(codec.dumps(states[sz][0]))
                res = bench_steady_saves(bench, state, words, settings.steady_saves, settings.warmup, f"steady{sz}")
            finally:
                bench.close()
                shutil.rmtree(bench.root)
            r = median(res["store"]) / median(res["raw"])
            section.rows.append(
                [
                    f"steady state, 1% changed ({res['keyframes']}/{settings.steady_saves} keyframes)",
                    kind,
                    f"{label} ({res['size']:,} B)",
                    ms(median(res["store"])),
                    ms(p90(res["store"])),
                    ms(median(res["raw"])),
                    ms(p90(res["raw"])),
                    ratio(r),
                    "(none)",
                    "",
                    fsyncs(kind, res["fsyncs"]),
                ]
            )
            paired = median([a / b for a, b in zip(res["store"], res["raw"], strict=True)])
            cpu = f"{ms(median(res['cpu'][0]))} / {ms(median(res['cpu'][1]))}"
            extra.append(["steady state", kind, label, cpu, ratio(paired), "-", "-", "-"])
            console.print(f"  steady save {kind:6} {label:6}: {ms(median(res['store']))}, raw {ms(median(res['raw']))}")
    section.notes += [
        f"Median and p90 of {settings.first_saves} saves after {settings.warmup} untimed warm-up saves. "
        "First checkpoint: each save is `seq` 1 of a new session (`schema=dict`), so the whole state is "
        "written as a keyframe; every state has different words, so no object is shared between them. "
        "`save()` alone is timed; opening the session (which durably writes its `sessions/<id>` record) is "
        "timed apart below.",
        "Raw floor: the state's canonical bytes (`codec.dumps(state)`, computed outside the timing) written "
        "durably: file = temp file in the same directory + fsync + `os.rename` + fsync of the directory; "
        "SQLite = `INSERT` into `(k TEXT PRIMARY KEY, v BLOB)` in its own transaction, `journal_mode=WAL`, "
        "`synchronous=FULL`. Store and raw writes alternate, in the same store directory's filesystem.",
        "Syncs per save: the median (and range) of `os.fsync` calls made by one save of the file store "
        "(counted by wrapping `os.fsync`; `syncfs` calls, which the file store makes for commits with many "
        "objects, are counted apart), against the raw floor's 2 fsyncs (file + directory). SQLite's own syncs "
        "happen inside the library and are not counted.",
        "Steady state: one session with a head; before each save random string leaves (about 1% of the "
        "state's bytes) are replaced by new text of the same length. Its raw column is a full durable rewrite "
        "of the whole state (what a snapshot-per-checkpoint saver would pay); no target.",
    ]
    section.notes.append(
        "Below: *CPU per save* is the median `time.process_time` of a store save and of a raw write (Python, "
        "hashing, compression and the kernel's work in the syscalls; no waiting for the disk). *Paired ratio* "
        "is the median of store/raw over each save and the raw write next to it, which is less sensitive to the "
        "disk speed drifting during the run than the ratio of medians used for the target. *Encode + sha256*: "
        "the median time to turn the state into its canonical JSON and checksum it (`codec.dumps` and one "
        "sha256, timed apart after the saves), work every save must do and the raw floor, handed bytes "
        "encoded outside its timing, does not; the ratio beside it counts that work in the floor (no target)."
    )
    section.extra_tables.append(
        (
            "Diagnostics",
            [
                "case",
                "store",
                "state",
                "CPU per save: store / raw",
                "paired ratio",
                "encode + sha256 of the state; store / (raw + it)",
                "opening the new session (median / p90; not in the save time)",
                "first saves that were keyframes",
            ],
            extra,
        )
    )
    report.sections.append(section)


# --------------------------------------------------------------------------------------------------------
# 2. A growing conversation: bytes stored
# --------------------------------------------------------------------------------------------------------
def chat_messages(count: int, words: Words) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": words.text(480)} for i in range(count)]


def section_chat(settings: Settings, tmp: Path, report: Report) -> None:
    steps = settings.chat_steps
    total = steps[-1]
    words = Words(random.Random(2))
    messages = chat_messages(total, words)
    section = Section(
        f"2. A {total:,}-step conversation: bytes stored",
        ["store", "steps", "state JSON", "stored", "stored / state", "target", "result", "what is counted"],
    )
    timings: list[list[str]] = []
    for kind in ("file", "sqlite", "memory"):
        bench = Bench(kind, Path(tempfile.mkdtemp(prefix=f"chat-{kind}-", dir=tmp)))
        try:
            session = bench.session("chat")
            session.state["messages"] = []
            times: list[float] = []
            keyframes = 0
            gc.collect()
            for step in range(1, total + 1):
                session.state["messages"].append(dict(messages[step - 1]))
                start = time.perf_counter()
                checkpoint = session.save(step=f"turn-{step}")
                times.append(time.perf_counter() - start)
                keyframes += checkpoint.keyframe
                if step not in steps:
                    continue
                state_size = len(codec.dumps(session.state))
                rows = _chat_rows(kind, bench, step, state_size, report)
                section.rows.extend(rows)
            timings.append(
                [kind, ms(median(times)), ms(p90(times)), ms(max(times)), f"{sum(times):.2f} s", str(keyframes)]
            )
            console.print(f"  chat {kind:6}: {section.rows[-1][3]} after {total} steps")
        finally:
            bench.close()
            shutil.rmtree(bench.root)
    lg = LANGGRAPH_SQLITE_MB * 1e6
    final_sqlite = next(r for r in section.rows if r[0] == "sqlite" and r[1] == f"{total:,}")
    section.notes += [
        'One session, `schema=dict`, state `{"messages": [...]}`; each step appends one message '
        '`{"role": "user"|"assistant", "content": <480 characters of words>}` (~510 bytes of JSON) and '
        'saves. "state JSON" is `len(safepoint.codec.dumps(state))` at that step; the target is at most 3x it.',
        "File store: *apparent* = the sum of the files' sizes; *allocated* = `st_blocks * 512`, the disk space "
        "the files really take. Every file takes at least one 4 KiB block, and the store writes one commit file "
        "per checkpoint (plus objects), so 1,000 checkpoints allocate at least ~4 MB however small their "
        "records are. Directories are not included in either (the last column gives their number and size).",
        "SQLite store: the size of `store.db` + `store.db-wal` after `PRAGMA wal_checkpoint(TRUNCATE)` "
        "(the 32 KiB `-shm` index is not counted); the logical bytes (keys + values in the table) are given "
        "too. Memory store: the sum of the stored values' lengths.",
        f"For comparison, LangGraph's SqliteSaver needs {LANGGRAPH_SQLITE_MB} MB for this workload (measured "
        f"beforehand and quoted by the issue; not re-measured here): "
        + (
            f"{lg / _parse_bytes(final_sqlite[3]):,.0f}x what the SQLite store holds after {total:,} steps."
            if total == 1000
            else f"this --quick run stops at {total} steps, so no ratio is computed."
        ),
    ]
    section.extra_tables.append(
        (
            f"Save time during the conversation ({total:,} saves)",
            ["store", "median", "p90", "max", "total", "keyframes"],
            timings,
        )
    )
    report.sections.append(section)


def _parse_bytes(text: str) -> float:
    number, unit = text.split()[:2]
    return float(number.replace(",", "")) * {"B": 1, "KiB": KIB, "MiB": MIB}[unit]


def _chat_rows(kind: str, bench: Bench, step: int, state_size: int, report: Report) -> list[list[str]]:
    rows = []

    def row(measure: str, stored: int, what: str) -> None:
        r = stored / state_size
        status = report.check(f"chat, {kind} store ({measure}), {step:,} steps: stored/state", r, 3.0, ratio)
        rows.append([kind, f"{step:,}", size(state_size), size(stored), ratio(r), "<= 3.00x", status, what])

    if kind == "file":
        usage = file_usage(bench.root / "store")
        row(
            "apparent",
            usage.apparent,
            f"apparent: sum of {usage.files:,} file sizes",
        )
        row(
            "allocated",
            usage.allocated,
            f"allocated: blocks of the same files ({usage.dirs} directories add {size(usage.dir_allocated)})",
        )
    elif kind == "sqlite":
        usage = sqlite_usage(bench.db_path)
        row("db+wal", usage.apparent, f"db + wal files; {usage.files:,} rows hold {size(usage.logical)}")
    else:
        usage = memory_usage(bench.repo)
        row("values", usage.apparent, f"sum of {usage.files:,} value lengths")
    return rows


# --------------------------------------------------------------------------------------------------------
# 3. Scaling with history length
# --------------------------------------------------------------------------------------------------------
def _keyframe_of(repo: sp.Repository, session_id: str, seq: int) -> int:
    """The seq of the keyframe a checkpoint is built on."""
    while not repo.load(session_id, seq).keyframe:
        seq -= 1
    return seq


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def section_scaling(settings: Settings, tmp: Path, report: Report) -> None:
    early, late = settings.latency_early, settings.latency_late
    short_n, long_n = settings.short_history, settings.long_history
    # Head loads are timed at every head over one whole keyframe cycle from each point: the cost of a load
    # depends on how many deltas follow its keyframe (0 to KEYFRAME_EVERY - 1), i.e. on the head's position in
    # its cycle, which differs between step 10 and step 10,000 by accident of arithmetic, not history length.
    cycle = KEYFRAME_EVERY
    total = max(settings.long_history + cycle, late[1])
    section = Section(
        "3. Scaling with history length (fixed-size ~64 KiB state, a few values changed per step)",
        ["store", "measure", "short history", "long history", "ratio", "target", "result"],
    )
    details: list[list[str]] = []
    for kind in ("sqlite", "file"):
        words = Words(random.Random(3))
        bench = Bench(kind, Path(tempfile.mkdtemp(prefix=f"scale-{kind}-", dir=tmp)))
        repo = bench.repo
        started = time.perf_counter()
        try:
            session = bench.session("long")
            session.state.update(make_agent_state(64 * KIB, words))
            mutator = Mutator(session.state, words)
            latency: dict[int, float] = {}
            cpu: dict[int, float] = {}
            keyframe_steps: list[int] = []
            head_loads: dict[int, list[float]] = {short_n: [], long_n: []}
            per_head = max(3, settings.loads // 4)
            gc.collect()
            for step in range(1, total + 1):
                if step > 1:
                    mutator.change_values(3)
                start, start_cpu = time.perf_counter(), time.process_time()
                checkpoint = session.save(step=f"step-{step}")
                latency[step] = time.perf_counter() - start
                cpu[step] = time.process_time() - start_cpu
                if checkpoint.keyframe:
                    keyframe_steps.append(step)
                for window in (short_n, long_n):
                    if window <= step < window + cycle:
                        head_loads[window] += [_timed(repo.load, "long") for _ in range(per_head)]
                if step % 2000 == 0:
                    console.print(f"    {kind}: {step:,} checkpoints, {time.perf_counter() - started:.0f} s")
            size_state = len(codec.dumps(session.state))
            chains = {n: n - _keyframe_of(repo, "long", n) for n in (short_n, long_n)}

            # Control, side by side: a new session in the same store saves and loads alternately with the long one,
            # so both see the same disk and CPU contention.
            fresh = bench.session("fresh")
            fresh.state.update(make_agent_state(64 * KIB, words))
            fresh_mutator = Mutator(fresh.state, words)
            ab_fresh: list[float] = []
            ab_long: list[float] = []
            ab_loads: dict[str, list[float]] = {"fresh": [], "long": [], "fresh_seq": [], "long_seq": []}
            for i in range(1, early[1] + 1):
                if i > 1:
                    fresh_mutator.change_values(3)
                mutator.change_values(3)
                pair = (_timed(fresh.save, step="fresh"), _timed(session.save, step="long"))
                if i >= early[0]:
                    ab_fresh.append(pair[0])
                    ab_long.append(pair[1])
                if i == short_n:
                    long_head = repo.load("long").seq
                    long_keyframe = _keyframe_of(repo, "long", long_head)
                    same_chain = long_keyframe + chains[short_n]
                    if same_chain > long_head:
                        same_chain = _keyframe_of(repo, "long", long_keyframe - 1) + chains[short_n]
                    for _ in range(settings.ab_loads):
                        ab_loads["fresh"].append(_timed(repo.load, "fresh"))
                        ab_loads["long"].append(_timed(repo.load, "long"))
                        ab_loads["fresh_seq"].append(_timed(repo.load, "fresh", short_n))
                        ab_loads["long_seq"].append(_timed(repo.load, "long", same_chain))
                    ab_chain = long_head - long_keyframe
        finally:
            bench.close()
            shutil.rmtree(bench.root)
        early_steps = range(early[0], early[1] + 1)
        late_steps = range(late[0], late[1] + 1)
        e = [latency[s] for s in early_steps]
        lt = [latency[s] for s in late_steps]
        r = median(lt) / median(e)
        status = report.check(
            f"save latency, {kind} store, step ~{late[0] + 5:,} / step ~{early[0] + 5}", r, 1.3, ratio
        )
        rows = section.rows
        rows.append(
            [
                kind,
                f"save latency (median of saves {early[0]}-{early[1]} vs {late[0]:,}-{late[1]:,})",
                ms(median(e)),
                ms(median(lt)),
                ratio(r),
                "<= 1.30x",
                status,
            ]
        )
        e_cpu, l_cpu = [cpu[s] for s in early_steps], [cpu[s] for s in late_steps]
        rows.append(
            [
                kind,
                "- the same saves in CPU time (`time.process_time`: no waiting for the disk or for a CPU)",
                ms(median(e_cpu)),
                ms(median(l_cpu)),
                ratio(median(l_cpu) / median(e_cpu)),
                "(diagnostic)",
                "",
            ]
        )
        rows.append(
            [
                kind,
                f"- side by side: saves {early[0]}-{early[1]} of a new session vs saves {total + early[0]:,}-"
                f"{total + early[1]:,} of the long one, alternating, same store",
                ms(median(ab_fresh)),
                ms(median(ab_long)),
                ratio(median(ab_long) / median(ab_fresh)),
                "(diagnostic)",
                "",
            ]
        )
        short_loads, long_loads = head_loads[short_n], head_loads[long_n]
        r = median(long_loads) / median(short_loads)
        status = report.check(f"head load, {kind} store, {long_n:,} / {short_n} checkpoints", r, 1.3, ratio)
        rows.append(
            [
                kind,
                f"head load `store.load(id)`, median over every head of one keyframe cycle ({cycle} heads x "
                f"{per_head} loads) from {short_n} vs from {long_n:,} checkpoints",
                ms(median(short_loads)),
                ms(median(long_loads)),
                ratio(r),
                "<= 1.30x",
                status,
            ]
        )
        rows.append(
            [
                kind,
                f"- side by side: head of the new session ({short_n} checkpoints, {chains[short_n]} deltas) vs head "
                f"of the long one ({total + short_n:,} checkpoints, {ab_chain} deltas), alternating",
                ms(median(ab_loads["fresh"])),
                ms(median(ab_loads["long"])),
                ratio(median(ab_loads["long"]) / median(ab_loads["fresh"])),
                "(diagnostic)",
                "",
            ]
        )
        rows.append(
            [
                kind,
                f"- side by side, same chain length: `store.load(id, seq)` of seq {short_n} of the new session vs "
                f"seq {same_chain:,} of the long one (both {chains[short_n]} deltas after their keyframe)",
                ms(median(ab_loads["fresh_seq"])),
                ms(median(ab_loads["long_seq"])),
                ratio(median(ab_loads["long_seq"]) / median(ab_loads["fresh_seq"])),
                "(diagnostic)",
                "",
            ]
        )
        kf_early = sum(s in early_steps for s in keyframe_steps)
        kf_late = sum(s in late_steps for s in keyframe_steps)
        details.append(
            [
                kind,
                f"{size_state:,} B",
                f"{len(keyframe_steps):,} of {total:,}",
                f"{kf_early} / {kf_late}",
                f"{ms(p90(e))} / {ms(p90(lt))}",
                f"{ms(p90(short_loads))} / {ms(p90(long_loads))}",
                f"{time.perf_counter() - started:.0f} s",
            ]
        )
        console.print(
            f"  scaling {kind}: latency {ms(median(e))} -> {ms(median(lt))}, "
            f"load {ms(median(short_loads))} -> {ms(median(long_loads))}"
        )
    section.notes += [
        f"One session per store, `schema=dict`, a ~64 KiB agent-like state; every step replaces 3 random string "
        f"values with new text of the same length (the state keeps its size) and saves. {total:,} checkpoints "
        f"per store. Head loads are timed during the run, right after checkpoint {short_n} and checkpoint "
        f"{long_n:,}; each is a full `store.load(id)` (find the head, read its keyframe's tree and the deltas "
        "after it, verify checksums). The rows marked (diagnostic) carry no target.",
        "The short and long windows are measured minutes apart, so on a shared machine they also differ in the "
        "other processes' disk and CPU traffic. The side-by-side rows remove that: after the long run, a new "
        "session in the same store saves and loads alternately with the long one (loads: median of "
        f"{settings.ab_loads} each).",
        "A load reads a keyframe and the deltas after it, so its cost also depends on where the checkpoint falls in "
        "its keyframe cycle (at most 31 deltas), not only on the history's length; the same-chain-length row "
        "separates the two.",
    ]
    section.extra_tables.append(
        (
            "Details (short / long history)",
            [
                "store",
                "state",
                "keyframes",
                "keyframes in the latency windows",
                "save p90",
                "head load p90",
                "run time",
            ],
            details,
        )
    )
    report.sections.append(section)


# --------------------------------------------------------------------------------------------------------
# 4. A 16 MiB state, one 1 KiB change per save
# --------------------------------------------------------------------------------------------------------
@dataclass
class Saved:
    time: float
    grown: int  # bytes the store grew by
    files: int  # files (or rows) it grew by
    keyframe: bool
    seq: int
    syncs: tuple[int, int]  # fsync and syncfs calls


def make_big_state(docs: int, words: Words) -> dict[str, Any]:
    return {"docs": [{"id": i, "text": words.text(1000)} for i in range(docs)]}


def section_big(settings: Settings, tmp: Path, report: Report) -> None:
    words = Words(random.Random(4))
    state = make_big_state(settings.big_docs, words)
    blob = codec.dumps(state)
    label = size(len(blob))
    section = Section(
        f"4. A {label} state with one 1 KiB change per save ({settings.big_saves} saves)",
        ["store", "measure", "median", "max", "target", "result"],
    )
    extra: list[list[str]] = []
    keyframe_seqs: set[int] = set()
    for kind in ("file", "sqlite"):
        bench = Bench(kind, Path(tempfile.mkdtemp(prefix=f"big-{kind}-", dir=tmp)))
        assert bench.raw is not None
        try:
            raw_times = []
            for i in range(settings.big_full_writes):
                start = time.perf_counter()
                bench.raw.write(f"full-{i}", blob)
                raw_times.append(time.perf_counter() - start)
            if kind == "file":
                for i in range(settings.big_full_writes):  # do not let the raw files sit in the page cache
                    os.unlink(bench.root / "raw" / f"full-{i}")

            def usage(bench: Bench = bench) -> Usage:
                if bench.kind == "file":
                    return file_usage(bench.root / "store")
                u = sqlite_usage(bench.db_path, checkpoint=False)
                u.apparent = u.logical  # bytes in the table; the WAL holds whole 4 KiB pages
                return u

            session = bench.session("big")
            session.state.update(codec.loads(blob))
            before = usage()
            gc.collect()
            mark = FSYNC.mark()
            start = time.perf_counter()
            first = session.save(step="full")
            first_time = time.perf_counter() - start
            first_syncs = FSYNC.since(mark)
            after = usage()
            first_bytes, first_files = after.apparent - before.apparent, after.files - before.files
            rng = words.rng
            saves: list[Saved] = []
            for _ in range(settings.big_saves):
                doc = session.state["docs"][rng.randrange(len(session.state["docs"]))]
                doc["text"] = words.text(1000)
                before = after
                mark = FSYNC.mark()
                start = time.perf_counter()
                checkpoint = session.save(step="edit")
                elapsed = time.perf_counter() - start
                synced = FSYNC.since(mark)
                after = usage()
                grown = after.apparent - before.apparent
                saves.append(
                    Saved(elapsed, grown, after.files - before.files, checkpoint.keyframe, checkpoint.seq, synced)
                )
            assert first.keyframe
        finally:
            bench.close()
            shutil.rmtree(bench.root)
        times = [s.time for s in saves]
        written = [s.grown for s in saves]
        floor = median(raw_times)
        name = f"big state, {kind} store: bytes written per save (median)"
        status = report.check(name, median(written), 256 * KIB, size)
        counted = "sum of file sizes" if kind == "file" else "key + value bytes added to the table"
        section.rows.append(
            [
                kind,
                f"bytes written per save ({counted})",
                size(median(written)),
                size(max(written)),
                "<= 256 KiB",
                status,
            ]
        )
        r = median(times) / floor
        status = report.check(f"big state, {kind} store: save time / full durable write", r, 0.3, ratio)
        section.rows.append(
            [
                kind,
                f"save time vs full durable write of the state ({ms(floor)}, median of {settings.big_full_writes})",
                f"{ms(median(times))} = {ratio(r)}",
                f"{ms(max(times))} = {ratio(max(times) / floor)}",
                "<= 0.30x",
                status,
            ]
        )
        deltas = [s for s in saves if not s.keyframe]
        keys = [s for s in saves if s.keyframe]
        keyframe_seqs.update(s.seq for s in keys)

        def sync_note(counts: list[tuple[int, int]], kind: str = kind) -> str:
            return f" / {sync_label(counts)}" if kind == "file" else ""

        extra.append(
            [
                kind,
                ms(floor),
                f"{ms(first_time)} / {size(first_bytes)} / {first_files:,} files{sync_note([first_syncs])}",
                f"{len(deltas)}: {ms(median([s.time for s in deltas]))} / {size(median([s.grown for s in deltas]))}"
                + sync_note([s.syncs for s in deltas])
                if deltas
                else "-",
                (
                    ", ".join(
                        f"seq {s.seq}: {ms(s.time)} / {size(s.grown)} / {s.files} files{sync_note([s.syncs])}"
                        for s in keys
                    )
                    if keys
                    else "none"
                ),
            ]
        )
        console.print(
            f"  big {kind}: first {ms(first_time)}, median save {ms(median(times))}, "
            f"median written {size(median(written))}"
        )
    section.notes += [
        f'State: `{{"docs": [{{"id": i, "text": <1000 characters of words>}} x {settings.big_docs:,}]}}`, '
        f"{len(blob):,} bytes of canonical JSON. Each save replaces one document's text (1,000 characters) and "
        "saves. Bytes written per save = store size after - before: for the file store the sum of the file "
        "sizes under the store (walked after every save), for SQLite the key + value bytes in its table "
        "(SQLite's WAL writes whole 4 KiB pages on top of that).",
        "Floor: the state's canonical bytes written durably — file: temp + fsync + rename + directory fsync; "
        "SQLite: one `INSERT` transaction into a WAL/`synchronous=FULL` table. Each store is compared with "
        "its own floor.",
        "A keyframe is written every 32 checkpoints (here checkpoints "
        + (", ".join(str(s) for s in sorted(keyframe_seqs)) or "none")
        + "); its time and bytes are listed apart below and are included in the medians and maxima above. "
        "Files: the change in the number of files; fsync: `os.fsync` calls made by the file store (and its "
        "`syncfs` calls, if any).",
    ]
    section.extra_tables.append(
        (
            "First save, delta saves and keyframe saves",
            [
                "store",
                "full durable write (floor)",
                "first save: time / bytes / files",
                "delta saves: count: median time / bytes",
                "keyframe saves: time / bytes / files",
            ],
            extra,
        )
    )
    report.sections.append(section)


# --------------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------------
def _styled(cell: str) -> str:
    if cell == "PASS":
        return "[bold green]PASS[/]"
    if cell == "FAIL":
        return "[bold red]FAIL[/]"
    return cell


def print_report(report: Report, header: list[str]) -> None:
    for line in header:
        console.print(line, markup=False, highlight=False)
    for section in report.sections:
        table = Table(title=section.title, title_justify="left", show_lines=False)
        for column in section.columns:
            table.add_column(column, overflow="fold")
        for row in section.rows:
            table.add_row(*(_styled(c) for c in row))
        console.print(table)
        for title, columns, rows in section.extra_tables:
            sub = Table(title=title, title_justify="left")
            for column in columns:
                sub.add_column(column, overflow="fold")
            for row in rows:
                sub.add_row(*row)
            console.print(sub)
    summary = Table(title="Targets", title_justify="left")
    for column in ("target", "measured", "limit", "result"):
        summary.add_column(column, overflow="fold")
    for check in report.checks:
        summary.add_row(check.name, check.measured, check.limit, _styled(verdict(check.passed)))
    console.print(summary)
    passed = sum(c.passed for c in report.checks)
    console.print(f"[bold]{passed} of {len(report.checks)} targets met[/]")


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    def esc(cell: str) -> str:
        cell = cell.replace("|", "\\|")
        return f"**{cell}**" if cell in ("PASS", "FAIL") else cell

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return out


def markdown(report: Report, header: list[str], settings: Settings, elapsed: float) -> str:
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick run: `--quick`, smaller counts, not comparable with a full run" if settings.quick else "full run"
    lines = [f"## Results, {today} ({mode})", ""]
    lines += [f"- {line}" for line in header]
    lines += [
        f"- Run time: {elapsed / 60:.1f} min; load average at the end: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "",
    ]
    passed = sum(c.passed for c in report.checks)
    lines += [f"### Targets: {passed} of {len(report.checks)} met", ""]
    lines += _md_table(
        ["target", "measured", "limit", "result"],
        [[c.name, c.measured, c.limit, verdict(c.passed)] for c in report.checks],
    )
    lines.append("")
    for section in report.sections:
        lines += [f"### {section.title}", ""]
        lines += _md_table(section.columns, section.rows)
        lines.append("")
        for title, columns, rows in section.extra_tables:
            lines += [f"{title}:", ""]
            lines += _md_table(columns, rows)
            lines.append("")
        lines += [f"- {note}" for note in section.notes]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------
SECTIONS = {"saves": section_saves, "chat": section_chat, "scaling": section_scaling, "big": section_big}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: a smoke test of about a minute")
    parser.add_argument("--out", metavar="FILE", help="write the results as a Markdown section to FILE")
    parser.add_argument(
        "--tmp-dir",
        metavar="DIR",
        help="where to create the stores (default: a temp directory "
        "on the working directory's filesystem, never a tmpfs)",
    )
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these workloads")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    FSYNC.install()
    base = choose_tmp_base(args.tmp_dir)
    tmp = Path(tempfile.mkdtemp(prefix="safepoint-bench-", dir=base))
    header = describe_machine(tmp)
    for line in header:
        console.print(line, markup=False, highlight=False)
    report = Report()
    started = time.perf_counter()
    try:
        for name, run in SECTIONS.items():
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            console.print(f"[bold]{name}[/] ...")
            run(settings, tmp, report)
            console.print(f"  ({time.perf_counter() - t0:.0f} s)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print_report(report, header)
    if args.out:
        Path(args.out).write_text(markdown(report, header, settings, elapsed))
        console.print(f"Markdown section written to {args.out}")
    return 1 if args.strict and not all(c.passed for c in report.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
