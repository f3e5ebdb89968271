"""`list()` / `get_state_history` read through one History per listing: the same values as loading each checkpoint
alone, and as LangGraph's own InMemorySaver, across keyframe cycles, rebased keyframes and non-message lists."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402

from safepoint.integrations.langgraph import SafepointSaver  # noqa: E402

STEPS = 75  # more than two keyframe cycles of 32
THREAD = {"configurable": {"thread_id": "history"}, "recursion_limit": 1000}


class State(TypedDict):
    messages: Annotated[list, add_messages]
    notes: Annotated[list, operator.add]  # plain JSON items and repeated messages, not deduplicated by id
    count: int


def build(saver: Any) -> Any:
    def step(state: State) -> dict[str, Any]:
        n = state.get("count", 0) + 1
        notes: list[Any] = [{"step": n, "tags": ["a", n]}]
        if n % 10 == 0:
            notes += [HumanMessage(content="same"), HumanMessage(content="same")]  # equal, stored twice
        return {"messages": [AIMessage(content=f"message {n}", id=f"m{n}")], "notes": notes, "count": n}

    graph = StateGraph(State)
    graph.add_node(step)
    graph.add_edge(START, "step")
    graph.add_conditional_edges("step", lambda s: "step" if s["count"] < STEPS else END)
    return graph.compile(checkpointer=saver)


def plain(values: dict[str, Any]) -> dict[str, Any]:
    def one(value: Any) -> Any:
        if isinstance(value, list):
            return [one(v) for v in value]
        if hasattr(value, "model_dump"):
            return (type(value).__name__, value.model_dump())
        return value

    return {key: one(value) for key, value in values.items()}


@pytest.fixture(params=["directory", "sqlite"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> SafepointSaver:
    return SafepointSaver(tmp_path / "store" if request.param == "directory" else f"sqlite:///{tmp_path / 'x.db'}")


def test_history_matches_langgraphs_own_saver_and_single_loads(saver: SafepointSaver) -> None:
    ours, theirs = build(saver), build(InMemorySaver())
    ours.invoke({"messages": [HumanMessage(content="go", id="h0")], "notes": [], "count": 0}, THREAD)
    theirs.invoke({"messages": [HumanMessage(content="go", id="h0")], "notes": [], "count": 0}, THREAD)

    history = list(ours.get_state_history(THREAD))
    expected = list(theirs.get_state_history(THREAD))
    assert len(history) == len(expected) == STEPS + 2
    assert [plain(s.values) for s in history] == [plain(s.values) for s in expected]
    assert [s.next for s in history] == [s.next for s in expected]
    for snapshot in history[::7]:  # a checkpoint loaded alone (get_tuple, no listing) gives the same values
        assert plain(build(SafepointSaver(saver.store)).get_state(snapshot.config).values) == plain(snapshot.values)

    # Within one listing a message is rebuilt once: consecutive checkpoints hold the same object ...
    newest, older = history[0].values["messages"], history[1].values["messages"]
    assert newest[5] is older[5]
    # ... but never the same list, and a message stored twice in one list stays two objects.
    assert newest is not older
    newest.append(AIMessage(content="changed by the caller"))
    assert len(older) == len(newest) - 2
    twice = [note for note in history[0].values["notes"] if isinstance(note, HumanMessage)]
    assert len(twice) == 2 * (STEPS // 10) and twice[0] == twice[1] and twice[0] is not twice[1]
    first, second = history[0].values["notes"][0], history[1].values["notes"][0]
    assert first == second and first is not second  # plain items are copies per checkpoint


def test_history_after_a_prune_that_rebased_keyframes(tmp_path: Path) -> None:
    """`delete_for_runs`/`prune` rewrite a kept delta as a keyframe (`Chain.rebase`): a listing starts from it."""
    saver = SafepointSaver(tmp_path / "store")
    graph = build(saver)
    graph.invoke({"messages": [], "notes": [], "count": 0}, THREAD)
    before = [plain(s.values) for s in graph.get_state_history(THREAD)]
    tuples = list(saver.list(THREAD))
    # Rebase a checkpoint in the middle of a cycle, as deleting the ones before it would.
    chain = saver._thread("history", "", create=False).chain
    middle = [t for t in tuples if t.config["configurable"]["__safepoint_at__"][0] == 50][0]
    chain.rebase(50)
    assert "root" in chain.record(50)
    after = [plain(s.values) for s in build(SafepointSaver(tmp_path / "store")).get_state_history(THREAD)]
    assert after == before
    assert plain(build(SafepointSaver(tmp_path / "store")).get_state(middle.config).values) == before[len(before) - 50]
