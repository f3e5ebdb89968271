"""The workloads the benchmark scripts share, all seeded: agent-like JSON states made of words and the ways
they change between saves, a growing conversation, the raw durable-write floors of the file and SQLite
stores, a store under test next to its floor, and the bytes a store takes."""

from __future__ import annotations

import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import KIB, console, median

import safepoint as sp
from safepoint.core import codec


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


def chat_messages(count: int, words: Words) -> list[dict[str, str]]:
    """A conversation of `count` messages of 480 characters of words, alternating user and assistant."""
    return [{"role": ("user", "assistant")[i % 2], "content": words.text(480)} for i in range(count)]


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
