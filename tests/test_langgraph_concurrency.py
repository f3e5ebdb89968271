"""Two writers on one LangGraph thread never fork it: the loser gets ConflictError and saves nothing.

Run as a script, this module is one of the racing processes:
`python test_langgraph_concurrency.py race STORE THREAD BARRIER NAME`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402
from langgraph.types import Command, interrupt  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.integrations.langgraph import SafepointSaver  # noqa: E402


class State(TypedDict):
    messages: Annotated[list, add_messages]


def build(saver: SafepointSaver, barrier: Path | None = None, name: str = "") -> Any:
    def ask(state: State) -> dict[str, Any]:
        who = interrupt("Who answers?")
        if barrier is not None:  # both processes have loaded the same head before either saves
            (barrier / name).touch()
            deadline = time.monotonic() + 60
            while len(os.listdir(barrier)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        return {"messages": [AIMessage(content=f"answered by {who}")]}

    graph = StateGraph(State)
    graph.add_node(ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=saver)


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def assert_no_fork(repo: sp.Repository, thread: str) -> None:
    chain = repo.history(thread)
    parents = Counter(c.parent for c in chain)
    assert all(n == 1 for n in parents.values()), f"two checkpoints share a parent: {parents}"
    # Each LangGraph checkpoint once: one committed again with a new status (an interrupt) is the same checkpoint.
    checkpoints = {c.meta["langgraph"]["checkpoint_id"]: c for c in chain}
    lg_parents = Counter(c.meta["langgraph"]["parent_checkpoint_id"] for c in checkpoints.values())
    assert all(n == 1 for n in lg_parents.values()), lg_parents


@pytest.mark.parametrize("kind", ["directory", "sqlite"])
def test_two_processes_resuming_one_thread_never_fork_it(kind, tmp_path):
    store = str(tmp_path / "store") if kind == "directory" else f"sqlite:///{tmp_path}/store.db"
    build(SafepointSaver(store)).invoke({"messages": [HumanMessage(content="hello")]}, cfg("race"))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "race", store, "race", str(barrier), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("ann", "bob")
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(json.loads(out))

    assert sorted(r["result"] for r in results) == ["conflict", "saved"], results
    loser = next(r for r in results if r["result"] == "conflict")
    assert loser["error"].startswith("LangGraph thread 'race'") and "nothing was saved" in loser["error"]
    winner = next(r["name"] for r in results if r["result"] == "saved")
    repo = sp.open(store)
    assert_no_fork(repo, "race")
    final = build(SafepointSaver(store)).get_state(cfg("race"))
    assert final.values["messages"][-1].content == f"answered by {winner}"
    assert final.next == ()
    assert repo.fsck().ok


def test_a_run_that_loaded_a_head_another_writer_moved_past_saves_nothing():
    store = sp.open("memory://").store
    graph_a, graph_b = build(SafepointSaver(store)), build(SafepointSaver(store))
    graph_a.invoke({"messages": [HumanMessage(content="hello")]}, cfg("t"))
    loaded = SafepointSaver(store).get_tuple(cfg("t"))  # what a run that starts now sees as the latest
    graph_b.invoke(Command(resume="bob"), cfg("t"))
    before = len(sp.Repository(store).history("t"))
    with pytest.raises(sp.ConflictError, match="has moved on to checkpoint"):
        SafepointSaver(store).put(loaded.config, loaded.checkpoint, {"source": "loop", "step": 1}, {})
    assert len(sp.Repository(store).history("t")) == before
    assert_no_fork(sp.Repository(store), "t")


def test_two_writers_committing_the_same_seq_at_once():
    store = sp.open("memory://").store
    build(SafepointSaver(store)).invoke({"messages": [HumanMessage(content="hello")]}, cfg("t"))
    both_checked = threading.Barrier(2)

    class Racing(SafepointSaver):
        def _tip(self, *args: Any) -> Any:  # after the race check, before the commit: let both get here
            both_checked.wait(10)
            return super()._tip(*args)

    errors: list[BaseException] = []

    def resume(name: str) -> None:
        try:
            build(Racing(store)).invoke(Command(resume=name), cfg("t"), durability="sync")
        except sp.ConflictError as exc:
            errors.append(exc)

    runs = [threading.Thread(target=resume, args=(name,)) for name in ("ann", "bob")]
    for run in runs:
        run.start()
    for run in runs:
        run.join(30)
    assert len(errors) == 1 and "committed seq" in str(errors[0])
    assert_no_fork(sp.Repository(store), "t")


def test_two_runs_starting_one_new_thread():
    store = sp.open("memory://").store
    config = cfg("fresh")
    empty = {"v": 4, "ts": "", "channel_values": {}, "channel_versions": {}, "versions_seen": {}}
    first = {**empty, "id": "1f000000-0000-6000-8000-000000000001"}
    second = {**empty, "id": "1f000000-0000-6000-8000-000000000002"}
    SafepointSaver(store).put(config, first, {"source": "input", "step": -1}, {})
    with pytest.raises(sp.ConflictError, match="started this thread first"):
        SafepointSaver(store).put(config, second, {"source": "input", "step": -1}, {})


def test_a_branch_from_history_is_not_a_conflict():
    saver = SafepointSaver("memory://")
    graph = build(saver)
    graph.invoke({"messages": [HumanMessage(content="hello")]}, cfg("t"))
    graph.invoke(Command(resume="ann"), cfg("t"))
    first = list(graph.get_state_history(cfg("t")))[-1]
    forked = graph.update_state(first.config, {"messages": [HumanMessage(content="again")]})
    assert graph.get_state(forked).values["messages"][-1].content == "again"
    # From the fork on, the branch is the thread's head and is protected like any head.
    stale = saver.get_tuple(cfg("t"))
    graph.invoke(Command(resume="bob"), cfg("t"))
    assert graph.get_state(cfg("t")).values["messages"][-1].content == "answered by bob"
    with pytest.raises(sp.ConflictError):
        saver.put(stale.config, stale.checkpoint, {"source": "loop", "step": 9}, {})


def _race(store: str, thread: str, barrier: str, name: str) -> None:
    graph = build(SafepointSaver(store), Path(barrier), name)
    try:
        graph.invoke(Command(resume=name), cfg(thread), durability="sync")
        print(json.dumps({"result": "saved", "name": name}))
    except sp.ConflictError as exc:
        print(json.dumps({"result": "conflict", "name": name, "error": str(exc)}))


if __name__ == "__main__" and sys.argv[1:2] == ["race"]:
    _race(*sys.argv[2:6])
