"""The LangGraph saver rebuilds only allow-listed types: a stored value naming a callable is refused on load.

Before the fix, a value naming `os.system` in a thread's stored checkpoint ran the command on
`graph.get_state()` (LangGraph's serializer calls whatever a value names unless LANGGRAPH_STRICT_MSGPACK=true).
The hostile value is written here as a resealed bundle would hold it: through a saver whose serializer emits the
crafted msgpack, so it sits in the store exactly as LangGraph's own encoding of a class instance does.
"""

from __future__ import annotations

import base64
import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

import ormsgpack  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.errors import UntrustedType  # noqa: E402
from safepoint.integrations._langgraph_values import TAG  # noqa: E402
from safepoint.integrations.langgraph import SafepointSaver  # noqa: E402


class State(TypedDict):
    value: Any


@dataclasses.dataclass
class Order:
    item: str
    count: int


def build(saver: SafepointSaver, value: Any) -> Any:
    graph = StateGraph(State)
    graph.add_node("set_value", lambda state: {"value": value})
    graph.add_edge(START, "set_value")
    graph.add_edge("set_value", END)
    return graph.compile(checkpointer=saver)


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


class Hostile(JsonPlusSerializer):
    """Encodes the marker string as a msgpack extension naming `os.system` with a shell command."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if obj == "PAYLOAD":
            ext = ormsgpack.Ext(0, ormsgpack.packb(["os", "system", self.command]))  # code 0: module.name(arg)
            return "msgpack", ormsgpack.packb(ext)
        return super().dumps_typed(obj)


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def plant(store: str, thread: str, command: str) -> None:
    build(SafepointSaver(store, serde=Hostile(command)), "PAYLOAD").invoke({"value": "start"}, config(thread))


def test_a_stored_value_naming_os_system_is_refused_and_nothing_runs(store: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    plant(store, "t1", f"touch {marker}")
    assert not marker.exists()
    graph = build(SafepointSaver(store), "unused")  # the default saver, LangGraph's defaults otherwise
    with pytest.raises(UntrustedType, match=r"os\.system") as caught:
        graph.get_state(config("t1"))
    assert "allowed_types" in str(caught.value)
    assert not marker.exists(), "a command named by stored data ran"
    with pytest.raises(UntrustedType):
        list(graph.get_state_history(config("t1")))
    assert not marker.exists()


def test_refused_also_with_a_permissive_serializer_of_ones_own(store: str, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    plant(store, "t1", f"touch {marker}")
    saver = SafepointSaver(store, serde=JsonPlusSerializer(allowed_msgpack_modules=True))
    with pytest.raises(UntrustedType):
        saver.get_tuple(config("t1"))
    assert not marker.exists()


def test_constructor_style_json_and_raw_msgpack_blobs_are_refused(store: str, tmp_path: Path) -> None:
    saver = SafepointSaver(store)
    lc = b'{"lc": 2, "type": "constructor", "id": ["os", "system"], "args": ["true"]}'
    secret = b'{"lc": 1, "type": "secret", "id": ["HOME"]}'
    packed = ormsgpack.packb(ormsgpack.Ext(2, ormsgpack.packb(["subprocess", "Popen", {"args": ["true"]}])))
    for kind, data in (("json", lc), ("json", secret), ("msgpack", packed)):
        stored = {TAG: "blob", "type": kind, "b64": base64.b64encode(data).decode()}
        with pytest.raises(UntrustedType):
            saver._values.decode(stored)


def test_safe_types_and_messages_load_by_default(store: str) -> None:
    saver = SafepointSaver(store)
    graph = build(saver, [HumanMessage(content="hi"), AIMessage(content="hello")])
    graph.invoke({"value": None}, config("t2"))
    values = build(SafepointSaver(store), None).get_state(config("t2")).values
    assert [m.content for m in values["value"]] == ["hi", "hello"]


def test_a_type_of_ones_own_loads_once_allowed(store: str) -> None:
    build(SafepointSaver(store), Order("tea", 2)).invoke({"value": None}, config("t3"))
    with pytest.raises(UntrustedType, match=r"Order.*allowed_types=\[\("):
        build(SafepointSaver(store), None).get_state(config("t3"))
    for allowed in ([Order], [(Order.__module__, Order.__qualname__)]):
        values = build(SafepointSaver(store, allowed_types=allowed), None).get_state(config("t3")).values
        assert values["value"] == Order("tea", 2)
    # LangGraph's own route (it derives the types of a graph's state schema in strict mode): with_allowlist.
    widened = SafepointSaver(store).with_allowlist({(Order.__module__, Order.__qualname__)})
    assert widened.get_tuple(config("t3")).checkpoint["channel_values"]["value"] == Order("tea", 2)


def test_allowed_types_are_checked() -> None:
    with pytest.raises(TypeError, match="allowed_types"):
        SafepointSaver("memory://", allowed_types=["os.system"])  # type: ignore[list-item]


def test_safepoints_own_tools_read_a_hostile_thread_as_data(store: str, tmp_path: Path) -> None:
    """`safepoint show` reads the stored JSON as data: it works, and runs nothing."""
    marker = tmp_path / "MARKER"
    plant(store, "t1", f"touch {marker}")
    [session_id] = sp.open(store).session_ids()
    shown = subprocess.run(
        [sys.executable, "-m", "safepoint", "--store", store, "show", session_id], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    assert "os" in shown.stdout and not marker.exists()
