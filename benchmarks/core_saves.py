"""Core benchmark 1: a durable save, as the first checkpoint of a session and in steady state, against the raw
durable write of the same bytes (file and SQLite stores)."""

from __future__ import annotations

import gc
import hashlib
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import KIB, Report, Section, console, median, ms, p90, ratio
from core_settings import Settings
from workloads import FSYNC, Bench, Mutator, Words, make_agent_state, sync_label

import safepoint as sp
from safepoint.core import codec


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
