"""Pending writes of SafepointSaver: folded into the next commit record, and still read back exactly.

The reference for every check is what a saver that never folds returns: the same writes, put before any child.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.graph.message import add_messages  # noqa: E402

from safepoint.integrations._langgraph_keys import writes_prefix  # noqa: E402
from safepoint.integrations.langgraph import SafepointSaver  # noqa: E402

THREAD = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}


def checkpoint(n: int, messages: list[Any]) -> dict[str, Any]:
    return {
        "v": 4,
        "id": f"1f000000-0000-6000-8000-{n:012d}",
        "ts": f"2026-01-01T00:00:{n:02d}+00:00",
        "channel_values": {"messages": messages},
        "channel_versions": {"messages": f"{n:012d}.00000000"},
        "versions_seen": {},
        "updated_channels": None,
    }


def put(saver: SafepointSaver, parent: dict[str, Any], n: int, messages: list[Any], run: str = "r1") -> Any:
    metadata = {"source": "input" if n == 1 else "loop", "step": n - 2, "run_id": run}
    return saver.put(parent, checkpoint(n, messages), metadata, {"messages": f"{n:012d}.00000000"})


def write(saver: SafepointSaver, at: dict[str, Any], extra: Any = None) -> None:
    """Three tasks' writes: two regular (one with a task path), one to a special channel."""
    saver.put_writes(at, [("messages", [AIMessage(content="hello", id="a1")]), ("branch:to:x", None)], "task-a")
    saver.put_writes(at, [("out", {"k": [1, 2]})] + ([("more", extra)] if extra is not None else []), "task-b", "p")
    saver.put_writes(at, [("__error__", ValueError("boom"))], "task-c")


def objects(saver: SafepointSaver, at: dict[str, Any]) -> list[str]:
    return saver.store.list(writes_prefix("t", at["configurable"]["checkpoint_id"]))


def pending(store: Any, at: dict[str, Any]) -> list[tuple[str, str, Any]] | None:
    found = SafepointSaver(store).get_tuple(at)  # a new saver: read from the store
    return None if found is None else found.pending_writes


def reference(extra: Any = None) -> list[tuple[str, str, Any]]:
    saver = SafepointSaver("memory://")
    first = put(saver, THREAD, 1, [])
    write(saver, first, extra)
    return pending(saver.store, first)


@pytest.fixture(params=["memory", "directory", "sqlite"])
def url(request, tmp_path) -> str:
    return {"memory": "memory://", "directory": str(tmp_path / "store"), "sqlite": f"sqlite:///{tmp_path}/s.db"}[
        request.param
    ]


def test_writes_fold_into_the_next_record_and_read_back_exactly(url):
    saver = SafepointSaver(url)
    first = put(saver, THREAD, 1, [])
    write(saver, first)
    assert pending(saver.store, first) == reference()
    second = put(saver, first, 2, [AIMessage(content="hello", id="a1")])

    assert [key.rsplit("/", 1)[1].split(".")[1] for key in objects(saver, first)] == ["-1"]  # special ones stay
    # (seq 2 is the first checkpoint again, failed: the `__error__` write; see _langgraph_status)
    record = saver.repository.history("t")[-1]
    assert record.meta["langgraph"]["checkpoint_id"] == second["configurable"]["checkpoint_id"]
    assert [w["task_id"] for w in record.meta["langgraph"]["parent_writes"]] == ["task-a", "task-b"]
    assert pending(saver.store, first) == reference()
    fresh = SafepointSaver(saver.store)
    listed = {t.config["configurable"]["checkpoint_id"]: t.pending_writes for t in fresh.list(THREAD)}
    assert listed[first["configurable"]["checkpoint_id"]] == reference()
    assert listed[second["configurable"]["checkpoint_id"]] == []
    assert saver.repository.fsck().ok


def test_writes_put_again_after_the_fold_keep_the_first_values(url):
    saver = SafepointSaver(url)
    first = put(saver, THREAD, 1, [])
    write(saver, first)
    put(saver, first, 2, [])
    write(saver, first, extra="late")  # a retried task: same indexes (kept), one more write (added)
    assert pending(saver.store, first) == reference(extra="late")
    assert {value for _, channel, value in pending(saver.store, first) if channel == "more"} == {"late"}


def test_a_crash_between_commit_and_cleanup_reads_each_write_once(url):
    saver = SafepointSaver(url)
    first = put(saver, THREAD, 1, [])
    write(saver, first)
    left = {key: saver.store.get(key) for key in objects(saver, first)}
    put(saver, first, 2, [])
    for key, blob in left.items():  # the deletions after the commit never happened
        saver.store.put(key, blob)
    assert pending(saver.store, first) == reference()


def test_deleting_the_next_checkpoint_gives_its_parent_the_writes_back(url):
    saver = SafepointSaver(url)
    first = put(saver, THREAD, 1, [])
    write(saver, first)
    second = put(saver, first, 2, [], run="r2")
    write(saver, first, extra="late")  # also an object written after the fold: the restore merges with it
    put(saver, second, 3, [], run="r2")
    saver.delete_for_runs(["r2"])
    assert [t.config["configurable"]["checkpoint_id"] for t in saver.list(THREAD)] == [checkpoint(1, [])["id"]]
    assert pending(saver.store, first) == reference(extra="late")
    again = put(saver, first, 2, [], run="r3")  # the thread goes on: the writes fold again
    assert pending(saver.store, first) == reference(extra="late") and pending(saver.store, again) == []
    assert saver.repository.fsck().ok


def test_copies_and_branches_keep_every_checkpoints_writes(url):
    saver = SafepointSaver(url)
    first = put(saver, THREAD, 1, [])
    write(saver, first)
    second = put(saver, first, 2, [])
    write(saver, second)
    older = list(saver.list(THREAD))[-1].config  # as get_state_history gives it: branching on purpose
    branch = put(saver, older, 3, [])  # not from the head: nothing to fold, the head's writes stay objects
    assert objects(saver, second) and pending(saver.store, branch) == []
    saver.copy_thread("t", "t2")
    for at in (first, second):
        copied = {"configurable": {**at["configurable"], "thread_id": "t2"}}
        del copied["configurable"]["__safepoint_at__"]
        assert pending(saver.store, copied) == pending(saver.store, at) == reference()
    saver.prune(["t"], strategy="keep_latest")
    assert pending(saver.store, branch) == [] and pending(saver.store, second) is None


def test_writes_another_saver_stored_stay_objects(url):
    saver = SafepointSaver(url)
    other = SafepointSaver(saver.store)  # as another process on the same store
    first = put(saver, THREAD, 1, [])
    write(other, first)
    put(saver, first, 2, [])
    assert len(objects(saver, first)) == 3 and pending(saver.store, first) == reference()


def test_a_put_waits_for_the_writes_to_its_parent_still_being_stored():
    """LangGraph stores a step's writes while it saves the next checkpoint; the fold waits for them."""
    saver = SafepointSaver("memory://")
    first = put(saver, THREAD, 1, [])
    entered, go = threading.Event(), threading.Event()
    real = saver.store.put_if_absent

    def slow(key: str, data: bytes) -> bool:
        if key.startswith("langgraph/writes/"):
            entered.set()
            go.wait(5)
        return real(key, data)

    saver.store.put_if_absent = slow  # type: ignore[method-assign]
    writer = threading.Thread(target=saver.put_writes, args=(first, [("out", 1)], "task-a"))
    writer.start()
    assert entered.wait(5)
    threading.Timer(0.2, go.set).start()
    put(saver, first, 2, [])
    writer.join()
    assert objects(saver, first) == []
    assert pending(saver.store, first) == [("task-a", "out", 1)]


class State(TypedDict):
    messages: Annotated[list, add_messages]


def plain(task_id: str | None, writes: Any) -> list[tuple[str, str, str]]:
    """Writes as (task, channel, repr), messages without their ids: LangGraph gives the input message its id
    while (another thread of) the saver may be storing it."""

    def strip(value: Any) -> Any:
        if isinstance(value, BaseMessage):
            return (value.type, value.content)
        if isinstance(value, list | dict):
            return [strip(v) for v in value] if isinstance(value, list) else {k: strip(v) for k, v in value.items()}
        return value

    rows = writes if task_id is None else [(task_id, channel, value) for channel, value in writes]
    return [(task, channel, repr(strip(value))) for task, channel, value in rows]


def test_a_graph_gets_back_every_checkpoints_writes_as_put(tmp_path):
    saver = SafepointSaver(f"sqlite:///{tmp_path}/s.db")
    put_writes, written = saver.put_writes, {}

    def recording(config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        put_writes(config, writes, task_id, task_path)
        written.setdefault(config["configurable"]["checkpoint_id"], []).extend(plain(task_id, writes))

    saver.put_writes = recording  # type: ignore[method-assign]

    def chat(state: State) -> dict[str, Any]:
        return {"messages": [AIMessage(content=f"step {len(state['messages'])}")]}

    graph = StateGraph(State)
    graph.add_node(chat)
    graph.add_edge(START, "chat")
    graph.add_conditional_edges("chat", lambda state: "chat" if len(state["messages"]) < 12 else END)
    config = {"configurable": {"thread_id": "g"}}
    graph.compile(checkpointer=saver).invoke({"messages": [HumanMessage(content="go")]}, config, durability="sync")

    tuples = list(SafepointSaver(saver.store).list(config))
    assert len(tuples) == 13
    for t in tuples:
        got = plain(None, t.pending_writes)
        assert sorted(got) == sorted(written.get(t.config["configurable"]["checkpoint_id"], []))
    folded = sum(bool(c.meta["langgraph"].get("parent_writes")) for c in saver.repository.history("g"))
    assert folded >= 1 and saver.repository.fsck().ok
