"""The conformance suite every store backend passes: `StoreTests`, checked against `MemoryStore` as the model.

Subclass it in a backend's test file and provide fixtures:

- `store`: a fresh, empty store; close it after the test.
- `store_factory`: a zero-argument callable opening another handle on the same underlying store.
- `store_url` (optional): a URL another process opens with `safepoint.stores.open_store`; it defaults to
  `store.url`. Return None for stores that live in one process; the multi-process tests then skip, and the
  commit race (`commit_race.py`: eight writers without leases on one session) runs in threads instead.

Override `raw_get` / `raw_put` to read and write behind the store's back, so the suite also checks results
against ground truth (what is on disk or in the table) rather than only against the store itself.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ..errors import CorruptCheckpoint, FenceMismatch, InvalidKey
from ..stores.base import Store
from ..stores.memory import MemoryStore
from . import corruption
from .commit_race import CommitRaceTests

INVALID_KEYS = ["", "../x", "a//b", ".hidden", "a\x00b", "a b", "a/", "/a", "a/../b", "x" * 201, "a\nb"]
BIG = bytes(range(256)) * (5 * 1024 * 1024 // 256)  # 5 MiB, every byte value
THREADS = 16
PROCESSES = 8

_SEGMENT_TEXT = st.from_regex(r"[A-Za-z0-9_~\-][A-Za-z0-9._~\-]{0,20}", fullmatch=True)
_counter = itertools.count()


def _fresh(name: str) -> str:
    """A key prefix no other test or hypothesis example uses, so examples share one store safely."""
    return f"{name}{next(_counter)}-{uuid.uuid4().hex[:8]}"


def _race_put_if_absent(url: str, key: str, value: bytes, barrier: Any, results: Any) -> None:
    """Child process body: open the store by URL, wait for everyone, try to create `key`."""
    from safepoint.stores import open_store

    try:
        store = open_store(url)
        try:
            barrier.wait(timeout=60)
            results.put((value, store.put_if_absent(key, value)))
        finally:
            store.close()
    except BaseException as exc:  # report, so the parent fails with the reason instead of timing out
        results.put((value, f"{type(exc).__name__}: {exc}"))


class StoreTests(CommitRaceTests):
    """Behaviour every `Store` must have. Subclass with `store` and `store_factory` fixtures."""

    @pytest.fixture
    def store_url(self, store: Store) -> str | None:
        """URL another process can open; None skips the multi-process tests."""
        return store.url

    def raw_get(self, store: Store, key: str) -> bytes | None:
        """Read `key` bypassing the store (the file, the row...). Override in a backend's test."""
        pytest.skip(f"{type(self).__name__} supplies no raw_get")

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        """Write `key` bypassing the store (creating or overwriting it). Override in a backend's test."""
        pytest.skip(f"{type(self).__name__} supplies no raw_put")

    def raw_delete(self, store: Store, key: str) -> None:
        """Remove `key` bypassing the store. Override in a backend's test (the corruption trials need it)."""
        pytest.skip(f"{type(self).__name__} supplies no raw_delete")

    def raw_items(self, store: Store) -> dict[str, bytes]:
        """Every key and its bytes, read bypassing the store, in one go if the backend can. Override in a
        backend's test (the corruption trials need it)."""
        pytest.skip(f"{type(self).__name__} supplies no raw_items")

    # --- damage: random flips, truncations, deletions and strays of the raw data ------------------------
    def test_random_damage_is_detected_or_harmless(
        self, store: Store, capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
    ) -> None:
        """Every trial ends in the truth, a typed error or an fsck report: never wrong data, never a crash."""
        self.raw_items(store), self.raw_delete(store, "absent")  # skip unless the backend gives raw access
        tally = corruption.run_trials(
            store,
            lambda: self.raw_items(store),
            lambda key, data: self.raw_put(store, key, data),
            lambda key: self.raw_delete(store, key),
        )
        line = tally.line(type(self).__name__)
        record_property("corruption", dict(tally.counts))
        with capsys.disabled():
            print("\n" + line)
        warnings.warn(corruption.TrialCounts(line), stacklevel=1)  # shown under -q and -n too
        assert tally.counts["wrong"] == 0 and tally.counts["crash"] == 0, tally.examples

    # --- get / put round trips ------------------------------------------------------------------
    def test_get_missing_is_none(self, store: Store) -> None:
        assert store.get("nothing/here") is None
        assert store.exists("nothing/here") is False

    @pytest.mark.parametrize(
        "data", [b"", b"\x00", b"hello", bytes(range(256)), BIG], ids=["empty", "nul", "text", "all", "5MiB"]
    )
    def test_round_trip(self, store: Store, data: bytes) -> None:
        assert store.put_if_absent("a/b/c", data) is True
        assert store.get("a/b/c") == data
        assert store.exists("a/b/c") is True
        assert store.put("a/d", data) is True
        assert store.get("a/d") == data

    @settings(
        max_examples=40,
        deadline=None,
        # One store per test, one fresh key per example; every backend's subclass runs the same method.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(segments=st.lists(_SEGMENT_TEXT, min_size=1, max_size=3), data=st.binary(max_size=2000))
    def test_round_trip_any_key_and_bytes(self, store: Store, segments: list[str], data: bytes) -> None:
        key = _fresh("rt") + "/" + "/".join(segments)
        assert store.put_if_absent(key, data) is True
        assert store.get(key) == data
        assert store.list(key) == [key]

    def test_values_come_back_as_bytes(self, store: Store) -> None:
        store.put("a", bytearray(b"one"))
        store.put_if_absent("b", memoryview(b"two"))
        assert type(store.get("a")) is bytes and store.get("a") == b"one"
        assert type(store.get("b")) is bytes and store.get("b") == b"two"

    def test_raw_reader_sees_put(self, store: Store) -> None:
        store.put_if_absent("g/created", b"\x00created")
        store.put("g/written", b"written\xff")
        store.put("g/written", b"rewritten")
        assert self.raw_get(store, "g/created") == b"\x00created"
        assert self.raw_get(store, "g/written") == b"rewritten"
        assert self.raw_get(store, "g/missing") is None

    def test_get_sees_raw_put(self, store: Store) -> None:
        self.raw_put(store, "g/outside", b"from outside\x00")
        assert store.get("g/outside") == b"from outside\x00"
        assert store.list("g/") == ["g/outside"]
        assert store.put_if_absent("g/outside", b"other") is False

    # --- put_if_absent / put / compare-and-set --------------------------------------------------
    def test_put_if_absent_creates_once(self, store: Store) -> None:
        assert store.put_if_absent("s/1/0", b"first") is True
        assert store.put_if_absent("s/1/0", b"second") is False
        assert store.get("s/1/0") == b"first"

    def test_empty_value_is_present(self, store: Store) -> None:
        assert store.put_if_absent("k", b"") is True
        assert store.exists("k") is True
        assert store.put_if_absent("k", b"x") is False
        assert store.put("k", b"x", expect=None) is False
        assert store.get("k") == b""
        assert store.list() == ["k"]

    def test_put_overwrites(self, store: Store) -> None:
        assert store.put("h", b"old") is True
        assert store.put("h", b"new") is True
        assert store.get("h") == b"new"
        store.put_hint("hint", b"1")
        store.put_hint("hint", b"2")
        assert store.get("hint") == b"2"

    def test_cas_expect_none_only_creates(self, store: Store) -> None:
        assert store.put("lease", b"w1", expect=None) is True
        assert store.get("lease") == b"w1"
        assert store.put("lease", b"w2", expect=None) is False
        assert store.get("lease") == b"w1"

    def test_cas_expect_value(self, store: Store) -> None:
        store.put("lease", b"w1")
        assert store.put("lease", b"w2", expect=b"other") is False
        assert store.get("lease") == b"w1"
        assert store.put("lease", b"w2", expect=b"w1") is True
        assert store.get("lease") == b"w2"
        assert store.put("lease", b"w3", expect=b"w1") is False
        assert store.get("lease") == b"w2"

    @pytest.mark.parametrize("expect", [b"", b"w1"], ids=["empty", "value"])
    def test_cas_expect_value_on_missing_key_fails(self, store: Store, expect: bytes) -> None:
        assert store.put("lease", b"w2", expect=expect) is False
        assert store.get("lease") is None
        assert store.list() == []

    # --- list / delete --------------------------------------------------------------------------
    def test_list_is_sorted_and_filtered(self, store: Store) -> None:
        keys = ["b", "a/y", "ab", "a0/x", "a.1/x", "a/x", "a-1/x", "a/x.1/z", "c/d/e/f"]
        for key in keys:
            store.put_if_absent(key, key.encode())
        assert store.list() == sorted(keys)
        assert store.list("") == sorted(keys)
        assert store.list("a/") == ["a/x", "a/x.1/z", "a/y"]
        assert store.list("a") == sorted(k for k in keys if k.startswith("a"))
        assert store.list("a/x") == ["a/x", "a/x.1/z"]
        assert store.list("a/x.1/") == ["a/x.1/z"]
        assert store.list("ab") == ["ab"]
        assert store.list("ab/") == []
        assert store.list("c/d/") == ["c/d/e/f"]
        assert store.list("zz") == []
        assert store.list("b/") == []

    def test_items_match_list_and_get(self, store: Store) -> None:
        keys = ["b", "a/y", "ab", "a0/x", "a/x", "a/x.1/z", "c/d/e/f"]
        for key in keys:
            store.put_if_absent(key, b"value of " + key.encode())
        for prefix in ("", "a/", "a", "a/x", "c/d/", "zz", "b/"):
            assert store.items(prefix) == [(key, store.get(key)) for key in store.list(prefix)], prefix
        store.put("a/y", b"changed")
        assert dict(store.items("a/"))["a/y"] == b"changed"

    def test_list_empty_store(self, store: Store) -> None:
        assert store.list() == []
        assert store.list("a/") == []

    def test_delete(self, store: Store) -> None:
        store.put_if_absent("d/1", b"x")
        store.put_if_absent("d/2", b"y")
        assert store.delete("d/1") is True
        assert store.get("d/1") is None
        assert store.delete("d/1") is False
        assert store.delete("never/was") is False
        assert store.list() == ["d/2"]
        assert store.get("d/2") == b"y"

    def test_key_can_be_recreated_after_delete(self, store: Store) -> None:
        store.put_if_absent("deep/er/key", b"1")
        assert store.delete("deep/er/key") is True
        assert store.list() == []
        assert store.put_if_absent("deep/er/key", b"2") is True
        assert store.get("deep/er/key") == b"2"

    # --- invalid keys ---------------------------------------------------------------------------
    @pytest.mark.parametrize("key", INVALID_KEYS)
    @pytest.mark.parametrize("operation", ["get", "exists", "put_if_absent", "put", "cas", "hint", "delete"])
    def test_invalid_key_raises_and_writes_nothing(self, store: Store, key: str, operation: str) -> None:
        calls: dict[str, Callable[[], object]] = {
            "get": lambda: store.get(key),
            "exists": lambda: store.exists(key),
            "put_if_absent": lambda: store.put_if_absent(key, b"x"),
            "put": lambda: store.put(key, b"x"),
            "cas": lambda: store.put(key, b"x", expect=None),
            "hint": lambda: store.put_hint(key, b"x"),
            "delete": lambda: store.delete(key),
        }
        with pytest.raises(InvalidKey):
            calls[operation]()
        assert store.list() == []

    @pytest.mark.parametrize("prefix", ["/", "../", "a//", ".hidden/", "a b"])
    def test_invalid_list_prefix_raises(self, store: Store, prefix: str) -> None:
        with pytest.raises(InvalidKey):
            store.list(prefix)

    @pytest.mark.parametrize("where", ["key", "object", "hint"])
    def test_commit_with_invalid_key_raises(self, store: Store, where: str) -> None:
        key = "../bad" if where == "key" else "s/1/0"
        objects = [("../bad" if where == "object" else "o/1", b"obj")]
        hints = [("../bad" if where == "hint" else "s/1/head", b"0")]
        with pytest.raises(InvalidKey):
            store.commit(objects, key, b"data", hints)
        assert store.list() == []  # every key is checked before anything is written

    def test_prepare_changes_nothing_visible(self, store: Store) -> None:
        store.prepare("c/s1/")
        assert store.list() == [] and store.list("c/") == []
        assert store.put_if_absent("c/s1/000001", b"first") is True
        assert store.list("c/s1/") == ["c/s1/000001"]

    def test_last_is_the_greatest_key_under_a_prefix(self, store: Store) -> None:
        assert store.last("c/s1/") is None and store.last("") is None
        for key in ["c/s1/000002", "c/s1/000010", "c/s1/000001", "c/s10/000099", "c/s0/000050", "d/x"]:
            store.put_if_absent(key, b"v")
        assert store.last("c/s1/") == "c/s1/000010"
        assert store.last("c/s1") == "c/s10/000099"  # a prefix, not a directory
        assert store.last("c/") == "c/s10/000099"
        assert store.last("") == "d/x"
        assert store.last("c/s2/") is None
        store.delete("c/s1/000010")
        assert store.last("c/s1/") == "c/s1/000002"
        with pytest.raises(InvalidKey):
            store.last("../c/")

    def test_present_names_the_keys_that_exist(self, store: Store) -> None:
        assert store.present([]) == set()
        assert store.present(["c/s1/000001"]) == set()
        many = [f"c/s{n}/000001" for n in range(1_200)]  # past SQLite's limit of parameters in one statement
        for key in many[::2]:
            store.put_if_absent(key, b"v")
        store.put_if_absent("c/empty", b"")
        assert store.present([*many, "c/empty", "c/missing"]) == {*many[::2], "c/empty"}
        store.delete(many[0])
        assert many[0] not in store.present(many)
        with pytest.raises(InvalidKey):
            store.present(["c/ok", "../c/x"])

    # --- commit ---------------------------------------------------------------------------------
    def test_commit_writes_objects_key_and_hints(self, store: Store) -> None:
        objects = [("o/aa", b"chunk a"), ("o/bb", b"chunk b")]
        won = store.commit(objects, "s/1/0", b"checkpoint", [("s/1/head", b"0")])
        assert won is True
        assert store.get("o/aa") == b"chunk a" and store.get("o/bb") == b"chunk b"
        assert store.get("s/1/0") == b"checkpoint"
        assert store.get("s/1/head") == b"0"
        assert store.list() == ["o/aa", "o/bb", "s/1/0", "s/1/head"]

    def test_commit_loses_when_key_exists(self, store: Store) -> None:
        store.put_if_absent("o/aa", b"chunk a")
        assert store.commit([("o/aa", b"chunk a")], "s/1/0", b"first", [("s/1/head", b"0")]) is True
        store.put_hint("s/1/head", b"kept")
        won = store.commit([("o/cc", b"chunk c")], "s/1/0", b"second", [("s/1/head", b"1"), ("s/1/x", b"1")])
        assert won is False
        assert store.get("s/1/0") == b"first"
        assert store.get("s/1/head") == b"kept"
        assert store.get("s/1/x") is None
        assert store.get("o/cc") in (None, b"chunk c")  # an orphan object is allowed, a wrong one is not
        assert store.get("o/aa") == b"chunk a"

    def test_commit_accepts_generators(self, store: Store) -> None:
        objects = ((f"o/{i}", bytes([i])) for i in range(3))
        hints = (h for h in [("s/head", b"7")])
        assert store.commit(objects, "s/7", b"seven", hints) is True
        assert store.list() == ["o/0", "o/1", "o/2", "s/7", "s/head"]

    def test_fenced_commit_lands_while_the_fence_holds(self, store: Store) -> None:
        store.put("l/1", b"lease v1")
        won = store.commit([("o/aa", b"chunk a")], "s/1/0", b"first", [("s/1/head", b"0")], fence=("l/1", b"lease v1"))
        assert won is True
        assert store.get("s/1/0") == b"first" and store.get("o/aa") == b"chunk a"
        assert store.get("l/1") == b"lease v1"  # the fence is read, never written
        assert store.commit([], "s/1/0", b"again", fence=("l/1", b"lease v1")) is False

    @pytest.mark.parametrize("fence_value", [b"lease v2", None], ids=["changed", "absent"])
    def test_fenced_commit_refused_when_the_fence_moved(self, store: Store, fence_value: bytes | None) -> None:
        store.put_if_absent("s/1/0", b"first")
        if fence_value is not None:
            store.put("l/1", fence_value)
        before = {key: store.get(key) for key in store.list()}
        with pytest.raises(FenceMismatch) as raised:
            store.commit([("o/bb", b"chunk b")], "s/1/1", b"second", [("s/1/head", b"1")], fence=("l/1", b"lease v1"))
        assert raised.value.key == "l/1"
        assert {key: store.get(key) for key in store.list()} == before  # nothing written, not even objects

    def test_fence_is_checked_before_the_conflict(self, store: Store) -> None:
        # A writer whose lease is gone learns that first, whether or not its seq was taken meanwhile.
        store.put_if_absent("s/1/0", b"first")
        with pytest.raises(FenceMismatch):
            store.commit([], "s/1/0", b"second", fence=("l/1", b"lease v1"))

    @pytest.mark.parametrize("mark", [None, b"000000000005", b"5"], ids=["absent", "padded", "plain"])
    def test_commit_above_the_floor_lands(self, store: Store, mark: bytes | None) -> None:
        if mark is not None:
            store.put("f/1", mark)
        assert store.commit([("o/aa", b"chunk a")], "s/1/6", b"six", [("s/1/head", b"6")], floor=("f/1", 6)) is True
        assert store.get("s/1/6") == b"six" and store.get("s/1/head") == b"6" and store.get("o/aa") == b"chunk a"
        assert store.get("f/1") == mark  # the floor is read, never written

    @pytest.mark.parametrize("mark", [b"000000000006", b"9"], ids=["equal", "above"])
    def test_commit_at_or_below_the_floor_is_refused(self, store: Store, mark: bytes) -> None:
        # The key was taken once and moved elsewhere (a pack): re-creating it would fork the history.
        store.put("f/1", mark)
        assert store.commit([("o/aa", b"chunk a")], "s/1/6", b"late", [("s/1/head", b"6")], floor=("f/1", 6)) is False
        assert store.get("s/1/6") is None and store.get("s/1/head") is None
        assert store.get("f/1") == mark

    def test_a_floor_that_is_not_a_number_is_corruption(self, store: Store) -> None:
        store.put("f/1", b"six")
        with pytest.raises(CorruptCheckpoint, match="f/1"):
            store.commit([], "s/1/6", b"six", floor=("f/1", 6))
        assert store.get("f/1") == b"six"

    def test_fence_and_floor_together(self, store: Store) -> None:
        store.put("l/1", b"lease v1")
        store.put("f/1", b"3")
        assert store.commit([], "s/1/4", b"four", fence=("l/1", b"lease v1"), floor=("f/1", 4)) is True
        assert store.commit([], "s/1/3", b"three", fence=("l/1", b"lease v1"), floor=("f/1", 3)) is False
        with pytest.raises(FenceMismatch):
            store.commit([], "s/1/5", b"five", fence=("l/1", b"lease v2"), floor=("f/1", 5))
        assert [key for key in store.list("s/")] == ["s/1/4"]

    # --- several handles, threads and processes -------------------------------------------------
    def test_second_handle_sees_writes(self, store: Store, store_factory: Callable[[], Store]) -> None:
        with store_factory() as other:
            store.put_if_absent("s/1/0", b"one")
            assert other.get("s/1/0") == b"one"
            assert other.put_if_absent("s/1/0", b"two") is False
            assert other.put("s/1/0", b"two", expect=b"one") is True
            assert store.get("s/1/0") == b"two"
            assert other.list("s/") == ["s/1/0"]
            assert other.delete("s/1/0") is True
            assert store.get("s/1/0") is None

    def test_url_opens_the_same_store(self, store: Store, store_url: str | None) -> None:
        from ..stores import open_store

        if store_url is None:
            pytest.skip("this store cannot be opened from another process")
        store.put_if_absent("via/url", b"yes")
        with open_store(store_url) as other:
            assert other.get("via/url") == b"yes"
            assert other.url == store.url

    def test_put_if_absent_race_threads(self, store: Store) -> None:
        barrier = threading.Barrier(THREADS)
        results: dict[int, bool] = {}

        def race(i: int) -> None:
            barrier.wait(timeout=30)
            results[i] = store.put_if_absent("race/key", b"thread-%d" % i)

        threads = [threading.Thread(target=race, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == THREADS
        winners = [i for i, won in results.items() if won]
        assert len(winners) == 1, winners
        assert store.get("race/key") == b"thread-%d" % winners[0]

    def test_put_if_absent_race_processes(self, store: Store, store_url: str | None) -> None:
        if store_url is None:
            pytest.skip("this store cannot be opened from another process")
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(PROCESSES), context.Queue()
        processes = [
            context.Process(
                target=_race_put_if_absent, args=(store_url, "race/key", b"process-%d" % i, barrier, results)
            )
            for i in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        try:
            outcomes = dict(results.get(timeout=120) for _ in processes)
        finally:
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.terminate()
        errors = [outcome for outcome in outcomes.values() if not isinstance(outcome, bool)]
        assert errors == []
        winners = [value for value, won in outcomes.items() if won]
        assert len(outcomes) == PROCESSES and len(winners) == 1, outcomes
        assert store.get("race/key") == winners[0]

    def test_cas_counter(self, store: Store, store_factory: Callable[[], Store]) -> None:
        threads_count, increments = 8, 25
        store.put("counter", b"0")
        barrier = threading.Barrier(threads_count)
        failures: list[BaseException] = []

        def increment() -> None:
            try:
                with store_factory() as handle:
                    barrier.wait(timeout=30)
                    for _ in range(increments):
                        for _attempt in range(10_000):
                            current = handle.get("counter")
                            assert current is not None
                            if handle.put("counter", b"%d" % (int(current) + 1), expect=current):
                                break
                        else:
                            raise AssertionError("compare-and-set never succeeded")
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=increment) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        assert store.get("counter") == b"%d" % (threads_count * increments)

    # --- the model ------------------------------------------------------------------------------
    def test_matches_memory_model(self, store: Store) -> None:
        run_state_machine_as_test(
            _model_machine(store),
            settings=settings(max_examples=25, stateful_step_count=30, deadline=None),
        )


_KEYS = ["a/x", "a/y", "ab/x", "b/x", "h/1", "h/2"]
_HINT_KEYS = ["h/1", "h/2"]
_OBJECT_KEYS = ["o/1", "o/2"]
_PREFIXES = ["", "a", "a/", "ab", "ab/", "b/", "h/", "o/", "a/x", "a/x/"]
_VALUES = [b"", b"v1", b"v2", b"\x00\xff" * 3]


def _model_machine(store: Store) -> type[RuleBasedStateMachine]:
    """A state machine running random operations on `store` and on a MemoryStore; results must agree.

    Each example works under its own fresh key prefix, so all examples can share the one `store`.
    """
    keys, values = st.sampled_from(_KEYS), st.sampled_from(_VALUES)

    class StoreMatchesModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.base = _fresh("model") + "/"
            self.model = MemoryStore()

        def k(self, key: str) -> str:
            return self.base + key

        @rule(key=keys, value=values)
        def put(self, key: str, value: bytes) -> None:
            assert store.put(self.k(key), value) == self.model.put(self.k(key), value)

        @rule(key=keys, value=values)
        def put_hint(self, key: str, value: bytes) -> None:
            store.put_hint(self.k(key), value)
            self.model.put_hint(self.k(key), value)

        @rule(key=keys, value=values)
        def put_if_absent(self, key: str, value: bytes) -> None:
            assert store.put_if_absent(self.k(key), value) == self.model.put_if_absent(self.k(key), value)

        @rule(key=keys, value=values, expect=st.none() | values)
        def compare_and_set(self, key: str, value: bytes, expect: bytes | None) -> None:
            got = store.put(self.k(key), value, expect=expect)
            assert got == self.model.put(self.k(key), value, expect=expect)

        @rule(key=st.sampled_from(_KEYS + _OBJECT_KEYS))
        def delete(self, key: str) -> None:
            assert store.delete(self.k(key)) == self.model.delete(self.k(key))

        @rule(key=st.sampled_from(_KEYS + _OBJECT_KEYS))
        def get_key(self, key: str) -> None:
            assert store.get(self.k(key)) == self.model.get(self.k(key))
            assert store.exists(self.k(key)) == self.model.exists(self.k(key))

        @rule(prefix=st.sampled_from(_PREFIXES))
        def list_keys(self, prefix: str) -> None:
            assert store.list(self.k(prefix)) == self.model.list(self.k(prefix))

        @rule(
            key=keys,
            value=values,
            objects=st.lists(st.sampled_from(_OBJECT_KEYS), unique=True),
            hints=st.lists(st.sampled_from(_HINT_KEYS), unique=True),
            hint_value=values,
        )
        def commit(self, key: str, value: bytes, objects: list[str], hints: list[str], hint_value: bytes) -> None:
            # Objects are content-addressed: a key always holds the same bytes.
            object_items = [(self.k(o), b"object " + o.encode()) for o in objects]
            hint_items = [(self.k(h), hint_value) for h in hints if h != key]
            won = store.commit(object_items, self.k(key), value, hint_items)
            assert won == self.model.commit(object_items, self.k(key), value, hint_items)
            if not won:  # a losing commit may or may not have left its objects behind: both are fine
                for object_key, object_value in object_items:
                    actual = store.get(object_key)
                    assert actual in (None, object_value)
                    if actual is None:
                        self.model.delete(object_key)

        @invariant()
        def same_keys(self) -> None:
            assert store.list(self.base) == self.model.list(self.base)

        def teardown(self) -> None:
            for key in store.list(self.base):
                store.delete(key)

    return StoreMatchesModel
