"""A session's chain: every checkpoint loads as saved, keyframes bound the chains, forks share, storage
grows with the change."""

from __future__ import annotations

import random
from typing import Any

import pytest

import safepoint as sp
from safepoint.core import codec, history
from safepoint.errors import CheckpointNotFound, CorruptCheckpoint, SafepointError, SessionNotFound
from safepoint.stores.memory import MemoryStore


class CountingStore(MemoryStore):
    """A memory store that counts reads by key prefix."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def _get(self, key: str) -> bytes | None:
        self.reads.append(key)
        return super()._get(key)


def stored_bytes(repo: sp.Repository, prefix: str = "") -> int:
    store = repo.store
    return sum(len(store.get(key) or b"") for key in store.list(prefix))


def evolve(state: dict[str, Any], step: int, rng: random.Random) -> None:
    """One agent step: mostly appends and small edits, now and then a big rewrite or a removal."""
    state.setdefault("messages", []).append({"role": rng.choice(["user", "assistant"]), "n": step, "text": "w" * 50})
    state.setdefault("counters", {})[f"c{step % 7}"] = step
    state["step"] = step
    if step % 10 == 0:
        state["messages"][rng.randrange(len(state["messages"]))]["edited"] = step
    if step % 17 == 0:
        state["notes"] = {f"note-{i}": rng.random() for i in range(300)}  # a big replacement
    if step % 23 == 0:
        state.pop("notes", None)
    if step % 29 == 0:
        del state["messages"][:5]  # the context window drops its oldest messages
    if step % 31 == 0:
        state["flag"] = [True, 1, 1.0, None, "1"][step % 5]


@pytest.fixture
def repo() -> sp.Repository:
    return sp.open("memory://")


def test_every_one_of_200_checkpoints_loads_as_saved(repo: sp.Repository) -> None:
    rng = random.Random(11)
    s = repo.session("long-run", schema=dict)
    saved = {}
    for step in range(1, 201):
        evolve(s.state, step, rng)
        checkpoint = s.save(step=f"step-{step}")
        assert checkpoint.seq == step
        saved[step] = codec.dumps(s.state)
    s.close()
    for seq, expected in saved.items():
        loaded = repo.load("long-run", seq)
        assert loaded.seq == seq and loaded.step == f"step-{seq}"
        assert codec.dumps(loaded.state) == expected, f"seq {seq} does not load as saved"
    for seq in (1, 32, 33, 100, 199):
        assert codec.dumps(repo.session("long-run", schema=dict, at=seq).state) == saved[seq]


def test_resumed_writer_continues_the_chain_exactly(repo: sp.Repository) -> None:
    rng = random.Random(5)
    saved = {}
    for step in range(1, 81):
        with repo.session("stop-and-go", schema=dict) as s:  # a new process every step
            assert s.seq == step - 1
            evolve(s.state, step, rng)
            s.save()
            saved[step] = codec.dumps(s.state)
    assert all(codec.dumps(repo.load("stop-and-go", seq).state) == data for seq, data in saved.items())


def test_keyframes_occur_at_most_every_keyframe_every_checkpoints(repo: sp.Repository) -> None:
    s = repo.session("frames", schema=dict)
    for step in range(1, 151):
        s.state["step"] = step
        s.save()
    frames = [c.seq for c in repo.history("frames") if c.keyframe]
    assert frames[0] == 1
    points = [*frames, 151]  # 151: the next save, were there one
    gaps = [b - a for a, b in zip(points, points[1:], strict=False)]
    assert max(gaps) <= history.KEYFRAME_EVERY
    assert len(frames) < 150 / 4, "small changes should be stored as deltas, not keyframes"


def test_big_changes_bring_the_next_keyframe_forward(repo: sp.Repository) -> None:
    s = repo.session("rewrites", schema=dict)
    rng = random.Random(2)
    for _ in range(40):
        s.state["blob"] = rng.randbytes(history.DELTA_BUDGET // 4).hex()  # each delta is half the budget
        s.save()
    frames = [c.seq for c in repo.history("rewrites") if c.keyframe]
    gaps = [b - a for a, b in zip(frames, frames[1:], strict=False)]
    assert gaps and max(gaps) <= 3


def test_loading_the_head_reads_a_bounded_chain() -> None:
    store = CountingStore()
    repo = sp.open(store)
    s = repo.session("bounded", schema=dict)
    for step in range(1, 301):
        s.state.setdefault("log", []).append(step)
        s.save()
    store.reads.clear()
    assert repo.load("bounded").state["log"][-1] == 300
    records = [key for key in store.reads if key.startswith("commits/")]
    assert len(set(records)) <= history.KEYFRAME_EVERY


# --- forks ------------------------------------------------------------------------------------------------


def big_state(count: int) -> dict[str, Any]:
    return {"messages": [{"n": i, "text": f"message {i} " * 20} for i in range(count)], "goal": "report"}


def test_fork_records_its_parent_and_shares_objects(repo: sp.Repository) -> None:
    s = repo.session("origin", schema=dict, agent="writer", tags=["t"])
    s.state.update(big_state(4000))
    for step in range(1, 6):
        s.state["messages"].append({"n": -step})
        s.save(step=f"s{step}")
    objects_before = len(repo.store.list("objects/"))
    object_bytes_before = stored_bytes(repo, "objects/")
    assert objects_before > 5

    repo.fork("origin", at=1, new_id="origin-same")  # the state of a keyframe: every object is shared
    assert len(repo.store.list("objects/")) == objects_before
    assert stored_bytes(repo, "objects/") == object_bytes_before

    info = repo.fork("origin", at=3, new_id="origin-alt")
    assert info.id == "origin-alt" and info.parent == {"session": "origin", "seq": 3}
    assert info.agent == "writer" and info.tags == ["t"] and info.seq == 1
    forked = repo.load("origin-alt")
    assert forked.meta["forked_from"] == {"session": "origin", "seq": 3}
    assert codec.dumps(forked.state) == codec.dumps(repo.load("origin", 3).state)
    assert stored_bytes(repo, "objects/") - object_bytes_before < object_bytes_before / 5
    assert len(repo.store.list("objects/")) - objects_before <= 4

    alt = repo.session("origin-alt", schema=dict)
    alt.state["goal"] = "a different report"
    assert alt.save().seq == 2
    assert repo.load("origin").state["goal"] == "report" and repo.load("origin").seq == 5


def test_fork_defaults_to_the_head_and_a_derived_id(repo: sp.Repository) -> None:
    s = repo.session("base", schema=dict)
    s.state["x"] = 1
    s.save()
    s.state["x"] = 2
    s.save()
    info = repo.fork("base")
    assert info.id == "base-fork-2" and info.parent == {"session": "base", "seq": 2}
    assert repo.load("base-fork-2").state == {"x": 2}
    with pytest.raises(SafepointError, match="exists"):
        repo.fork("base", new_id="base-fork-2")
    assert repo.load("base-fork-2").state == {"x": 2} and repo.info("base-fork-2").seq == 1


# --- diff and missing checkpoints --------------------------------------------------------------------------


def test_diff_between_checkpoints_is_readable(repo: sp.Repository) -> None:
    s = repo.session("diffable")
    s.state.mission.goal = "draft"
    s.state.data["sources"] = ["a"]
    s.save()
    s.state.mission.goal = "final"
    s.state.mission.done.append("wrote intro")
    s.state.data["sources"].append("b")
    s.state.data["count"] = 3
    s.save()
    lines = repo.diff("diffable", 1, 2)
    assert '~ state.mission.goal: "draft" -> "final"' in lines
    assert '+ state.mission.done[0]: "wrote intro"' in lines
    assert '+ state.data.sources[1]: "b"' in lines
    assert "+ state.data.count: 3" in lines
    assert len(lines) == 4
    assert repo.diff("diffable", 2, 2) == []
    assert '- state.data.sources[1]: "b"' in repo.diff("diffable", 2, 1)


def test_missing_checkpoints_and_sessions(repo: sp.Repository) -> None:
    s = repo.session("few", schema=dict)
    s.save()
    s.save()
    for seq in (0, 3, 99, -1):
        with pytest.raises(CheckpointNotFound) as caught:
            repo.load("few", seq)
        assert "few" in str(caught.value)
    with pytest.raises(SessionNotFound):
        repo.load("nobody")
    with pytest.raises(SessionNotFound):
        repo.history("nobody")
    repo.session("empty", schema=dict)
    with pytest.raises(CheckpointNotFound):
        repo.load("empty")
    assert repo.history("empty") == []


# --- damage -------------------------------------------------------------------------------------------------


def test_damaged_record_is_named_and_earlier_checkpoints_still_load(repo: sp.Repository) -> None:
    s = repo.session("damaged", schema=dict)
    for step in range(1, 11):
        s.state["step"] = step
        s.save()
    key = "commits/damaged/000000000006"
    blob = bytearray(repo.store.get(key) or b"")
    blob[-3] ^= 0x20
    repo.store.put(key, bytes(blob))
    for seq in (6, 7, 10):
        with pytest.raises(CorruptCheckpoint) as caught:
            repo.load("damaged", seq)
        assert caught.value.key == key
    assert repo.load("damaged", 5).state == {"step": 5}


def test_damaged_keyframe_object_is_named(repo: sp.Repository) -> None:
    s = repo.session("objects", schema=dict)
    s.state.update(big_state(3000))
    s.save()
    victim = repo.store.list("objects/")[0]
    blob = bytearray(repo.store.get(victim) or b"")
    blob[len(blob) // 2] ^= 0x01
    repo.store.put(victim, bytes(blob))
    with pytest.raises(CorruptCheckpoint) as caught:
        repo.load("objects")
    assert caught.value.key == victim and victim in str(caught.value)


# --- storage grows with the change ---------------------------------------------------------------------------


def test_storage_grows_with_the_change_not_with_steps_times_state(repo: sp.Repository) -> None:
    rng = random.Random(9)
    s = repo.session("chat", schema=dict)
    s.state["messages"] = []
    for step in range(300):
        text = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "tool", "result"]) for _ in range(100))
        s.state["messages"].append({"role": "user" if step % 2 else "assistant", "content": text[:500]})
        s.save(step=f"turn-{step}")
    final = len(codec.dumps(s.state))
    assert final > 300 * 500
    total = stored_bytes(repo)
    assert total < 3 * final, f"{total} bytes stored for a final state of {final}"
    assert codec.dumps(repo.load("chat").state) == codec.dumps(s.state)
    assert codec.dumps(repo.load("chat", 150).state["messages"]) == codec.dumps(s.state["messages"][:150])


def test_a_sliding_context_window_is_stored_as_small_deltas(repo: sp.Repository) -> None:
    s = repo.session("window", schema=dict)
    s.state["window"] = [{"n": i, "text": f"message {i} " * 40} for i in range(200)]
    s.save()
    for step in range(1, 101):
        s.state["window"].pop(0)
        s.state["window"].append({"n": 200 + step, "text": f"message {200 + step} " * 40})
        s.save()
    message = len(codec.dumps(s.state["window"][-1]))
    frames = [c.seq for c in repo.history("window") if c.keyframe]
    assert len(frames) <= 101 // history.KEYFRAME_EVERY + 1
    for checkpoint in repo.history("window"):
        if not checkpoint.keyframe:
            record = repo.store.get(history.Chain(repo.store, "window").commit_key(checkpoint.seq)) or b""
            assert len(record) < message + 600, f"seq {checkpoint.seq}: {len(record)} bytes"
    assert codec.dumps(repo.load("window").state) == codec.dumps(s.state)
    removed, added = repo.diff("window", 50, 51)
    assert removed.startswith('- state.window[0]: {"n":49,') and added.startswith('+ state.window[199]: {"n":250,')


@pytest.mark.parametrize(
    ("before", "after"),
    [(1, True), (True, 1), (1, 1.0), (0, False), (0.0, -0.0), (2.0, 2)],
)
def test_a_checkpoint_loads_with_the_exact_types_saved(repo: sp.Repository, before: Any, after: Any) -> None:
    s = repo.session("types", schema=dict)
    s.state["data"] = {"settings": {"value": before}, "list": [[before]]}
    s.save()
    s.state["data"] = {"settings": {"value": after}, "list": [[after]]}
    s.save()
    s.close()
    assert codec.dumps(repo.load("types", 2).state) == codec.dumps(s.state)
    assert codec.dumps(repo.session("types", schema=dict).state) == codec.dumps(s.state)


@pytest.mark.parametrize(
    "state",
    [
        {
            "text": 'caf\u00e9 \u2603 "quoted" \\ back',
            "n": -0.0,
            "big": 2**63 - 1,
            "nested": {"z": [1, {"b": 2, "a": 1}]},
        },
        {"root": {"k": "v", "v": "a state that looks like a tree node"}, "meta": {"root": 1}},
        {},
    ],
    ids=["unicode-and-numbers", "keys-named-like-the-record", "empty"],
)
def test_a_keyframe_record_is_canonical_json_of_its_content(repo: sp.Repository, state: dict[str, Any]) -> None:
    # The state of a small keyframe is spliced into its record as the bytes already encoded: those must be the
    # very bytes a canonical encoding of the whole record gives (packs, exports and checksums rely on it).
    with repo.session("splice", schema=dict) as s:
        s.state.update(state)
        checkpoint = s.save(step="first", root="meta value named root")
    chain = history.Chain(repo.store, "splice")
    key, payload, checksum = chain.record_payload(1)
    record = codec.loads(payload)
    assert codec.dumps(record) == payload
    assert record["root"] == {"k": "v", "v": {"runtime": {}, "state": state}}
    assert checksum == checkpoint.checksum == codec.sha256(payload)
    assert repo.load("splice").state == state
