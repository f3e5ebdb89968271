#!/usr/bin/env python3
"""A long OpenAI Agents SDK conversation: what each added item costs on disk and in time, early and late.

    pip install -e '.[openai-agents]'
    python benchmarks/openai_agents_bench.py                  # 1,024 turns per session (about a minute)
    python benchmarks/openai_agents_bench.py --turns 256      # a quick look
    python benchmarks/openai_agents_bench.py --out oa.md      # also write the results as a Markdown section

Each turn adds two items through the SDK's async `add_items`, as `Runner.run` does: a ~250-byte user message and a
~450-byte assistant message in the Responses API shape. Sessions: safepoint's SafepointSession on the directory
store and on the SQLite store, and the SDK's own SQLiteSession on a file for comparison. Measured: bytes written
per added item over the first and the last 64 turns (two keyframe cycles each), `add_items` latency (median
of the same windows, fsyncs included), and reading the conversation back at the end. Targets, for SafepointSession:
the bytes per item and the latency of the last window at most 1.5x those of the first (O(change): no turn rewrites
the conversation).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import choose_tmp_base, describe_machine, md_table, ms, parser, ratio, size, verdict, write_out

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from agents import SQLiteSession  # noqa: E402

from safepoint.integrations.openai_agents import SafepointSession  # noqa: E402

WINDOW = 64
TARGET_FLAT = 1.5
WORDS = "order refund shipping invoice account address parcel tracking delivery return payment label".split()


def turn_items(rnd: random.Random, turn: int) -> list[dict[str, Any]]:
    def text(n: int) -> str:
        return " ".join(rnd.choice(WORDS) for _ in range(n))

    return [
        {"role": "user", "content": f"{turn}: {text(30)}"[:250]},
        {
            "id": f"msg_{turn:06d}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text(48)[:350], "annotations": []}],
        },
    ]


def written() -> int:
    """Bytes this process has handed to write() so far (all threads): what a save costs the disk, packing included."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no wchar line")


def tree_bytes(root: Path) -> dict[str, int]:
    stats = [(Path(d) / f).stat() for d, _, names in os.walk(root) for f in names]
    return {"apparent": sum(s.st_size for s in stats), "allocated": sum(s.st_blocks * 512 for s in stats)}


def sqlite_bytes(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"db+wal": sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())}


def subjects(work: Path) -> list[tuple[str, bool, Callable[[], Any], Callable[[], dict[str, int]]]]:
    """(name, is safepoint, open a session, bytes on disk)."""
    directory, db, sdk_db = work / "safepoint-dir", work / "safepoint.db", work / "sdk.db"
    return [
        ("SafepointSession, directory store", True, lambda: SafepointSession("chat", directory), lambda: tree_bytes(directory)),
        ("SafepointSession, SQLite store", True, lambda: SafepointSession("chat", f"sqlite:///{db}"), lambda: sqlite_bytes(db)),
        ("SDK SQLiteSession (file)", False, lambda: SQLiteSession("chat", sdk_db), lambda: sqlite_bytes(sdk_db)),
    ]  # fmt: skip


async def measure(open_session: Callable[[], Any], disk: Callable[[], dict[str, int]], turns: int) -> dict[str, Any]:
    rnd = random.Random(7)
    session = open_session()
    latencies: list[float] = []
    marks: dict[int, int] = {}
    late = turns - WINDOW
    for turn in range(turns):
        if turn in (0, WINDOW, late):
            marks[turn] = written()
        items = turn_items(rnd, turn)
        start = time.perf_counter()
        await session.add_items(items)
        latencies.append(time.perf_counter() - start)
    marks[turns] = written()
    reader = open_session()
    start = time.perf_counter()
    everything = await reader.get_items()
    read_all = time.perf_counter() - start
    start = time.perf_counter()
    await reader.get_items(limit=10)
    read_last = time.perf_counter() - start
    assert len(everything) == 2 * turns, len(everything)
    per_item = ((marks[WINDOW] - marks[0]) / (2 * WINDOW), (marks[turns] - marks[late]) / (2 * WINDOW))
    for handle in (session, reader):
        if hasattr(handle, "close"):
            handle.close()
    return {
        "per_item": per_item,
        "total": disk(),
        "written": marks[turns] - marks[0],
        "add_early": statistics.median(latencies[:WINDOW]),
        "add_late": statistics.median(latencies[late:]),
        "read_all": read_all,
        "read_last": read_last,
        "items_json": sum(len(str(item).encode()) for item in everything),
    }


def main() -> int:
    options = parser(__doc__, whole_doc=True, out="write the results as a Markdown section to this file", tmp_dir=True)
    options.add_argument("--turns", type=int, default=1024)
    args = options.parse_args()
    if args.turns < 2 * WINDOW or args.turns % 32:
        options.error(f"--turns must be a multiple of 32 (whole keyframe cycles), at least {2 * WINDOW}")
    base = choose_tmp_base(args.tmp_dir)
    work = Path(tempfile.mkdtemp(prefix="safepoint-oa-bench-", dir=base))
    header = describe_machine(work, packages=("openai-agents",))
    started = time.perf_counter()
    results = {}
    try:
        for name, _, open_session, disk in subjects(work):
            results[name] = asyncio.run(measure(open_session, disk, args.turns))
            print(f"  {name}: {args.turns} turns measured", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    checks, rows = [], []
    for name, ours, _, _ in subjects(work):
        r = results[name]
        early, late = r["per_item"]
        if ours:
            checks.append([f"{name}: bytes written per added item, last {WINDOW} turns / first {WINDOW}",
                           f"{ratio(late / early)} ({size(early)} -> {size(late)})", f"<= {TARGET_FLAT}x",
                           verdict(late / early <= TARGET_FLAT)])  # fmt: skip
        if ours:
            flat = r["add_late"] / r["add_early"]
            checks.append([f"{name}: add_items median, last {WINDOW} turns / first {WINDOW}",
                           f"{ratio(flat)} ({ms(r['add_early'])} -> {ms(r['add_late'])})", f"<= {TARGET_FLAT}x",
                           verdict(flat <= TARGET_FLAT)])  # fmt: skip
        total = ", ".join(f"{size(v)} ({c})" for c, v in r["total"].items())
        rows.append([name, f"{size(early)} -> {size(late)}", size(r["written"]), total, ms(r["add_early"]),
                     ms(r["add_late"]), ms(r["read_all"]), ms(r["read_last"])])  # fmt: skip
    lines = [f"## OpenAI Agents SDK sessions\n\n`benchmarks/openai_agents_bench.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
             f"{args.turns:,} turns (two items each) per session, one session after the other ({(time.perf_counter() - started) / 60:.1f} min).\n"]  # fmt: skip
    lines += [f"- {line}" for line in header] + [""]
    met = sum(1 for check in checks if check[3] == "PASS")
    lines += [f"### Targets: {met} of {len(checks)} met", ""]
    lines += md_table(["target", "measured", "limit", "result"], checks) + ["", "### Measurements", ""]
    lines += md_table(["session", f"bytes written per added item, first {WINDOW} -> last {WINDOW} turns",
                       "bytes written in all", "bytes on disk at the end",
                       "add_items, first turns", "add_items, last turns", "get_items() all, at the end",
                       "get_items(limit=10)"], rows)  # fmt: skip
    items_json = results[subjects(work)[0][0]]["items_json"]
    lines += ["", f"- The conversation at the end: {2 * args.turns:,} items, about {size(items_json)} of JSON.",
              "- Bytes written: what the process handed to `write()` over the window (`wchar` of `/proc/self/io`, "
              "every thread), divided by the items added in it: records, objects, packs, WAL frames, all of it. A "
              "window spans two whole keyframe cycles of 32 checkpoints, so the keyframes (each writing only the "
              "pages of the conversation that changed) and the packing of each cycle's records are in it. Bytes on "
              "disk: the directory store as the sum of file sizes (apparent) and as allocated blocks; SQLite files "
              "as the database plus its WAL after `PRAGMA wal_checkpoint(TRUNCATE)`.",
              "- Latency: `await session.add_items(...)` as the SDK's Runner calls it, durable when it returns (fsyncs "
              "included) on both safepoint stores; SQLiteSession runs with SQLite's default `synchronous` setting.", ""]  # fmt: skip
    text = "\n".join(lines)
    print(text)
    write_out(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
