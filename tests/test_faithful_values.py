"""Faithful values: what a save accepts loads back exactly; anything else is NotSerializable naming its path,
with nothing written. On every store, with the default AgentState and with plain dicts."""

from __future__ import annotations

import datetime
import math
import uuid
from typing import Any

import pytest
from backends import KINDS, make_backend  # noqa: F401 - fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategies import json_ints, json_keys, json_text

import safepoint as sp
from safepoint.core import codec
from safepoint.stores.memory import MemoryStore

pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")  # Redis without disk

# Values JSON cannot carry exactly, next to ones it can.
awkward_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities included
    | json_text
    | st.binary(max_size=8)
    | st.frozensets(json_ints, max_size=3)
    | st.sets(st.integers(0, 9), max_size=3)
    | st.tuples(json_ints)
    | st.sampled_from([datetime.date(2026, 1, 1), uuid.UUID(int=7)])
)
awkward_keys = json_keys | st.integers(-5, 5) | st.tuples(st.integers(0, 3), st.integers(0, 3)) | st.none()
awkward_values = st.recursive(
    awkward_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(awkward_keys, children, max_size=5),
    max_leaves=25,
)


def typed(value: Any) -> Any:
    """A form of a JSON value in which True, 1 and 1.0 (and 0.0 and -0.0) all differ."""
    if isinstance(value, dict):
        return {"dict": sorted((k, typed(v)) for k, v in value.items())}
    if isinstance(value, list):
        return {"list": [typed(v) for v in value]}
    if isinstance(value, float):
        return {"float": value.hex()}
    return {type(value).__name__: value}


def contents(store: MemoryStore) -> dict[str, bytes]:
    return dict(store._data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=awkward_values, schema=st.sampled_from(["agent", "dict"]), as_delta=st.booleans())
def test_a_saved_value_loads_back_equal_or_is_refused_with_its_path_and_nothing_written(
    value: Any, schema: str, as_delta: bool
) -> None:
    store = MemoryStore()
    repo = sp.open(store)
    with repo.session("s", schema=sp.AgentState if schema == "agent" else dict) as s:
        data = s.state.data if schema == "agent" else s.state
        if as_delta:  # the value arrives in a delta against a stored keyframe, not in a keyframe
            data["v"] = "first"
            s.save(step="first")
        data["v"] = value
        before = contents(store)
        try:
            s.save(step="second")
        except sp.NotSerializable as exc:
            where = "state.data.v" if schema == "agent" else "state.v"
            assert exc.path.startswith(where), exc.path
            assert contents(store) == before  # nothing written
            return
    loaded = repo.load("s").state
    stored = loaded["data"]["v"] if schema == "agent" else loaded["v"]
    assert typed(stored) == typed(value)


@pytest.mark.parametrize(
    ("value", "where", "says"),
    [
        (float("nan"), "", "nan has no JSON form"),
        (math.inf, "", "inf has no JSON form"),
        (-math.inf, "", "-inf has no JSON form"),
        (b"x", "", "bytes have no JSON form"),
        ({1}, "", "a set has no JSON form"),
        ({1: 2}, "[1]", "dict keys must be strings"),
        ({(1, 2): 3}, "[(1, 2)]", "dict keys must be strings"),
        (2**64, "", "does not fit in 64 bits"),
        (-(2**63) - 1, "", "does not fit in 64 bits"),
        ((1, 2), "", "a tuple would load back as a list"),
        ({"when": datetime.datetime(2026, 1, 1)}, ".when", "datetime has no JSON form"),
        ([1, [2, {"deep": float("nan")}]], "[1][1].deep", "nan has no JSON form"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_every_store_refuses_what_json_would_change(make_backend, kind: str, value: Any, where: str, says: str) -> None:  # noqa: F811
    backend = make_backend(kind)
    repo = sp.open(backend.url)
    for schema, path in ((sp.AgentState, "state.data.v"), (dict, "state.v")):
        with repo.session(f"s-{schema.__name__}", schema=schema) as s:
            data = s.state.data if schema is sp.AgentState else s.state
            data["v"] = value
            with pytest.raises(sp.NotSerializable, match=says) as caught:
                s.save()
            assert caught.value.path == path + where
            assert s.history() == []
    repo.close()


def test_a_cycle_and_deep_nesting_name_their_path() -> None:
    repo = sp.open("memory://")
    with repo.session("cycle") as s:
        loop: list[Any] = []
        loop.append(loop)
        s.state.data["loop"] = loop
        with pytest.raises(sp.NotSerializable, match="contains itself") as caught:
            s.save()
        assert caught.value.path.startswith("state.data.loop[0]")
    with repo.session("deep", schema=dict) as s:
        deep: list[Any] = []
        inner = deep
        for _ in range(10_000):
            inner.append([])
            inner = inner[0]
        s.state["deep"] = deep
        with pytest.raises(sp.NotSerializable, match=f"deeper than {codec.MAX_DEPTH} levels") as caught:
            s.save()
        assert caught.value.path.startswith("state.deep[0][0]")
    assert repo.history("cycle") == [] and repo.history("deep") == []


@pytest.mark.parametrize("schema", [sp.AgentState, dict])
def test_nesting_up_to_the_documented_limit_round_trips(schema: Any) -> None:
    repo = sp.open("memory://")
    deep: Any = "leaf"
    for _ in range(codec.MAX_DEPTH - 2):  # the state and `data`/`v` are levels too
        deep = [deep]
    with repo.session("s", schema=schema) as s:
        (s.state.data if schema is sp.AgentState else s.state)["v"] = deep
        s.save()
        (s.state.data if schema is sp.AgentState else s.state)["w"] = deep  # and through a delta
        s.save()
    state = repo.load("s").state
    assert (state["data"] if schema is sp.AgentState else state)["w"] == deep


def test_a_users_model_keeps_its_declared_coercions() -> None:
    from pydantic import BaseModel

    class Report(BaseModel):
        when: datetime.datetime = datetime.datetime(2000, 1, 1)
        tags: set[str] = set()

    repo = sp.open("memory://")
    with repo.session("s", schema=Report) as s:
        s.state = Report(when=datetime.datetime(2026, 1, 2, 3, 4), tags={"a"})
        s.save()
    with repo.session("s", schema=Report) as s:
        assert s.state == Report(when=datetime.datetime(2026, 1, 2, 3, 4), tags={"a"})


def test_step_outputs_refuse_lossy_values_but_give_tuples_back_as_lists_every_time() -> None:
    repo = sp.open("memory://")
    with repo.session("s", schema=dict) as s:
        assert s.step("pair", lambda: (1, 2)) == [1, 2]
        with pytest.raises(sp.NotSerializable, match="nan has no JSON form") as caught:
            s.step("ratio", lambda: {"r": float("nan")})
        assert caught.value.path == "output of step 'ratio'.r"
        with pytest.raises(sp.NotSerializable, match="a set has no JSON form"):
            s.effect("send", lambda: {1, 2})
    assert "ratio" not in repo.load("s").runtime.get("steps", {})
