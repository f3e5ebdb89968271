"""Core benchmark 2: a 1,000-step conversation, one message more per step: the bytes each store holds
against the state's JSON size."""

from __future__ import annotations

import gc
import random
import shutil
import tempfile
import time
from pathlib import Path

from common import KIB, MIB, Report, Section, console, median, ms, p90, ratio, size
from core_settings import Settings
from workloads import Bench, Words, chat_messages, file_usage, memory_usage, sqlite_usage

from safepoint.core import codec

LANGGRAPH_SQLITE_MB = 361  # LangGraph SqliteSaver on the 1,000-step chat (measured beforehand, quoted; not re-run)


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
        'saves. "state JSON" is `len(safepoint.core.codec.dumps(state))` at that step; the target is at most 3x it.',
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
