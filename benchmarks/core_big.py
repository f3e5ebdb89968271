"""Core benchmark 4: a 16 MiB state with one 1 KiB change per save: bytes written and time per save against a
full durable write of the state."""

from __future__ import annotations

import gc
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import KIB, Report, Section, console, median, ms, ratio, size
from core_settings import Settings
from workloads import FSYNC, Bench, Usage, Words, file_usage, sqlite_usage, sync_label

from safepoint.core import codec


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
