"""Real LangGraph graphs on SafepointSaver: interrupt and resume in another process, history, forks, values.

Run as a script, this module is the other process: `python test_langgraph_graphs.py resume STORE THREAD ANSWER`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TypedDict
from uuid import UUID

import pytest

pytest.importorskip("langgraph")

import orjson  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage  # noqa: E402
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Command, Interrupt, Send, interrupt  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.cli import app  # noqa: E402
from safepoint.core import codec  # noqa: E402
from safepoint.integrations.langgraph import MARK, SafepointSaver, session_id_for  # noqa: E402


class State(TypedDict):
    messages: Annotated[list, add_messages]
    approved: str


def agent(state: State) -> dict[str, Any]:
    call = {"name": "lookup", "args": {"city": "Oslo"}, "id": "call-1", "type": "tool_call"}
    return {"messages": [AIMessage(content="Let me look that up.", tool_calls=[call])]}


def tools(state: State) -> dict[str, Any]:
    return {"messages": [ToolMessage(content="4 degrees", tool_call_id="call-1", name="lookup")]}


def review(state: State) -> dict[str, Any]:
    answer = interrupt({"question": "Send the answer?", "draft": state["messages"][-1].content})
    return {"approved": answer, "messages": [AIMessage(content=f"It is 4 degrees in Oslo ({answer}).")]}


def build(store: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node(agent)
    graph.add_node(tools)
    graph.add_node(review)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", "tools")
    graph.add_edge("tools", "review")
    graph.add_edge("review", END)
    return graph.compile(checkpointer=store if isinstance(store, SafepointSaver) else SafepointSaver(store))


def config(thread: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread, **extra}}


@pytest.fixture
def no_pickle(monkeypatch):
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle was used")

    for name in ("dumps", "loads", "dump", "load"):
        monkeypatch.setattr(pickle, name, refuse)


def start(store: Any, thread: str) -> Any:
    graph = build(store)
    out = graph.invoke({"messages": [HumanMessage(content="Weather in Oslo?")]}, config(thread))
    assert [i.value["question"] for i in out["__interrupt__"]] == ["Send the answer?"]
    return graph


def test_interrupt_then_resume_from_another_process(tmp_path, no_pickle):
    store = tmp_path / "store"
    graph = start(store, "t-resume")
    assert graph.get_state(config("t-resume")).next == ("review",)

    done = subprocess.run(
        [sys.executable, __file__, "resume", str(store), "t-resume", "approved by Ann"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

    state = build(store).get_state(config("t-resume"))  # a new saver: nothing cached from before
    assert state.next == ()
    assert state.values["approved"] == "approved by Ann"
    kinds = [type(m).__name__ for m in state.values["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert state.values["messages"][1].tool_calls[0]["args"] == {"city": "Oslo"}
    assert state.values["messages"][2].tool_call_id == "call-1"
    assert json.loads(done.stdout)["last"] == "It is 4 degrees in Oslo (approved by Ann)."
    assert sp.open(store).fsck().ok


def test_messages_round_trip_as_json_without_pickle(no_pickle):
    saver = SafepointSaver("memory://")
    graph = build(saver)
    graph.invoke({"messages": [HumanMessage(content="Weather in Oslo?", id="h1")]}, config("t-json"))
    graph.invoke(Command(resume="yes"), config("t-json"))
    messages = graph.get_state(config("t-json")).values["messages"]
    assert messages[0] == HumanMessage(content="Weather in Oslo?", id="h1")
    assert isinstance(messages[1], AIMessage) and messages[1].tool_calls[0]["id"] == "call-1"
    assert isinstance(messages[2], ToolMessage) and messages[2].content == "4 degrees"

    keys = saver.store.list()
    assert any(key.startswith("langgraph/writes/") for key in keys)
    for key in keys:
        if key.startswith(("commits/", "objects/", "sessions/", "langgraph/threads/", "langgraph/writes/")):
            orjson.loads(codec.unseal(saver.store.get(key), key))  # every record and object is JSON
    head = saver.repository.load("t-json")
    stored = head.state["channel_values"]["messages"]["v"]
    assert stored[1]["data"][1] == "AIMessage"
    assert stored[1]["data"][2]["tool_calls"][0]["args"] == {"city": "Oslo"}


def test_history_and_fork_from_an_older_checkpoint(tmp_path):
    store = tmp_path / "store"
    graph = start(store, "t-fork")
    graph.invoke(Command(resume="first"), config("t-fork"))
    history = list(graph.get_state_history(config("t-fork")))
    assert [h.metadata["step"] for h in history] == sorted((h.metadata["step"] for h in history), reverse=True)
    assert history[-1].metadata["source"] == "input"
    before_review = next(h for h in history if h.next == ("review",))

    forked = graph.update_state(before_review.config, {"messages": [HumanMessage(content="Use Celsius.")]})
    assert forked["configurable"]["checkpoint_id"] != before_review.config["configurable"]["checkpoint_id"]
    fork = graph.get_state(forked)
    assert fork.parent_config["configurable"]["checkpoint_id"] == before_review.config["configurable"]["checkpoint_id"]
    assert fork.values["messages"][-1].content == "Use Celsius."
    assert "approved" not in fork.values

    out = graph.invoke(Command(resume="second"), forked)
    assert out["approved"] == "second"
    head = graph.get_state(config("t-fork"))
    assert head.values["approved"] == "second"
    # The original branch is still there; the fork is a child of the older checkpoint, not of the old head.
    repo = sp.open(store)
    chain = repo.history("t-fork")
    fork_record = next(
        c for c in chain if c.meta["langgraph"]["checkpoint_id"] == forked["configurable"]["checkpoint_id"]
    )
    assert fork_record.parent == before_review.config["configurable"][MARK][0]
    assert len(list(graph.get_state_history(config("t-fork")))) == len(chain)
    assert repo.fsck().ok


def test_replay_from_an_older_checkpoint_branches(tmp_path):
    graph = start(tmp_path / "store", "t-replay")
    graph.invoke(Command(resume="first"), config("t-replay"))
    before_tools = next(h for h in graph.get_state_history(config("t-replay")) if h.next == ("tools",))
    out = graph.invoke(None, before_tools.config)  # replay: runs tools again, stops at the interrupt
    assert "__interrupt__" in out
    out = graph.invoke(Command(resume="again"), config("t-replay"))
    assert out["approved"] == "again"


def test_values_of_many_types_round_trip():
    saver = SafepointSaver("memory://")
    values = {
        "bytes": b"\x00\xffraw",
        "set": {1, 2, 3},
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "uuid": UUID("12345678-1234-5678-1234-567812345678"),
        "decimal": Decimal("1.10"),
        "int_keys": {1: "one", 2: "two"},
        "floats": [float("nan"), float("inf"), -0.5],
        "looks_tagged": {"__lg__": "not a tag", "x": [1, {"__lg__": 2}]},
        "interrupt": Interrupt(value={"q": 1}, id="i1"),
        "send": Send("node", {"arg": 1}),
        "nested": {"history": [HumanMessage(content="hi", id="m1")], "none": None, "big": 2**63 - 1},
    }
    versions = {key: saver.get_next_version(None) for key in values}
    checkpoint = {
        "v": 4,
        "id": "1f000000-0000-6000-8000-000000000001",
        "ts": "2026-01-01T00:00:00+00:00",
        "channel_values": values,
        "channel_versions": versions,
        "versions_seen": {},
        "updated_channels": None,
    }
    stored = saver.put(config("t-values", checkpoint_ns=""), checkpoint, {"source": "input", "step": -1}, versions)
    saver.put_writes(stored, [("__error__", ValueError("boom")), ("__interrupt__", [Interrupt(value=1, id="x")])], "t1")
    saver.put_writes(stored, [("out", b"\x01"), ("out2", {"k": (1, 2)})], "t2", "path")
    got = SafepointSaver(saver.store).get_tuple(config("t-values"))  # a new saver: decoded from the store
    back = got.checkpoint["channel_values"]
    for key in ("bytes", "set", "when", "uuid", "decimal", "int_keys", "looks_tagged", "interrupt", "send"):
        assert back[key] == values[key], key
    assert back["floats"][0] != back["floats"][0] and back["floats"][1:] == [float("inf"), -0.5]
    assert back["nested"] == values["nested"]
    writes = {(task, channel): value for task, channel, value in got.pending_writes}
    assert writes[("t1", "__error__")] == "ValueError('boom')"  # LangGraph's serializer keeps an error's repr
    assert writes[("t1", "__interrupt__")] == [Interrupt(value=1, id="x")]
    assert writes[("t2", "out")] == b"\x01" and writes[("t2", "out2")] == {"k": [1, 2]}


def test_pickle_fallback_is_refused():
    class Opaque:
        pass

    saver = SafepointSaver("memory://", serde=JsonPlusSerializer(pickle_fallback=True))
    checkpoint = {"v": 4, "id": "1f0", "ts": "", "channel_values": {"thing": Opaque()}, "channel_versions": {}}
    checkpoint |= {"versions_seen": {}, "updated_channels": None}
    with pytest.raises(sp.NotSerializable, match=r"channel_values\.thing.*pickle"):
        saver.put(config("t-pickle", checkpoint_ns=""), checkpoint, {"source": "input", "step": -1}, {})
    assert saver.get_tuple(config("t-pickle")) is None


def test_list_reads_states_only_when_used():
    saver = SafepointSaver("memory://")
    graph = start(saver, "t-lazy")
    graph.invoke(Command(resume="ok"), config("t-lazy"))
    loads = []
    real = saver._decode_state
    saver._decode_state = lambda *a, **k: loads.append(1) or real(*a, **k)  # type: ignore[method-assign]
    tuples = list(saver.list(config("t-lazy")))
    assert len(tuples) >= 5 and not loads
    eager = list(SafepointSaver(saver.store).list(config("t-lazy")))
    for lazy, plain in zip(tuples, eager, strict=True):
        assert lazy.checkpoint == plain.checkpoint and plain.checkpoint == lazy.checkpoint
        assert lazy.pending_writes == plain.pending_writes and len(lazy.pending_writes) == len(plain.pending_writes)
        assert type(copy.deepcopy(lazy.checkpoint)) is dict and dict(lazy.checkpoint) == plain.checkpoint
    assert loads and "channel_values" in tuples[0].checkpoint


def test_threads_appear_in_the_cli_like_native_sessions(tmp_path):
    store = tmp_path / "store"
    start(store, "t-cli").invoke(Command(resume="ok"), config("t-cli"))
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--store", str(store), *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "t-cli" in cli("ls") and "langgraph" in cli("ls")
    listed = json.loads(cli("ls", "--json"))
    assert [s["id"] for s in listed] == ["t-cli"]
    history = cli("history", "t-cli")
    assert "input:-1" in history and "loop:" in history
    shown = json.loads(cli("show", "t-cli", "--json"))
    assert shown["state"]["channel_values"]["approved"] == "ok"
    seqs = [c.seq for c in sp.open(store).history("t-cli")]
    diff = cli("diff", "t-cli", str(seqs[-2]), str(seqs[-1]))
    assert "state.channel_values.messages" in diff or "state.channel_values.approved" in diff
    assert "ok: no problems found" in cli("fsck")


def test_copy_prune_and_delete_keep_the_store_sound(tmp_path):
    store = tmp_path / "store"
    saver = SafepointSaver(store)
    graph = build(saver)
    for n in range(8):  # enough checkpoints for the directory store to pack a finished cycle
        graph.invoke({"messages": [HumanMessage(content=f"question {n}")]}, config("t-keep"))
        graph.invoke(Command(resume=f"answer {n}"), config("t-keep"))
    assert sp.open(store).store.list("packs/")
    head = graph.get_state(config("t-keep"))
    saver.copy_thread("t-keep", "t-copy")
    assert graph.get_state(config("t-copy")).values == head.values
    assert sp.open(store).info("t-copy").parent["session"] == "t-keep"

    saver.prune(["t-keep"], strategy="keep_latest")
    assert len(list(saver.list(config("t-keep")))) == 1
    assert SafepointSaver(store).get_tuple(config("t-keep")).checkpoint["channel_values"]["approved"] == "answer 7"
    out = graph.invoke({"messages": [HumanMessage(content="one more")]}, config("t-keep"))
    assert [m.content for m in out["messages"]][-3:] == ["one more", "Let me look that up.", "4 degrees"]
    assert sp.open(store).fsck().ok

    saver.delete_thread("t-copy")
    assert graph.get_state(config("t-copy")).values == {}
    assert not sp.open(store).exists("t-copy")
    assert sp.open(store).gc().deleted_objects >= 0 and sp.open(store).fsck().ok


def test_async_graph_runs_on_the_same_code(tmp_path):
    async def scenario() -> tuple[str, int]:
        graph = build(tmp_path / "store")
        out = await graph.ainvoke({"messages": [HumanMessage(content="Weather in Oslo?")]}, config("t-async"))
        assert "__interrupt__" in out
        out = await graph.ainvoke(Command(resume="async ok"), config("t-async"))
        history = [snapshot async for snapshot in graph.aget_state_history(config("t-async"))]
        return out["approved"], len(history)

    approved, steps = asyncio.run(scenario())
    assert approved == "async ok" and steps == len(sp.open(tmp_path / "store").history("t-async"))


def test_subgraph_namespaces_are_sessions_of_their_own():
    class Inner(TypedDict):
        messages: Annotated[list, add_messages]

    def inner_step(state: Inner) -> dict[str, Any]:
        return {"messages": [AIMessage(content="from the subgraph")]}

    inner = StateGraph(Inner)
    inner.add_node(inner_step)
    inner.add_edge(START, "inner_step")
    outer = StateGraph(Inner)
    outer.add_node("child", inner.compile())
    outer.add_edge(START, "child")
    saver = SafepointSaver("memory://")
    graph = outer.compile(checkpointer=saver)
    graph.invoke({"messages": [HumanMessage(content="hi")]}, config("t-sub"), subgraphs=True)
    sessions = {info.id for info in saver.repository.sessions()}
    assert "t-sub" in sessions and any(name.startswith("t-sub#child:") for name in sessions), sessions
    assert graph.get_state(config("t-sub")).values["messages"][-1].content == "from the subgraph"
    saver.delete_thread("t-sub")
    assert saver.repository.sessions() == []


def test_session_names_follow_the_thread_id():
    assert session_id_for("t-1") == "t-1"
    assert session_id_for("user/42") == "user%2F42"
    assert session_id_for("t-1", "child:abc") == "t-1#child:abc"
    assert session_id_for("t#1") != session_id_for("t", "1")
    assert session_id_for("..").startswith("#langgraph-") and session_id_for("x" * 300).startswith("#langgraph-")


def test_a_native_session_is_never_written_to():
    store = sp.open("memory://")
    with store.session("shared-name", lease=False) as s:
        s.save()
    saver = SafepointSaver(store)
    with pytest.raises(sp.SafepointError, match="not a LangGraph thread"):
        saver.get_tuple(config("shared-name"))


def _resume(store: str, thread: str, answer: str) -> None:
    out = build(Path(store)).invoke(Command(resume=answer), config(thread))
    print(json.dumps({"last": out["messages"][-1].content}))


if __name__ == "__main__" and sys.argv[1:2] == ["resume"]:
    _resume(*sys.argv[2:5])
