#!/usr/bin/env python3
"""Framework adapters: what a Pydantic AI run and an ADK conversation cost on safepoint and on the frameworks' own stores.

    python benchmarks/adapters_bench.py              # 200 steps / 400 events (about a minute)
    python benchmarks/adapters_bench.py --quick      # 50 / 100
    python benchmarks/adapters_bench.py --out s.md   # also write the results as a Markdown section

Pydantic AI (pydantic-ai-harness's StepStore): a run of N steps as `StepPersistence` writes it, without a
model in the loop: each step appends two events, starts and finishes one tool effect, and saves a snapshot of
the whole history so far, which grows by a request and a response of ~600 bytes each. On the harness's
FileStepStore and SqliteStepStore and on SafepointStepStore (directory and SQLite stores).

Google ADK (BaseSessionService): one session, M appended events of ~500 bytes of text each, on ADK's
SqliteSessionService and on SafepointSessionService (directory and SQLite stores).

Reported: the time per store call (median over the run), the whole run's time, and the bytes on disk after it.
No targets: the point of the adapters is durability and sharing; these figures say what that costs.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import choose_tmp_base, describe_machine, md_table, ms, parser, size, write_out  # noqa: E402
from google.adk.events.event import Event  # noqa: E402
from google.adk.sessions.sqlite_session_service import SqliteSessionService  # noqa: E402
from google.genai import types  # noqa: E402
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart  # noqa: E402
from pydantic_ai_harness.step_persistence import (  # noqa: E402
    ContinuableSnapshot,
    FileStepStore,
    SqliteStepStore,
    StepEvent,
    ToolEffectRecord,
)

from safepoint.integrations.adk import SafepointSessionService  # noqa: E402
from safepoint.integrations.pydantic_ai import SafepointStepStore  # noqa: E402


def disk(path: Path) -> str:
    """Bytes on disk: a directory's files, or a SQLite database with its write-ahead log (said apart: the log
    is reused space that SQLite's checkpoints fold back into the database, up to ~4 MiB by default)."""
    if not path.is_file():
        return size(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()))
    wal = path.with_name(path.name + "-wal")
    logged = wal.stat().st_size if wal.exists() else 0
    return f"{size(path.stat().st_size)} + {size(logged)} WAL"


async def pydantic_run(store, steps: int) -> list[float]:
    """One run as StepPersistence writes it; the time of every store call."""
    times: list[float] = []

    async def call(awaitable) -> None:
        start = time.perf_counter()
        await awaitable
        times.append(time.perf_counter() - start)

    history: list = []
    for step in range(steps):
        await call(store.append_event(StepEvent(run_id="bench", kind="model_request_started", step_index=step)))
        history += [
            ModelRequest(parts=[UserPromptPart(f"step {step}: " + "please look this up " * 30)]),
            ModelResponse(parts=[TextPart(f"answer {step}: " + "here is what I found " * 28)]),
        ]
        call_id = f"call-{step}"
        effect = dict(tool_call_id=call_id, tool_name="lookup", run_id="bench")
        await call(store.record_tool_effect(ToolEffectRecord(**effect, status="started")))
        await call(store.record_tool_effect(ToolEffectRecord(**effect, status="completed")))
        await call(store.append_event(StepEvent(run_id="bench", kind="tool_call_completed", step_index=step)))
        await call(store.save_snapshot(ContinuableSnapshot(run_id="bench", step_index=step, messages=list(history))))
    return times


async def adk_conversation(service, events: int) -> list[float]:
    session = await service.create_session(app_name="bench", user_id="u", session_id="s")
    times = []
    for i in range(events):
        text = f"{i} " + "a few words of conversation " * 18
        event = Event(
            author="user" if i % 2 == 0 else "agent",
            invocation_id=f"inv-{i // 2}",
            content=types.Content(role="user" if i % 2 == 0 else "model", parts=[types.Part(text=text)]),
        )
        start = time.perf_counter()
        await service.append_event(session, event)
        times.append(time.perf_counter() - start)
    return times


def row(name: str, times: list[float], path: Path) -> list[str]:
    return [name, str(len(times)), ms(statistics.median(times)), f"{sum(times):.2f} s", disk(path)]


def main() -> None:
    args = parser(
        __doc__, quick="50 steps / 100 events instead of 200 / 400", out="write a Markdown section", tmp_dir=True
    ).parse_args()
    steps, events = (50, 100) if args.quick else (200, 400)
    base = Path(tempfile.mkdtemp(prefix="adapters-bench-", dir=choose_tmp_base(args.tmp_dir)))
    header = describe_machine(base, packages=["pydantic-ai-harness", "pydantic-ai-slim", "google-adk"])
    started = time.perf_counter()

    pyd_rows = []
    for name, make, path in [
        ("harness FileStepStore", lambda p: FileStepStore(p), base / "pyd-harness-files"),
        ("harness SqliteStepStore", lambda p: SqliteStepStore(database=str(p)), base / "pyd-harness.db"),
        ("SafepointStepStore, directory", lambda p: SafepointStepStore(str(p)), base / "pyd-sp-dir"),
        ("SafepointStepStore, SQLite", lambda p: SafepointStepStore(f"sqlite:///{p}"), base / "pyd-sp.db"),
    ]:
        times = asyncio.run(pydantic_run(make(path), steps))
        pyd_rows.append(row(name, times, path))
        print(pyd_rows[-1], flush=True)

    adk_rows = []
    for name, make, path in [
        ("ADK SqliteSessionService", lambda p: SqliteSessionService(str(p)), base / "adk.db"),
        ("SafepointSessionService, directory", lambda p: SafepointSessionService(str(p)), base / "adk-sp-dir"),
        ("SafepointSessionService, SQLite", lambda p: SafepointSessionService(f"sqlite:///{p}"), base / "adk-sp.db"),
    ]:
        times = asyncio.run(adk_conversation(make(path), events))
        adk_rows.append(row(name, times, path))
        print(adk_rows[-1], flush=True)

    columns = ["store", "calls", "median per call", "whole run", "on disk"]
    today = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Framework adapters, {today}" + (" (quick run)" if args.quick else ""), ""]
    lines += [f"- {line}" for line in header] + [f"- Run time: {(time.perf_counter() - started) / 60:.1f} min", ""]
    lines += [f"### Pydantic AI: a run of {steps} steps (5 store calls a step; the history grows ~1.2 KB a step)", ""]
    lines += md_table(columns, pyd_rows) + [""]
    lines += [f"### Google ADK: one session, {events} events of ~500 bytes", ""]
    lines += md_table(columns, adk_rows) + [""]
    lines += [
        "- The harness's FileStepStore writes by atomic rename without fsync (fast; a power loss may lose the last",
        "  records); the safepoint directory store fsyncs every commit. Its on-disk size is the run's history as",
        "  deltas over shared objects, where the harness file store keeps every snapshot whole.",
        "- `python benchmarks/adapters_bench.py`; the numbers are for one run, on this shared machine.",
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    write_out(section, args.out)
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
