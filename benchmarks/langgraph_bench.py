#!/usr/bin/env python3
"""LangGraph's SqliteSaver against safepoint's SafepointSaver on the same graph, in the same run.

    pip install -e '.[langgraph]' langgraph-checkpoint-sqlite
    python benchmarks/langgraph_bench.py                      # 1,000 steps per saver (a few minutes)
    python benchmarks/langgraph_bench.py --steps 200          # a quick look
    python benchmarks/langgraph_bench.py --append BENCHMARKS.md   # also append the results as a section
    python benchmarks/langgraph_bench.py --strict             # exit 1 when a target is missed
    python benchmarks/langgraph_bench.py --steps 600 --out lg.md  # the history-read case of issue 15

The graph: one node appends one ~500-character AIMessage per step with `add_messages` and loops to itself, one
thread, `durability="sync"` (every checkpoint is saved before the next step starts): 1,000 steps, one checkpoint
a step. Savers: LangGraph's SqliteSaver on a file, SafepointSaver on the directory store and on the SQLite store.

Measured per saver: bytes on disk after 200 and after all steps; `put` latency (median of puts 6-55, the start,
and of the last 50, the end); `get_tuple` of the latest checkpoint (median of 10, a new saver each time);
`saver.list()` over every checkpoint reading ids and metadata (the history listing); `get_state_history` over every
checkpoint, which rebuilds every state, once per saver and then side by side: `--history-rounds` rounds (default
3), each reading the whole history with every saver in turn, so the machine's load falls on all of them alike.
Targets: bytes at most 3x the final state (as LangGraph's serializer writes it), put latency flat (end at most 1.5x
the start), history listing under 100 ms, and `get_state_history` on the directory store at least 2x as fast as on
SqliteSaver (median of the side-by-side rounds).
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypedDict

from common import machine_facts, parser
from langchain_core.messages import AIMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

import safepoint
import safepoint.core.codec
from safepoint.integrations.langgraph import SafepointSaver

WORDS = (
    "agent checkpoint state message tool result model token retry durable resume thread graph node step branch "
    "answer question plan draft review source evidence summary context memory budget latency disk"
).split()
THREAD = {"configurable": {"thread_id": "bench"}, "recursion_limit": 1_000_000}
TARGET_BYTES, TARGET_FLAT, TARGET_LIST_MS = 3.0, 1.5, 100.0
TARGET_HISTORY_SPEEDUP = 2.0  # get_state_history: SqliteSaver's time / SafepointSaver's on the directory store


class State(TypedDict):
    messages: Annotated[list, add_messages]
    target: int


def build_graph(saver: Any) -> Any:
    rnd = random.Random(42)

    def chat(state: State) -> dict[str, Any]:
        text = " ".join(rnd.choice(WORDS) for _ in range(90))[:500]
        return {"messages": [AIMessage(content=text)]}

    def more(state: State) -> str:
        return "chat" if len(state["messages"]) < state["target"] else END

    graph = StateGraph(State)
    graph.add_node(chat)
    graph.add_edge(START, "chat")
    graph.add_conditional_edges("chat", more)
    return graph.compile(checkpointer=saver)


@dataclass
class Subject:
    key: str
    name: str
    open: Callable[[], Any]  # a new saver on the same storage
    size: Callable[[], dict[str, int]]  # bytes on disk, by how they are counted
    puts: list[float] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


def timed_puts(saver: Any, sink: list[float]) -> Any:
    put = saver.put

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return put(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - start)

    saver.put = timed
    return saver


def sqlite_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def tree_bytes(root: Path) -> dict[str, int]:
    files = [Path(d) / f for d, _, names in os.walk(root) for f in names]
    stats = [f.stat() for f in files]
    return {"apparent": sum(s.st_size for s in stats), "allocated": sum(s.st_blocks * 512 for s in stats)}


def subjects(work: Path) -> list[Subject]:
    lg_db = work / "langgraph.db"

    def open_langgraph() -> Any:
        from langgraph.checkpoint.sqlite import SqliteSaver

        saver = SqliteSaver(sqlite3.connect(lg_db, check_same_thread=False))
        saver.setup()
        return saver

    sp_dir, sp_db = work / "safepoint-dir", work / "safepoint.db"
    return [
        Subject("langgraph", "LangGraph SqliteSaver (file)", open_langgraph, lambda: {"db+wal": sqlite_bytes(lg_db)}),
        Subject("directory", "SafepointSaver, directory store", lambda: SafepointSaver(sp_dir), lambda: tree_bytes(sp_dir)),
        Subject("sqlite", "SafepointSaver, SQLite store", lambda: SafepointSaver(f"sqlite:///{sp_db}"), lambda: {"db+wal": sqlite_bytes(sp_db)}),
    ]  # fmt: skip


def run(subject: Subject, steps: int, console: Callable[[str], None]) -> None:
    first = min(200, steps)
    graph = build_graph(timed_puts(subject.open(), subject.puts))
    started = time.perf_counter()
    graph.invoke({"messages": [], "target": first}, THREAD, durability="sync")
    subject.results["bytes_200"] = subject.size()
    if steps > first:
        graph.invoke({"target": steps}, THREAD, durability="sync")
    subject.results["run_s"] = time.perf_counter() - started
    subject.results["bytes_end"] = subject.size()
    subject.results["checkpoints"] = len(subject.puts)
    console(f"  {subject.name}: {steps} steps in {subject.results['run_s']:.1f} s")

    state = build_graph(subject.open()).get_state(THREAD).values
    assert len(state["messages"]) == steps, len(state["messages"])
    kind, data = JsonPlusSerializer().dumps_typed(state["messages"])
    subject.results["state_msgpack"] = len(data)
    subject.results["state_json"] = len(safepoint.core.codec.dumps(safepoint.core.codec.loads(_json_state(state))))

    loads = []
    for _ in range(10):
        saver = subject.open()
        start = time.perf_counter()
        saver.get_tuple(THREAD)
        loads.append(time.perf_counter() - start)
    subject.results["get_tuple_ms"] = statistics.median(loads) * 1e3

    saver = subject.open()
    start = time.perf_counter()
    listed = [(t.config["configurable"]["checkpoint_id"], t.metadata["step"]) for t in saver.list(THREAD)]
    subject.results["list_ms"] = (time.perf_counter() - start) * 1e3
    assert len(listed) == subject.results["checkpoints"], (len(listed), subject.results["checkpoints"])

    graph = build_graph(subject.open())
    start = time.perf_counter()
    count = sum(1 for _ in graph.get_state_history(THREAD))
    subject.results["history_s"] = time.perf_counter() - start
    assert count == len(listed)
    console(f"  {subject.name}: measured")


def flatness(steps: int) -> dict[str, float]:
    """SafepointSaver on the memory store (no disk): put time, and Python function calls per put counted with
    cProfile in a second run, at the start and at the end. The call count does not drift with the machine."""
    import cProfile
    import pstats

    out: dict[str, float] = {}
    for profiled in (False, True):
        samples: list[float] = []
        saver = SafepointSaver("memory://")
        put = saver.put

        def counted(*args: Any, _put: Any = put, _samples: list[float] = samples, **kwargs: Any) -> Any:
            profile = cProfile.Profile()
            profile.enable()
            try:
                return _put(*args, **kwargs)
            finally:
                profile.disable()
                _samples.append(pstats.Stats(profile).total_calls)

        if profiled:
            saver.put = counted
        else:
            timed_puts(saver, samples)
        build_graph(saver).invoke({"messages": [], "target": steps}, THREAD, durability="sync")
        scale = 1 if profiled else 1e3
        kind = "calls" if profiled else "ms"
        out[f"{kind}_start"] = statistics.median(samples[5:55]) * scale
        out[f"{kind}_end"] = statistics.median(samples[-50:]) * scale
    return out


def _json_state(state: dict[str, Any]) -> bytes:
    # The final state in the JSON form safepoint stores: for the "state JSON" column (the SafepointSaver view).
    from safepoint.integrations._langgraph_values import Values

    values = Values(JsonPlusSerializer())
    return safepoint.core.codec.dumps({key: values.encode(value, key) for key, value in state.items()})


# --- reporting ----------------------------------------------------------------------------------------------
def human(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3 if values else float("nan")


def history_side_by_side(items: list[Subject], rounds: int, console: Callable[[str], None]) -> None:
    """`get_state_history` over the whole thread with each saver in turn, `rounds` times (a new saver each time)."""
    for subject in items:
        subject.results["history_rounds"] = []
    for number in range(rounds):
        for subject in items:
            graph = build_graph(subject.open())
            start = time.perf_counter()
            count = sum(1 for _ in graph.get_state_history(THREAD))
            subject.results["history_rounds"].append(time.perf_counter() - start)
            assert count == subject.results["checkpoints"], (count, subject.results["checkpoints"])
        console(f"  get_state_history side by side: round {number + 1} of {rounds}")


def targets(items: list[Subject], steps: int) -> list[tuple[str, str, str, bool | None]]:
    rows = []
    by_key = {s.key: s for s in items}
    lg, directory = by_key.get("langgraph"), by_key.get("directory")
    if lg and directory and lg.results.get("history_rounds") and directory.results.get("history_rounds"):
        theirs, ours = (
            statistics.median(lg.results["history_rounds"]),
            statistics.median(directory.results["history_rounds"]),
        )
        rows.append(
            (
                f"get_state_history over {directory.results['checkpoints']:,} checkpoints, side by side: "
                f"{lg.name} / {directory.name}",
                f"{theirs / ours:.2f}x ({theirs:.2f} s vs {ours:.2f} s)",
                f">= {TARGET_HISTORY_SPEEDUP:.0f}x",
                theirs / ours >= TARGET_HISTORY_SPEEDUP,
            )
        )
    for s in items:
        r = s.results
        state = r["state_msgpack"]
        for counted, size in r["bytes_end"].items():
            ratio = size / state
            check = ratio <= TARGET_BYTES  # both counts: allocated blocks are what the disk really gives up
            rows.append(
                (
                    f"{s.name}: bytes on disk ({counted}) / final state",
                    f"{ratio:.2f}x",
                    f"<= {TARGET_BYTES:.0f}x",
                    check,
                )
            )
        start, end = median_ms(s.puts[5:55]), median_ms(s.puts[-50:])
        rows.append(
            (
                f"{s.name}: put median, last 50 / puts 6-55",
                f"{end / start:.2f}x ({start:.2f} -> {end:.2f} ms)",
                f"<= {TARGET_FLAT}x",
                end / start <= TARGET_FLAT,
            )
        )
        rows.append(
            (
                f"{s.name}: history listing, saver.list() over {r['checkpoints']:,} checkpoints",
                f"{r['list_ms']:.0f} ms",
                f"< {TARGET_LIST_MS:.0f} ms",
                r["list_ms"] < TARGET_LIST_MS,
            )
        )
    return rows  # fmt: skip


def markdown(items: list[Subject], steps: int, info: dict[str, str], elapsed: float, flat: dict[str, float]) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = targets(items, steps)
    met = sum(1 for row in rows if row[3])
    counted = sum(1 for row in rows if row[3] is not None)
    heading = "## LangGraph" if steps == 1000 else f"## LangGraph, {steps:,} steps"
    out = [f"{heading}\n\n`benchmarks/langgraph_bench.py`, {now}: the same LangGraph graph on "
           f"{'; '.join(s.name for s in items)}, one after the other in one run ({elapsed / 60:.1f} min).\n"]  # fmt: skip
    out.append("\n".join(f"- {k}: {v}" for k, v in info.items()) + "\n")
    out.append(
        f"The graph: one node appends one ~500-character `AIMessage` per step with `add_messages` and loops to itself; "
        f'one thread, `durability="sync"`, {steps:,} steps (one checkpoint a step, plus the input checkpoints of the two '
        f"invocations: the first runs to 200 steps, where the size is taken, the second to {steps:,}).\n"
    )
    out.append(
        f"### Targets: {met} of {counted} met\n\n| target | measured | limit | result |\n| --- | --- | --- | --- |"
    )
    for name, measured, limit, ok in rows:
        verdict = "(diagnostic)" if ok is None else "**PASS**" if ok else "**FAIL**"
        out.append(f"| {name} | {measured} | {limit} | {verdict} |")
    out.append("\n### Measurements\n")
    out.append(f"| saver | bytes after 200 steps | bytes after {steps:,} steps | put median, puts 6-55 | put median, last 50 | "
               "put p90, last 50 | `get_tuple` (latest) | `saver.list()` all | `get_state_history` all | run |")  # fmt: skip
    out.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in items:
        r = s.results
        b200 = ", ".join(f"{human(v)} ({k})" for k, v in r["bytes_200"].items())
        bend = ", ".join(f"{human(v)} ({k})" for k, v in r["bytes_end"].items())
        last = sorted(s.puts[-50:])
        p90 = last[int(len(last) * 0.9) - 1] * 1e3 if last else float("nan")
        out.append(
            f"| {s.name} | {b200} | {bend} | {median_ms(s.puts[5:55]):.2f} ms | {median_ms(s.puts[-50:]):.2f} ms | "
            f"{p90:.2f} ms | {r['get_tuple_ms']:.1f} ms | {r['list_ms']:.0f} ms | {r['history_s']:.2f} s | {r['run_s']:.1f} s |"
        )
    if items and items[0].results.get("history_rounds"):
        rounds = len(items[0].results["history_rounds"])
        lg = next((s for s in items if s.key == "langgraph"), None)
        out.append(f"\n`get_state_history` side by side ({rounds} rounds, each reading the whole thread with every saver in "
                   "turn, a new saver each time):\n")  # fmt: skip
        out.append("| saver | rounds | median | SqliteSaver's median / this one's |\n| --- | --- | --- | --- |")
        for s in items:
            times = s.results["history_rounds"]
            vs = f"{statistics.median(lg.results['history_rounds']) / statistics.median(times):.2f}x" if lg else ""
            out.append(
                f"| {s.name} | {', '.join(f'{t:.2f} s' for t in times)} | {statistics.median(times):.2f} s | {vs} |"
            )
    if flat:
        out.append(
            "\nDiagnostic, put cost without a disk (SafepointSaver on the memory store, same graph): median put "
            f"{flat['ms_start']:.2f} ms at puts 6-55, {flat['ms_end']:.2f} ms over the last 50; Python function calls "
            f"per put (cProfile, a second run) {flat['calls_start']:.0f} -> {flat['calls_end']:.0f}. The call count is "
            "exact and does not drift with the machine: the work per put does not grow with the conversation.\n"
        )
    state = items[0].results if items else {}
    out.append(
        f"\n- Final state: {steps:,} messages; {human(state['state_msgpack'])} as LangGraph's serializer writes the "
        f"`messages` channel (msgpack: the denominator of the bytes target), {human(state['state_json'])} as the JSON "
        "safepoint stores.\n"
        "- Bytes on disk: SQLite files (LangGraph's and safepoint's) are the database plus its WAL after "
        "`PRAGMA wal_checkpoint(TRUNCATE)`. The directory store is counted twice: *apparent* = the sum of the file "
        "sizes, *allocated* = their blocks (`st_blocks * 512`): every file takes at least one 4 KiB block, so the store "
        "packs the records of each finished keyframe cycle (32 checkpoints) into one file, and a step's pending writes "
        "ride in the next checkpoint's record. Directories are not counted (as in the core benchmark).\n"
        "- `put` latency: the saver's `put` as LangGraph calls it (wrapped and timed), which includes the fsyncs. "
        "`get_tuple`: a new saver each time, median of 10 (both decode all messages). `saver.list()`: a new saver, "
        "iterating every checkpoint and reading its id and metadata (what a history view needs; SafepointSaver reads "
        "a tuple's state and pending writes only when they are used, SqliteSaver reads them eagerly). "
        "`get_state_history`: LangGraph rebuilds every state of the history. SqliteSaver decodes every checkpoint's "
        "whole message list (about steps^2 / 2 message objects); SafepointSaver reads a listing's records and keyframes "
        "once and rebuilds each distinct message once, handing the same object to every checkpoint that holds it "
        "(`safepoint/integrations/_langgraph_history.py`).\n"
    )
    return "\n".join(out) + "\n"


def machine_info(work: Path) -> dict[str, str]:
    return machine_facts(work, packages=("langgraph", "langgraph-checkpoint", "langgraph-checkpoint-sqlite"))


def main() -> int:
    options = parser(
        __doc__,
        whole_doc=True,
        out="write the results as a Markdown section to this file",
        strict="exit with status 1 when a target is missed",
    )
    options.add_argument("--steps", type=int, default=1000)
    options.add_argument("--append", type=Path, help="append the results as a Markdown section to this file")
    options.add_argument("--saver", action="append", choices=["langgraph", "directory", "sqlite"], help="only these")
    options.add_argument("--history-rounds", type=int, default=3, help="side-by-side get_state_history rounds")
    args = options.parse_args()
    work = Path(tempfile.mkdtemp(prefix="safepoint-lg-bench-", dir=os.environ.get("BENCH_DIR")))
    started = time.perf_counter()
    try:
        info = machine_info(work)
        items = [s for s in subjects(work) if not args.saver or s.key in args.saver]
        if any(s.key == "langgraph" for s in items) and importlib.util.find_spec("langgraph.checkpoint.sqlite") is None:
            print("LangGraph's SqliteSaver is not installed (pip install langgraph-checkpoint-sqlite): skipped")
            items = [s for s in items if s.key != "langgraph"]
        for subject in items:
            run(subject, args.steps, lambda line: print(line, flush=True))
        if args.history_rounds > 0:
            history_side_by_side(items, args.history_rounds, lambda line: print(line, flush=True))
        flat = flatness(args.steps) if not args.saver else {}
        text = markdown(items, args.steps, info, time.perf_counter() - started, flat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.append:
        with args.append.open("a") as f:
            f.write("\n" + text)
    failed = [row for row in targets(items, args.steps) if row[3] is False]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    sys.exit(main())
