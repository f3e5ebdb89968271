"""A JSON value as a tree of content-addressed objects: exact round trips, determinism, sharing, damage."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_scalars, json_text, json_values, nested

from safepoint.core import codec, tree
from safepoint.errors import CorruptCheckpoint

SETTINGS = settings(max_examples=60, deadline=None)


@contextmanager
def small_thresholds() -> Iterator[None]:
    """Thresholds a few dozen bytes wide, so small generated values take every splitting path."""
    with mock.patch.multiple(
        tree, INLINE_MAX=40, NODE_MAX=120, PAGE_MIN=30, PAGE_MAX=90, FANOUT=4, FANOUT_MAX=5, STRING_PIECE=7
    ):
        yield


class Objects(dict[str, bytes]):
    """A dict standing in for the store's `objects/` keys."""

    def write(self, value: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Encode `value` against what is stored; store the new objects; return (root, new objects)."""
        writer = tree.TreeWriter(self.__contains__, set())
        root = writer.root(value)
        self.update(writer.new_objects)
        # The root travels inside a commit record: give the reader a decoded copy, as history does.
        return codec.loads(codec.dumps(root)), writer.new_objects

    def read(self, root: dict[str, Any]) -> Any:
        return tree.TreeReader(self.get).read(root)

    def round_trip(self, value: Any) -> Any:
        before = codec.dumps(value)
        root, _ = self.write(value)
        assert codec.dumps(value) == before, "encoding must not change the value it encodes"
        return self.read(root)


def same(a: Any, b: Any) -> bool:
    """Equal as canonical JSON: type-strict (1, 1.0 and true differ; so do 0.0 and -0.0)."""
    return codec.dumps(a) == codec.dumps(b)


def reachable(objects: Objects, root: dict[str, Any]) -> set[str]:
    """Every object hash reachable from `root` through `child_digests`."""
    seen: set[str] = set()
    todo = tree.child_digests(root)
    while todo:
        digest = todo.pop()
        if digest not in seen:
            seen.add(digest)
            todo.extend(tree.child_digests(codec.load_sealed(objects[tree.object_key(digest)], digest)))
    return seen


def messages(count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {"role": rng.choice(["user", "assistant", "tool"]), "i": i, "text": rng.randbytes(rng.randint(20, 120)).hex()}
        for i in range(count)
    ]


# --- round trips ---------------------------------------------------------------------------------------


@SETTINGS
@given(json_values())
def test_round_trip_with_default_thresholds(value: Any) -> None:
    assert same(Objects().round_trip(value), value)


@SETTINGS
@given(json_values(max_leaves=120))
def test_round_trip_through_every_split_path(value: Any) -> None:
    with small_thresholds():
        objects = Objects()
        root, new = objects.write(value)
        assert same(objects.read(root), value)
        assert reachable(objects, root) == {key.rsplit("/", 1)[1] for key in new}


@SETTINGS
@given(st.lists(json_scalars | st.lists(json_scalars, max_size=6), min_size=50, max_size=250))
def test_round_trip_of_long_lists_with_small_pages(value: list[Any]) -> None:
    with small_thresholds():
        objects = Objects()
        root, _ = objects.write(value)
        assert root["k"] == "l"
        assert same(objects.read(root), value)


@SETTINGS
@given(st.dictionaries(json_text, json_scalars, min_size=30, max_size=150))
def test_round_trip_of_big_dicts_with_small_groups(value: dict[str, Any]) -> None:
    with small_thresholds():
        objects = Objects()
        root, _ = objects.write({"wrapper": value})
        assert same(objects.read(root), {"wrapper": value})


@SETTINGS
@given(st.text(min_size=130, max_size=600))
def test_round_trip_of_split_strings(text: str) -> None:
    with small_thresholds():
        objects = Objects()
        root, _ = objects.write(text)
        assert root["k"] == "s"
        assert objects.read(root) == text


def test_big_values_with_default_thresholds() -> None:
    rng = random.Random(3)
    value = {
        "messages": messages(5000),
        "index": {f"doc-{i:05d}": {"score": rng.random(), "seen": i % 3 == 0} for i in range(5000)},
        "draft": "".join(rng.choice('ab c\U0001f600\u00e9\n"\\') for _ in range(300_000)),
        "small": {"goal": "write a report", "n": 3},
        "deep": nested(100, [1, 2.5, None]),
    }
    objects = Objects()
    root, new = objects.write(value)
    assert same(objects.read(root), value)
    assert len(new) > 20
    assert len(codec.dumps(root)) < 4096  # the root (kept inline in the commit record) stays small
    kinds = {codec.load_sealed(blob, key)["k"] for key, blob in new.items()}
    assert kinds >= {"v", "l", "s"}


def test_big_top_level_dict_is_split_into_groups() -> None:
    value = {f"key-{i:05d}": "x" * 40 for i in range(5000)}
    objects = Objects()
    root, new = objects.write(value)
    assert root["k"] == "d" and len(new) > 5
    assert objects.read(root) == value


def test_many_pages_get_more_than_one_index_level() -> None:
    value = messages(1000)
    with small_thresholds():
        objects = Objects()
        root, new = objects.write(value)
        index_nodes = [key for key, blob in new.items() if codec.load_sealed(blob, key)["k"] == "l"]
        assert index_nodes, "the page hashes did not fit one node and must be grouped"
        assert len(root["p"]) <= tree.FANOUT_MAX
        assert objects.read(root) == value


def test_objects_stay_bounded_in_size() -> None:
    value = {"messages": messages(5000), "draft": "\u00e9" * 500_000, "blob": ["y" * 20_000] * 3}
    objects = Objects()
    root, new = objects.write(value)
    biggest = max(len(codec.unseal(blob, key)) for key, blob in new.items())
    assert biggest <= 2 * tree.STRING_PIECE + 64  # one string piece of 2-byte characters
    assert objects.read(root) == value


def test_empty_and_scalar_values_stay_inline() -> None:
    for value in (None, 0, -1.5, True, "", [], {}, {"a": []}, "x" * 100):
        objects = Objects()
        root, new = objects.write(value)
        assert new == {} and root == {"k": "v", "v": value}
        assert same(objects.read(root), value)


# --- determinism and sharing --------------------------------------------------------------------------


def reorder(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {k: reorder(value[k], rng) for k in keys}
    if isinstance(value, list):
        return [reorder(v, rng) for v in value]
    return value


def test_same_value_gives_same_objects() -> None:
    value = {"messages": messages(4000), "notes": {f"n{i}": "z" * 30 for i in range(3000)}}
    first, second = Objects(), Objects()
    root_a, new_a = first.write(value)
    root_b, new_b = second.write(codec.loads(codec.dumps(value)))
    assert root_a == root_b and new_a == new_b


def test_key_insertion_order_does_not_change_the_objects() -> None:
    value = {"messages": messages(4000), "notes": {f"n{i}": "z" * 30 for i in range(3000)}}
    first, second = Objects(), Objects()
    root_a, _ = first.write(value)
    root_b, _ = second.write(reorder(value, random.Random(5)))
    assert root_a == root_b and set(first) == set(second)


@settings(max_examples=50, deadline=None)
@given(json_values(max_leaves=120), st.randoms(use_true_random=False))
def test_same_value_gives_same_objects_with_small_thresholds(value: Any, rng: random.Random) -> None:
    with small_thresholds():
        first, second = Objects(), Objects()
        assert first.write(value)[0] == second.write(reorder(value, rng))[0]
        assert set(first) == set(second)


def test_writer_skips_objects_it_knows_or_finds_stored() -> None:
    value = messages(3000)
    objects = Objects()
    root, new = objects.write(value)
    again, new_again = objects.write(value)
    assert again == root and new_again == {}
    writer = tree.TreeWriter(
        lambda key: pytest.fail(f"asked the store about {key}"), {k.rsplit("/", 1)[1] for k in new}
    )
    assert writer.root(value) == root and writer.new_objects == {}
    assert writer.referenced == {k.rsplit("/", 1)[1] for k in new}


def _new_bytes(base: list[Any], changed: list[Any]) -> tuple[int, int, int]:
    objects = Objects()
    objects.write(base)
    whole = sum(len(blob) for blob in objects.values())
    root, new = objects.write(changed)
    assert objects.read(root) == changed
    return len(new), sum(len(blob) for blob in new.values()), whole


ITEM = {"role": "user", "i": -1, "text": "one more message"}


def test_appending_to_a_big_list_writes_few_small_objects() -> None:
    base = messages(10_000)
    count, size, whole = _new_bytes(base, [*base, ITEM])
    assert count <= 3 and size < whole / 50, (count, size, whole)


def test_inserting_at_the_front_of_a_big_list_writes_few_objects() -> None:
    base = messages(10_000)
    count, size, whole = _new_bytes(base, [ITEM, *base])
    assert count <= 4 and size < whole / 50, (count, size, whole)


def test_dropping_the_oldest_and_appending_writes_few_objects() -> None:
    base = messages(10_000)
    count, size, whole = _new_bytes(base, [*base[1:], ITEM])
    assert count <= 6 and size < whole / 30, (count, size, whole)


def test_editing_one_item_in_the_middle_writes_a_small_part() -> None:
    base = messages(10_000)
    changed = [*base[:5000], {**base[5000], "text": "edited"}, *base[5001:]]
    count, size, whole = _new_bytes(base, changed)
    assert count <= 16 and size < whole / 20, (count, size, whole)


def test_adding_a_key_to_a_big_dict_writes_few_objects() -> None:
    base = {f"doc-{i:05d}": {"title": f"document {i}", "score": i / 7} for i in range(10_000)}
    objects = Objects()
    objects.write(base)
    whole = sum(len(blob) for blob in objects.values())
    root, new = objects.write({**base, "doc-05000a": {"title": "inserted", "score": 0.5}})
    assert len(new) <= 4 and sum(len(b) for b in new.values()) < whole / 30
    assert objects.read(root)["doc-05000a"]["title"] == "inserted"


def test_unchanged_big_subtree_is_shared_between_values() -> None:
    big = messages(3000)
    objects = Objects()
    objects.write({"history": big, "step": 1})
    root, new = objects.write({"history": big, "step": 2, "extra": "x"})
    # Only the small nodes around the big part are new; every page of it is shared by hash.
    assert sum(len(blob) for blob in new.values()) < 1024
    alone = Objects()
    alone.write(big)
    assert {key.rsplit("/", 1)[1] for key in alone} <= reachable(objects, root)
    assert objects.read(root)["step"] == 2


# --- damage ---------------------------------------------------------------------------------------------


@pytest.fixture
def stored() -> tuple[Objects, dict[str, Any], Any]:
    value = {"messages": messages(3000), "draft": "d" * 100_000}
    objects = Objects()
    root, _ = objects.write(value)
    return objects, root, value


def test_missing_object_is_named(stored: tuple[Objects, dict[str, Any], Any]) -> None:
    objects, root, _ = stored
    victim = sorted(objects)[len(objects) // 2]
    del objects[victim]
    with pytest.raises(CorruptCheckpoint, match="missing") as caught:
        objects.read(root)
    assert caught.value.key == victim and victim.startswith("objects/")
    assert victim in str(caught.value)


@pytest.mark.parametrize("where", [0.0, 0.3, 0.99])
def test_corrupted_object_is_named(stored: tuple[Objects, dict[str, Any], Any], where: float) -> None:
    objects, root, value = stored
    for victim in sorted(objects):
        intact = objects[victim]
        damaged = bytearray(intact)
        damaged[int(where * (len(damaged) - 1))] ^= 0x41
        objects[victim] = bytes(damaged)
        with pytest.raises(CorruptCheckpoint) as caught:
            objects.read(root)
        assert caught.value.key == victim and victim.startswith("objects/")
        objects[victim] = intact
    assert objects.read(root) == value


def test_object_swapped_for_another_valid_object_is_caught(stored: tuple[Objects, dict[str, Any], Any]) -> None:
    objects, root, _ = stored
    first, second = sorted(objects)[:2]
    objects[first] = objects[second]
    with pytest.raises(CorruptCheckpoint, match="does not match its name") as caught:
        objects.read(root)
    assert caught.value.key == first


def test_truncated_object_is_caught(stored: tuple[Objects, dict[str, Any], Any]) -> None:
    objects, root, value = stored
    victim = sorted(objects)[-1]
    intact = objects[victim]
    objects[victim] = intact[: len(intact) // 2]
    with pytest.raises(CorruptCheckpoint) as caught:
        objects.read(root)
    assert caught.value.key == victim
    objects[victim] = intact
    assert objects.read(root) == value


def test_unknown_node_kind_is_corruption() -> None:
    with pytest.raises(CorruptCheckpoint, match="unknown node kind"):
        tree.TreeReader({}.get).read({"k": "?", "p": []})
