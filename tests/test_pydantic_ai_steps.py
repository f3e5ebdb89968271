"""SafepointStepStore against pydantic-ai-harness's `StepStore` contract, as its own stores behave.

Each scenario runs on the harness's `InMemoryStepStore` (the reference) and on ours, and the two must give the
same observable answers: ordering of runs and events, replay suppression by idempotency key, the complete vs
interrupted snapshot gate, the tool-effect ledger's upserts and unresolved calls. Then what only a shared,
persistent store must also get right: a second process sees everything, concurrent appends lose nothing, a
run id cannot be registered twice, and the CLI reads a run like a native session.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from services import require_module

require_module("pydantic_ai_harness", "pydantic-ai")
pytest_plugins = ["adapter_stores"]  # the store_url fixture: a directory, SQLite, PostgreSQL, Redis
pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")  # Redis without disk

from pydantic_ai import Agent, RunContext  # noqa: E402
from pydantic_ai.messages import (  # noqa: E402
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    UserPromptPart,
)
from pydantic_ai.models.test import TestModel  # noqa: E402
from pydantic_ai_harness import StepPersistence  # noqa: E402
from pydantic_ai_harness.step_persistence import (  # noqa: E402
    ContinuableSnapshot,
    FileStepStore,
    InMemoryStepStore,
    RunRecord,
    StepEvent,
    ToolEffectRecord,
    continue_run,
)
from typer.testing import CliRunner  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.cli import app  # noqa: E402
from safepoint.errors import SafepointError  # noqa: E402
from safepoint.integrations.pydantic_ai import SafepointStepStore  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def messages(text: str, *, open_call: bool = False) -> list:
    parts = [ToolCallPart("lookup", {"q": text}, tool_call_id="c1")] if open_call else [TextPart(text)]
    return [ModelRequest(parts=[UserPromptPart(text, timestamp=T0)]), ModelResponse(parts=parts, timestamp=T0)]


async def runs_scenario(store) -> list:
    await store.register_run(RunRecord(run_id="r-late", conversation_id="c1", parent_run_id="p", started_at=at(30)))
    await store.register_run(RunRecord(run_id="r-early", conversation_id="c1", started_at=at(10)))
    await store.register_run(RunRecord(run_id="r-mid", conversation_id="c2", parent_run_id="p", started_at=at(20)))
    ids = lambda runs: [r.run_id for r in runs]  # noqa: E731
    run = await store.get_run(run_id="r-late")
    return [
        ids(await store.list_runs()),
        ids(await store.list_runs(conversation_id="c1")),
        ids(await store.list_runs(parent_run_id="p")),
        ids(await store.list_runs(parent_run_id="p", conversation_id="c1")),
        ids(await store.list_runs(conversation_id="none")),
        (run.run_id, run.conversation_id, run.parent_run_id, run.started_at),
        await store.get_run(run_id="missing"),
    ]


async def events_scenario(store) -> list:
    for i, (kind, key) in enumerate(
        [
            ("run_started", "k0"),
            ("model_request_started", "k1"),
            ("model_request_started", "k1"),
            ("run_completed", None),
        ]
    ):
        await store.append_event(StepEvent(run_id="r", kind=kind, step_index=i, idempotency_key=key, timestamp=at(i)))
    await store.append_event(StepEvent(run_id="r", kind="run_completed", step_index=9, timestamp=at(9)))
    await store.append_event(
        StepEvent(run_id="r", kind="tool_call_failed", step_index=5, tool_name="t", error="boom", metadata={"a": "b"})
    )
    events = await store.list_events(run_id="r")
    shown = [(e.kind, e.step_index, e.idempotency_key, e.tool_name, e.error, dict(e.metadata)) for e in events]
    return [shown, [e.timestamp for e in events[:4]], await store.list_events(run_id="other")]


async def snapshots_scenario(store) -> list:
    async def save(step: int, state: str, key: str | None, text: str) -> None:
        msgs = messages(text, open_call=state == "interrupted")
        await store.save_snapshot(
            ContinuableSnapshot(run_id="r", step_index=step, messages=msgs, state=state, idempotency_key=key)
        )

    before = await store.latest_snapshot(run_id="r")
    await save(1, "complete", "0:1:complete", "first")
    await save(2, "interrupted", "1:2:interrupted", "crashed")
    await save(1, "complete", "0:1:complete", "replayed")  # the same key again: suppressed
    latest = await store.latest_snapshot(run_id="r")
    newest = await store.latest_snapshot(run_id="r", include_interrupted=True)
    await save(3, "complete", "2:3:complete", "second")
    await save(4, "complete", None, "no key")
    await save(4, "complete", None, "no key again")  # no key: always appended
    listed = await store.list_snapshots(run_id="r")
    everything = await store.list_snapshots(run_id="r", include_interrupted=True)
    text = lambda s: s.messages[0].parts[0].content  # noqa: E731
    return [
        before,
        (latest.step_index, latest.state, text(latest), latest.messages),
        (newest.step_index, newest.state, text(newest), newest.messages),
        [text(s) for s in listed],
        [(text(s), s.state) for s in everything],
        await store.latest_snapshot(run_id="other"),
    ]


async def effects_scenario(store) -> list:
    async def record(call: str, status: str, **more) -> None:
        await store.record_tool_effect(
            ToolEffectRecord(
                tool_call_id=call, tool_name=f"tool-{call}", run_id="r", status=status, started_at=T0, **more
            )
        )

    await record("a", "started")
    await record("b", "started", idempotency_key="charge-7", effect_summary="charge $7")
    await record("c", "started")
    await record("a", "completed", ended_at=at(1))
    await record("c", "failed", ended_at=at(2))
    await store.record_tool_effect(ToolEffectRecord(tool_call_id="a", tool_name="x", run_id="other", status="started"))
    unresolved = await store.list_unresolved_tool_effects(run_id="r")
    a = await store.get_tool_effect(run_id="r", tool_call_id="a")
    return [
        [(e.tool_call_id, e.status, e.idempotency_key, e.effect_summary) for e in unresolved],
        (a.status, a.ended_at, a.tool_name),
        (await store.get_tool_effect(run_id="r", tool_call_id="c")).status,
        await store.get_tool_effect(run_id="r", tool_call_id="zzz"),
        [e.tool_call_id for e in await store.list_unresolved_tool_effects(run_id="other")],
    ]


SCENARIOS = [runs_scenario, events_scenario, snapshots_scenario, effects_scenario]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_answers_as_the_harness_in_memory_store_does(scenario, store_url):
    expected = asyncio.run(scenario(InMemoryStepStore()))
    assert asyncio.run(scenario(SafepointStepStore(store_url))) == expected
    # A second process (a new store object on the same URL) reads the same answers back from storage.
    reopened = SafepointStepStore(store_url)
    assert asyncio.run(read_back(scenario, reopened)) == asyncio.run(read_back(scenario, SafepointStepStore(store_url)))


async def read_back(scenario, store) -> list:
    if scenario is runs_scenario:
        return [r.run_id for r in await store.list_runs()]
    if scenario is events_scenario:
        return [e.kind for e in await store.list_events(run_id="r")]
    if scenario is snapshots_scenario:
        return [s.step_index for s in await store.list_snapshots(run_id="r", include_interrupted=True)]
    return [e.tool_call_id for e in await store.list_unresolved_tool_effects(run_id="r")]


@pytest.mark.parametrize("scenario", [events_scenario, snapshots_scenario], ids=lambda f: f.__name__)
def test_the_file_store_agrees_too(scenario, tmp_path):
    """The harness's FileStepStore gives the same answers on these two, so the reference is not one store's quirk.
    (Snapshot replay suppression is by exact key, as the file and SQLite stores do it; the in-memory store also
    drops a new key below its high-water sequence, a bound on its memory that a persistent store does not need.)"""
    expected = asyncio.run(scenario(FileStepStore(tmp_path / "harness")))
    assert asyncio.run(scenario(SafepointStepStore(str(tmp_path / "ours")))) == expected


def test_a_run_id_is_registered_once(tmp_path):
    store = SafepointStepStore(str(tmp_path / "s"))
    first = RunRecord(run_id="r", agent_name="a", registration_id="reg-1", started_at=T0)
    asyncio.run(store.register_run(first))
    asyncio.run(store.register_run(first))  # the same registration retried: fine
    with pytest.raises(ValueError, match="already registered"):
        asyncio.run(store.register_run(RunRecord(run_id="r", agent_name="b", registration_id="reg-2")))
    assert asyncio.run(SafepointStepStore(str(tmp_path / "s")).get_run(run_id="r")).agent_name == "a"


def test_concurrent_appends_from_two_processes_lose_nothing(store_url):
    """Two store objects (as two processes would hold) appending to one run at once: every event is kept."""
    stores = [SafepointStepStore(store_url), SafepointStepStore(store_url)]

    def append(n: int) -> None:
        for i in range(15):
            event = StepEvent(run_id="shared", kind="model_request_started", step_index=i, idempotency_key=f"{n}-{i}")
            stores[n].append_event_sync(event)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [e.idempotency_key for e in stores[0].list_events_sync("shared")]
    assert sorted(keys) == sorted(f"{n}-{i}" for n in range(2) for i in range(15))
    for n in range(2):  # each writer's own events stay in the order it appended them
        assert [k for k in keys if k.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(15)]


def agent_with(store) -> Agent:
    agent = Agent(TestModel(), capabilities=[StepPersistence(store=store, agent_name="mailer", capture_frontier=True)])

    @agent.tool
    async def send_email(ctx: RunContext, to: str) -> str:
        return f"sent to {to}"

    return agent


def test_a_harnessed_run_is_recorded_as_the_in_memory_store_records_it(store_url):
    async def run(store):
        await agent_with(store).run("mail bob", conversation_id="conv-1")
        (record,) = await store.list_runs(conversation_id="conv-1")
        events = await store.list_events(run_id=record.run_id)
        snaps = await store.list_snapshots(run_id=record.run_id, include_interrupted=True)
        latest = await continue_run(store, run_id=record.run_id)
        effect = await store.get_tool_effect(run_id=record.run_id, tool_call_id="pyd_ai_tool_call_id__send_email")
        return {
            "events": [(e.kind, e.step_index, e.tool_name, e.idempotency_key) for e in events],
            "snapshots": [(s.step_index, s.state, len(s.messages), s.idempotency_key) for s in snaps],
            "latest": [type(m).__name__ for m in latest],
            "effect": (effect.tool_name, effect.status),
        }

    expected = asyncio.run(run(InMemoryStepStore()))
    assert expected["events"][0][0] == "run_started" and expected["events"][-1][0] == "run_completed"
    assert asyncio.run(run(SafepointStepStore(store_url))) == expected


def test_runs_appear_in_the_cli_like_native_sessions(tmp_path):
    url = str(tmp_path / "s")
    store = SafepointStepStore(url)
    asyncio.run(agent_with(store).run("mail bob", conversation_id="conv-cli"))
    (record,) = asyncio.run(store.list_runs())

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, ["--store", url, *args])
        assert result.exit_code == 0, result.output
        return result.output

    listed = json.loads(cli("ls", "--json"))
    assert [(s["id"], s["agent"], s["status"]) for s in listed] == [(record.run_id, "pydantic-ai", "completed")]
    steps = [c.step for c in sp.open(url).history(record.run_id)]
    assert steps[0] == "run registered" and steps[-1] == "run_completed" and "snapshot complete (step 1)" in steps
    assert "run_completed" in cli("history", record.run_id)
    shown = json.loads(cli("show", record.run_id, "--json"))
    assert shown["state"]["run"]["conversation_id"] == "conv-cli"
    assert "state.tool_effects[0]" in cli("diff", record.run_id, "1", str(len(sp.open(url).history(record.run_id))))
    assert "ok: no problems found" in cli("fsck")


def test_a_started_tool_call_shows_as_in_doubt(tmp_path):
    url = str(tmp_path / "s")
    store = SafepointStepStore(url)
    started = ToolEffectRecord(tool_call_id="c9", tool_name="charge", run_id="r", status="started")
    store.record_tool_effect_sync(started)
    assert sp.open(url).summary("r").in_doubt == ["tool:c9"]
    store.record_tool_effect_sync(
        ToolEffectRecord(tool_call_id="c9", tool_name="charge", run_id="r", status="completed")
    )
    assert sp.open(url).summary("r").in_doubt == []


def test_a_native_session_is_never_written_to(tmp_path):
    url = str(tmp_path / "s")
    with sp.open(url).session("r-native", agent="researcher") as s:
        s.save(step="one")
    with pytest.raises(SafepointError, match="belongs to agent 'researcher'"):
        asyncio.run(
            SafepointStepStore(url).append_event(StepEvent(run_id="r-native", kind="run_started", step_index=0))
        )
    assert len(sp.open(url).history("r-native")) == 1


def test_history_grows_with_change_not_with_steps(tmp_path):
    """Every snapshot repeats the history before it; stored as deltas, a long run costs about what it added."""
    url = str(tmp_path / "s")
    store = SafepointStepStore(url)
    history = []
    for step in range(60):
        history += messages("x" * 400 + str(step))
        store.save_snapshot_sync(ContinuableSnapshot(run_id="long", step_index=step, messages=list(history)))
    total = sum(f.stat().st_size for f in (tmp_path / "s").rglob("*") if f.is_file())
    full_copies = sum(len(ModelMessagesTypeAdapter.dump_json(history[: 2 * (k + 1)])) for k in range(60))
    assert total < full_copies / 5, (total, full_copies)


def test_records_come_back_equal(store_url):
    """Every record reads back equal to what was written (dataclass equality: every field, messages included),
    from another store object, as the harness's own stores round-trip them."""
    store = SafepointStepStore(store_url)
    run = RunRecord(
        run_id="r1", conversation_id="c", parent_run_id="p", agent_name="a", metadata={"k": "v"}, registration_id="reg"
    )
    event = StepEvent(
        run_id="r1",
        kind="tool_call_failed",
        step_index=3,
        conversation_id="c",
        tool_call_id="t1",
        tool_name="add",
        error="boom",
        metadata={"x": "y"},
        idempotency_key="event:0",
    )
    snapshot = ContinuableSnapshot(
        run_id="r1",
        step_index=2,
        messages=messages("hi", open_call=True),
        conversation_id="c",
        agent_name="a",
        state="interrupted",
        idempotency_key="0:2:i",
    )
    effect = ToolEffectRecord(
        tool_call_id="t1",
        tool_name="add",
        run_id="r1",
        status="failed",
        ended_at=at(5),
        idempotency_key="add-1",
        effect_summary="added",
    )
    asyncio.run(store.register_run(run))
    asyncio.run(store.append_event(event))
    asyncio.run(store.append_event(event))  # a retried append: dropped
    asyncio.run(store.save_snapshot(snapshot))
    asyncio.run(store.record_tool_effect(effect))
    other = SafepointStepStore(store_url)
    assert asyncio.run(other.get_run(run_id="r1")) == run
    assert asyncio.run(other.list_events(run_id="r1")) == [event]
    assert asyncio.run(other.latest_snapshot(run_id="r1", include_interrupted=True)) == snapshot
    assert asyncio.run(other.latest_snapshot(run_id="r1")) is None  # interrupted only
    assert asyncio.run(other.get_tool_effect(run_id="r1", tool_call_id="t1")) == effect
    loaded = asyncio.run(continue_run(other, run_id="r1", include_interrupted=True))
    assert loaded == snapshot.messages and loaded is not snapshot.messages


def test_delete_run_removes_the_session_and_its_index_entry(tmp_path):
    url = str(tmp_path / "s")
    store = SafepointStepStore(url)
    for run_id in ("keep", "drop"):
        store.register_run_sync(RunRecord(run_id=run_id, conversation_id="c", registration_id=run_id))
        store.append_event_sync(StepEvent(run_id=run_id, kind="run_started", step_index=0))
    store.delete_run("drop")
    store.delete_run("never-existed")  # nothing to delete: no error
    assert [r.run_id for r in store.list_runs_sync(conversation_id="c")] == ["keep"]
    assert store.get_run_sync("drop") is None and store.list_events_sync("drop") == []
    assert [s.id for s in sp.open(url).sessions()] == ["keep"]
    result = CliRunner().invoke(app, ["--store", url, "fsck"])
    assert result.exit_code == 0 and "ok: no problems found" in result.output


def test_past_runs_are_searchable_through_the_harness_conversation_search(tmp_path):
    """The harness's ConversationSearch reads a conversation's persisted history from our store: a later run
    (another store object, as another process would open) finds what an earlier run said."""
    from pydantic_ai.messages import ToolReturnPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai_harness import ConversationSearch
    from pydantic_ai_harness.conversation_search import SnapshotHistorySource

    def told(messages, info) -> ModelResponse:
        return ModelResponse(parts=[TextPart("Noted: the launch code is PURPLE-42.")])

    def searcher(messages, info) -> ModelResponse:
        found = [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]
        if not found:
            return ModelResponse(parts=[ToolCallPart("search_conversation_history", {"query": "launch code"})])
        return ModelResponse(parts=[TextPart(str(found[-1].content))])

    def agent(model, store) -> Agent:
        search = ConversationSearch(SnapshotHistorySource(store), scope="conversation")
        return Agent(FunctionModel(model), capabilities=[StepPersistence(store=store), search])

    url = str(tmp_path / "s")
    asyncio.run(agent(told, SafepointStepStore(url)).run("remember the launch code", conversation_id="ops"))
    later = SafepointStepStore(url)
    answer = asyncio.run(agent(searcher, later).run("what was the launch code?", conversation_id="ops"))
    assert "PURPLE-42" in answer.output
    elsewhere = asyncio.run(agent(searcher, later).run("what was the launch code?", conversation_id="other"))
    assert "PURPLE-42" not in elsewhere.output  # scoped to the conversation
