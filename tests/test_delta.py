"""Structural diffs: apply(old, diff(old, new)) rebuilds new exactly, small edits give small diffs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from json_strategies import distinct_scalars, json_keys, json_values

from safepoint.core import codec, delta
from safepoint.errors import NotSerializable

SETTINGS = settings(max_examples=150, deadline=None)
values = json_values(distinct_scalars, max_leaves=40)


def containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict and list inside `value` (the root included)."""
    found = []
    if isinstance(value, dict | list):
        found.append(path)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, child in items:
            found.extend(containers(child, (*path, key)))
    return found


def at(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def edited(draw: st.DrawFn) -> tuple[Any, Any]:
    """A value and a copy of it after a few random edits (insert, delete, replace, at any depth)."""
    old = draw(values)
    new = copy.deepcopy(old)
    for _ in range(draw(st.integers(0, 5))):
        places = containers(new)
        if not places or draw(st.integers(0, 9)) == 0:
            new = draw(values)
            continue
        target = at(new, draw(st.sampled_from(places)))
        action = draw(st.sampled_from(["add", "remove", "replace", "bulk", "move", "slide"]))
        if isinstance(target, dict):
            if action == "remove" and target:
                del target[draw(st.sampled_from(sorted(target)))]
            elif action == "replace" and target:
                target[draw(st.sampled_from(sorted(target)))] = draw(values)
            else:
                target[draw(json_keys)] = draw(values)
        else:
            index = draw(st.integers(0, len(target)))
            if action == "remove" and target:
                del target[min(index, len(target) - 1)]
            elif action == "replace" and target:
                target[min(index, len(target) - 1)] = draw(values)
            elif action == "move" and target:
                target.insert(index, target.pop(draw(st.integers(0, len(target) - 1))))
            elif action == "slide" and target:
                del target[: draw(st.integers(1, len(target)))]
                target.extend(draw(st.lists(values, max_size=3)))
            elif action == "bulk":
                stop = draw(st.integers(index, len(target)))
                target[index:stop] = draw(st.lists(values, max_size=4))
            else:
                target.insert(index, draw(values))
    return old, new


def check(old: Any, new: Any) -> list[delta.Op]:
    """Diff, then apply both to a deep copy and (as history does) to decoded copies; all must equal `new`."""
    old_bytes, new_bytes = codec.dumps(old), codec.dumps(new)
    ops = delta.diff(old, new)
    assert codec.dumps(old) == old_bytes and codec.dumps(new) == new_bytes, "diff must not change its inputs"
    assert codec.dumps(delta.apply(copy.deepcopy(old), ops)) == new_bytes
    stored_ops = codec.loads(codec.dumps(ops))
    assert codec.dumps(delta.apply(codec.loads(old_bytes), stored_ops)) == new_bytes
    return ops


@SETTINGS
@given(values, values)
def test_apply_diff_rebuilds_any_new_value(old: Any, new: Any) -> None:
    check(old, new)


@SETTINGS
@given(edited())
def test_apply_diff_rebuilds_edited_values(pair: tuple[Any, Any]) -> None:
    old, new = pair
    ops = check(old, new)
    if codec.dumps(old) == codec.dumps(new):
        assert ops == []


items = st.integers(2, 25) | st.fixed_dictionaries(
    {"id": st.integers(2, 25), "tags": st.lists(st.integers(2, 5), max_size=3)}
)


@st.composite
def reshuffled_lists(draw: st.DrawFn) -> tuple[list[Any], list[Any]]:
    """A list and a copy after moves, slides, inserts, removals and in-place edits (repeats allowed)."""
    old = draw(st.lists(items, max_size=40))
    new = copy.deepcopy(old)
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["insert", "remove", "move", "slide", "edit", "replace"]))
        index = draw(st.integers(0, max(0, len(new) - 1)))
        if action == "insert" or not new:
            new.insert(draw(st.integers(0, len(new))), draw(items))
        elif action == "remove":
            del new[index : index + draw(st.integers(1, 3))]
        elif action == "move":
            new.insert(draw(st.integers(0, len(new) - 1)), new.pop(index))
        elif action == "slide":
            del new[: draw(st.integers(1, 3))]
            new.extend(draw(st.lists(items, min_size=1, max_size=3)))
        elif action == "edit" and isinstance(new[index], dict):
            new[index]["tags"].append(draw(st.integers(2, 5)))
        else:
            new[index] = draw(items)
    return old, new


@settings(max_examples=200, deadline=None)
@given(reshuffled_lists())
def test_apply_diff_rebuilds_reshuffled_lists(pair: tuple[list[Any], list[Any]]) -> None:
    old, new = pair
    check(old, new)
    check({"wrapper": {"list": old}}, {"wrapper": {"list": new}})
    ops = delta.diff(old, new)
    assert sum(len(codec.dumps(op)) for op in ops) <= len(codec.dumps(new)) + 40 * max(1, len(ops))


@settings(max_examples=75, deadline=None)
@given(values)
def test_diff_of_equal_values_is_empty(value: Any) -> None:
    assert delta.diff(value, copy.deepcopy(value)) == []
    assert delta.describe(value, copy.deepcopy(value)) == []


# The edit strategy draws keys and values with filters; rarely that trips the filter health check.
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(edited())
def test_describe_reports_something_for_every_change(pair: tuple[Any, Any]) -> None:
    old, new = pair
    lines = delta.describe(old, new)
    assert bool(lines) == (codec.dumps(old) != codec.dumps(new))
    assert all(line[:2] in ("+ ", "- ", "~ ") and line[2:].startswith("state") for line in lines)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"n": 1}, {"n": 1.5}),
        ({"flag": None}, {"flag": False}),
        ([2, "x"], [2.5, "x"]),
        ("text", ["text"]),
        ({"a": {"b": []}}, {"a": {"b": {}}}),
        (2, 2.5),
    ],
)
def test_scalar_type_changes_are_seen_when_compared_directly(old: Any, new: Any) -> None:
    assert delta.diff(old, new)
    check(old, new)


# --- small edits give small diffs ------------------------------------------------------------------------


def messages(count: int) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 else "assistant", "i": i, "text": f"message {i} " * 8} for i in range(count)]


BIG = {"messages": messages(10_000), "index": {f"doc-{i}": {"score": i / 3, "tags": ["a", "b"]} for i in range(5_000)}}
NEW = {"role": "user", "i": -1, "text": "a new message"}


def size_of(ops: list[delta.Op]) -> int:
    return len(codec.dumps(ops))


def edited_copy(change: Any) -> Any:
    new = copy.deepcopy(BIG)
    change(new)
    return new


SMALL_EDITS = {
    "append a message": lambda s: s["messages"].append(NEW),
    "insert a message at the front": lambda s: s["messages"].insert(0, NEW),
    "insert a message in the middle": lambda s: s["messages"].insert(5_000, NEW),
    "delete a message": lambda s: s["messages"].pop(7_000),
    "edit one message": lambda s: s["messages"][4_321].update(text="edited"),
    "edit one deep value": lambda s: s["index"]["doc-2500"]["tags"].append("c"),
    "add a key": lambda s: s["index"].update({"doc-new": {"score": 1.0}}),
    "remove a key": lambda s: s["index"].pop("doc-17"),
    "change a top-level scalar": lambda s: s.update(step=3),
    "drop the oldest message and append one": lambda s: (s["messages"].pop(0), s["messages"].append(NEW)),
    "edit one message and append one": lambda s: (s["messages"][100].update(done=True), s["messages"].append(NEW)),
    "insert near the front and append": lambda s: (s["messages"].insert(10, NEW), s["messages"].append(NEW)),
}


@pytest.mark.parametrize("name", list(SMALL_EDITS))
def test_small_edit_in_a_big_value_gives_a_small_diff(name: str) -> None:
    new = edited_copy(SMALL_EDITS[name])
    ops = check(BIG, new)
    assert size_of(ops) < 1024, f"{name}: {len(ops)} ops, {size_of(ops)} bytes for a change of one item"


def test_edit_inside_an_item_points_at_the_item() -> None:
    new = edited_copy(SMALL_EDITS["edit one message"])
    assert delta.diff(BIG, new) == [["s", ["messages", 4321, "text"], "edited"]]


def test_append_is_one_splice_at_the_end() -> None:
    new = edited_copy(SMALL_EDITS["append a message"])
    assert delta.diff(BIG, new) == [["x", ["messages"], 10_000, 0, [NEW]]]


@pytest.mark.parametrize("key", [7, None, True, 1.5, (1, 2)])
def test_non_string_dict_key_is_not_serializable(key: Any) -> None:
    # In a path the key would pass the JSON encoder unnoticed (and a tuple would come back as a list).
    with pytest.raises(NotSerializable) as caught:
        delta.diff({"counts": {"a": 1}}, {"counts": {"a": 1, key: "x"}})
    assert caught.value.path == f"state.counts[{key!r}]"


def test_apply_replaces_the_root_and_rejects_unknown_operations() -> None:
    assert delta.apply({"a": 1}, [["s", [], [1, 2]]]) == [1, 2]
    assert delta.apply([1, 2, 3], [["x", [], 1, 1, ["b", "c"]]]) == [1, "b", "c", 3]
    with pytest.raises(ValueError, match="unknown delta operation"):
        delta.apply({"a": 1}, [["?", ["a"]]])


# --- describe ----------------------------------------------------------------------------------------------


def test_describe_lines_for_add_remove_and_change() -> None:
    old = {"mission": {"goal": "draft", "done": ["search"]}, "data": {"count": 1, "old key": True}}
    new = {"mission": {"goal": "final", "done": ["search", "write"]}, "data": {"count": 1, "new": [1, 2]}}
    assert delta.describe(old, new) == [
        '~ state.mission.goal: "draft" -> "final"',
        '+ state.mission.done[1]: "write"',
        "- state.data['old key']: true",
        "+ state.data.new: [1,2]",
    ]


def test_describe_list_removal_and_replacement() -> None:
    old = {"todo": ["a", "b", "c", "d"]}
    new = {"todo": ["a", "x", "d"]}
    assert delta.describe(old, new) == ['- state.todo[1]: "b"', '- state.todo[2]: "c"', '+ state.todo[1]: "x"']


def test_describe_a_sliding_window() -> None:
    old = {"window": ["m1", "m2", "m3", "m4", "m5"]}
    new = {"window": ["m2", "m3", "m4", "m5", "m6"]}
    assert delta.describe(old, new) == ['- state.window[0]: "m1"', '+ state.window[4]: "m6"']


def test_describe_reads_items_where_earlier_changes_left_them() -> None:
    old = {"m": [{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}, {"id": 5}]}
    new = {"m": [{"id": 0}, {"id": 1}, {"id": 2}, {"id": 3, "done": True}, {"id": 4}, {"id": 5}, {"id": 6}]}
    assert delta.describe(old, new) == ['+ state.m[0]: {"id":0}', "+ state.m[3].done: true", '+ state.m[6]: {"id":6}']
    assert old["m"][2] == {"id": 3}, "describe must not change its input"


def test_describe_shortens_long_values_and_takes_a_root_name() -> None:
    lines = delta.describe({"text": "a"}, {"text": "b" * 500}, root="s", width=40)
    assert len(lines) == 1 and lines[0].startswith('~ s.text: "a" -> "bbb') and lines[0].endswith("...")
    assert len(lines[0]) < 60


def test_format_path() -> None:
    assert delta.format_path(["data", "tools", 3, "callback"]) == "state.data.tools[3].callback"
    assert delta.format_path(["data", "odd key", 0], root="meta") == "meta.data['odd key'][0]"
    assert delta.format_path([]) == "state"
