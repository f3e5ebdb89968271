"""LangGraph threads carry safepoint statuses (interrupted: waiting, finished: completed, a node raising: failed),
and a checkpoint safepoint itself commits on a thread (`safepoint set`) loads in LangGraph and runs on."""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.func import entrypoint, task  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402
from langgraph.types import Command, Send, interrupt  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.core.stuck import StuckPolicy  # noqa: E402
from safepoint.integrations.langgraph import SafepointSaver  # noqa: E402


class Count(TypedDict):
    n: int


def add_one(state: Count) -> dict[str, int]:
    return {"n": state["n"] + 1}


def ask(state: Count) -> dict[str, int]:
    return {"n": state["n"] + interrupt("how many more?")}


def explode(state: Count) -> dict[str, int]:
    raise ValueError("the tool is down")


def graph(saver: SafepointSaver, second):  # noqa: ANN001, ANN201
    builder = StateGraph(Count)
    builder.add_node("first", add_one)
    builder.add_node("second", second)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", END)
    return builder.compile(checkpointer=saver)


def config(thread: str) -> dict:
    return {"configurable": {"thread_id": thread}}


def safepoint_cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAFEPOINT_STORE": str(store)}
    command = [sys.executable, "-m", "safepoint", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def never_idle_enough() -> StuckPolicy:
    """A policy under which a running session is stuck a moment after its last checkpoint."""
    return StuckPolicy(factor=0, floor=0)


@pytest.mark.parametrize("durability", ["async", "sync"])  # async: a task's writes may be stored before its put
def test_interrupted_finished_failed_and_resumed_threads_have_their_status(tmp_path: Path, durability: str) -> None:
    store = tmp_path / "store"
    saver = SafepointSaver(store)
    graph(saver, add_one).invoke({"n": 1}, config("finished"), durability=durability)
    waiting = graph(saver, ask)
    waiting.invoke({"n": 1}, config("asked"), durability=durability)
    with pytest.raises(ValueError, match="the tool is down"):
        graph(saver, explode).invoke({"n": 1}, config("broken"), durability=durability)

    repo = sp.open(store)
    assert {tid: str(repo.info(tid).status) for tid in ("finished", "asked", "broken")} == {
        "finished": "completed",
        "asked": "waiting",
        "broken": "failed",
    }
    listed = safepoint_cli(store, "ls", "--status", "waiting", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [row["id"] for row in json.loads(listed.stdout)] == ["asked"]
    later = datetime.now(UTC) + timedelta(hours=1)
    for tid in ("finished", "asked"):  # idle, and not stuck: neither is running
        assert repo.summary(tid, policy=never_idle_enough(), now=later).stuck is None

    # LangGraph sees the interrupted checkpoint as it was, once in the history.
    state = waiting.get_state(config("asked"))
    assert state.next == ("second",) and [i.value for i in state.interrupts] == ["how many more?"]
    history = list(waiting.get_state_history(config("asked")))
    assert len({h.config["configurable"]["checkpoint_id"] for h in history}) == len(history) == 3

    assert waiting.invoke(Command(resume=5), config("asked"), durability=durability) == {"n": 7}
    assert repo.info("asked").status is sp.Status.COMPLETED
    assert repo.summary("asked", policy=never_idle_enough(), now=later).stuck is None
    assert safepoint_cli(store, "ls", "--status", "waiting", "--json").stdout.strip() == "[]"


def test_a_thread_between_steps_is_running(tmp_path: Path) -> None:
    saver = SafepointSaver(tmp_path / "store")
    seen: list[str] = []

    def look(state: Count) -> dict[str, int]:
        seen.append(str(saver.repository.info("t").status))  # the checkpoint before this step
        return {"n": state["n"]}

    graph(saver, look).invoke({"n": 1}, config("t"), durability="sync")
    assert seen == ["running"]
    assert saver.repository.info("t").status is sp.Status.COMPLETED


def test_set_on_a_thread_keeps_it_loadable_and_resumable(tmp_path: Path) -> None:
    store = tmp_path / "store"
    waiting = graph(SafepointSaver(store), ask)
    waiting.invoke({"n": 1}, config("asked"))
    before = waiting.get_state(config("asked"))

    edited = safepoint_cli(store, "set", "asked", "channel_values.n=10")
    assert edited.returncode == 0, edited.stderr

    # A new process's saver and this one both read the edit as LangGraph's update_state would have written it.
    for saver in (SafepointSaver(store), waiting.checkpointer):
        state = graph(saver, ask).get_state(config("asked"))
        assert state.values == {"n": 10} and state.next == ("second",)
        assert state.metadata["source"] == "update" and state.metadata["step"] == before.metadata["step"] + 1
        assert state.parent_config["configurable"]["checkpoint_id"] == before.config["configurable"]["checkpoint_id"]
        assert state.config["configurable"]["checkpoint_id"] > before.config["configurable"]["checkpoint_id"]
    again = graph(SafepointSaver(store), ask).get_state(config("asked"))
    assert again.config["configurable"]["checkpoint_id"] == state.config["configurable"]["checkpoint_id"]

    assert waiting.invoke(Command(resume=5), config("asked")) == {"n": 15}
    history = [h.values["n"] for h in waiting.get_state_history(config("asked")) if h.values]
    assert history == [15, 10, 2, 1]
    assert sp.open(store).info("asked").status is sp.Status.COMPLETED


class Fan(TypedDict):
    items: list
    out: Annotated[list, operator.add]


def test_functional_api_and_send_threads_have_their_status(tmp_path: Path) -> None:
    saver = SafepointSaver(tmp_path / "store")

    @task
    def double(x: int) -> int:
        return 2 * x

    @entrypoint(checkpointer=saver)
    def flow(x: int) -> int:
        return double(x).result() + 1

    @entrypoint(checkpointer=saver)
    def asks(x: int) -> int:
        return x + interrupt("more?")

    def fan(state: Fan) -> list[Send]:
        return [Send("work", {"items": [i], "out": []}) for i in state["items"]]

    def work(state: Fan) -> dict[str, list]:
        return {"out": [state["items"][0] * 10]}

    builder = StateGraph(Fan)
    builder.add_node("work", work)
    builder.add_conditional_edges(START, fan, ["work"])
    builder.add_edge("work", END)

    assert flow.invoke(3, config("flow")) == 7
    asks.invoke(3, config("asks"))
    assert builder.compile(checkpointer=saver).invoke({"items": [1, 2, 3], "out": []}, config("fan"))["out"] == [
        10,
        20,
        30,
    ]
    repo = saver.repository
    assert {tid: str(repo.info(tid).status) for tid in ("flow", "asks", "fan")} == {
        "flow": "completed",
        "asks": "waiting",
        "fan": "completed",
    }
    assert asks.invoke(Command(resume=4), config("asks")) == 7
    assert repo.info("asks").status is sp.Status.COMPLETED
