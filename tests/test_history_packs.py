"""Packed history: on the directory, SQLite and Redis stores, finished keyframe cycles live in one compressed pack."""

from __future__ import annotations

import os
import warnings

import pytest
from services import fresh_name, redis_url, with_query

import safepoint as sp
from safepoint.core import history
from safepoint.core.history import KEYFRAME_EVERY, Chain
from safepoint.errors import ConflictError, SafepointWarning, StorageError
from safepoint.stores.files import FileStore
from safepoint.stores.memory import MemoryStore


@pytest.fixture(params=["file", "sqlite", "redis", "memory"])
def repo(request, tmp_path):
    if request.param == "file":
        return sp.open(tmp_path / "store")
    if request.param == "sqlite":
        return sp.open(f"sqlite:///{tmp_path / 'store.db'}")
    if request.param == "redis":
        prefix = fresh_name("packs")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SafepointWarning)  # the test server keeps nothing on disk
            opened = sp.open(with_query(redis_url(), prefix=prefix))
        request.addfinalizer(lambda: _drop_redis_prefix(opened, prefix))
        return opened
    store = MemoryStore()
    store.pack_records = True  # the same logic on a store that packs by choice
    return sp.open(store)


def _drop_redis_prefix(repo, prefix: str) -> None:
    client = repo.store._client
    for name in client.scan_iter(match="{" + prefix + "}:*", count=1000):
        client.delete(name)
    repo.store.close()


def chat(repo, session_id: str, steps: int) -> dict[int, tuple[list[str], str]]:
    """Save `steps` checkpoints of a growing conversation; return seq -> (messages, checksum)."""
    saved = {}
    with repo.session(session_id, schema=dict) as s:
        s.state["messages"] = []
        for step in range(steps):
            s.state["messages"].append(f"message {step} " + "words " * 40)
            checkpoint = s.save(step=f"step {step}")
            saved[checkpoint.seq] = (list(s.state["messages"]), checkpoint.checksum)
    return saved


def test_finished_cycles_are_packed_and_every_checkpoint_still_loads_the_same(repo):
    saved = chat(repo, "talk", 3 * KEYFRAME_EVERY + 5)
    chain = Chain(repo.store, "talk")
    assert [(first, last) for first, last, _ in chain.packs()] == [(1, 32), (33, 64), (65, 96)]
    loose = [int(key.rsplit("/", 1)[1]) for key in repo.store.list(chain.prefix)]
    assert loose == list(range(97, 102))  # only the open cycle is loose
    assert [c.seq for c in repo.history("talk")] == list(range(1, 102))
    for seq, (messages, checksum) in saved.items():
        checkpoint = repo.load("talk", seq)
        assert checkpoint.state["messages"] == messages
        assert checkpoint.checksum == checksum  # packing keeps each record's checksum
    assert repo.fsck().ok


def test_the_directory_store_packs_by_default_and_takes_fewer_files(tmp_path):
    repo = sp.open(tmp_path / "store")
    assert isinstance(repo.store, FileStore) and repo.store.pack_records
    chat(repo, "talk", 200)
    files = sum(len(names) for _, _, names in os.walk(tmp_path / "store"))
    assert files < 60  # 200 commit files before packing; now 6 packs, 8 loose records and the objects


def test_a_stale_writer_recreating_a_packed_record_gets_conflict_and_leaves_nothing(repo):
    chat(repo, "talk", 3)
    stale = repo.session("talk", schema=dict, lease=False)  # at seq 3; then others move on far ahead
    with repo.session("talk", schema=dict, lease=False) as s:
        for step in range(2 * KEYFRAME_EVERY):
            s.state["messages"].append(f"later {step}")
            s.save()
    chain = Chain(repo.store, "talk")
    assert chain.packs()  # seq 4 now lives in a pack, its loose record is gone
    assert not repo.store.exists(chain.commit_key(4))
    stale.state["messages"].append("from the past")
    with pytest.raises(ConflictError):
        stale.save()
    assert not repo.store.exists(chain.commit_key(4))  # its stray record was removed again
    assert repo.load("talk", 4).state["messages"][-1] == "later 0"
    assert repo.fsck().ok


def test_a_failed_pack_only_warns_and_gc_finishes_an_interrupted_one(repo, monkeypatch):
    def broken_discard(self, keys):
        raise StorageError("disk went away while discarding")

    monkeypatch.setattr(type(repo.store), "discard", broken_discard)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        saved = chat(repo, "talk", KEYFRAME_EVERY + 3)
    assert any(issubclass(w.category, SafepointWarning) and "could not pack" in str(w.message) for w in caught)
    monkeypatch.undo()
    chain = Chain(repo.store, "talk")
    assert chain.packs() and repo.store.exists(chain.commit_key(1))  # packed, floor raised, copies still there
    for seq, (messages, _) in saved.items():
        assert repo.load("talk", seq).state["messages"] == messages
    repo.gc()
    assert not repo.store.exists(chain.commit_key(1))
    assert [c.seq for c in repo.history("talk")] == list(range(1, KEYFRAME_EVERY + 4))
    assert repo.load("talk", 1).state["messages"] == saved[1][0]


def test_deleting_some_packed_records_unpacks_the_rest(repo):
    saved = chat(repo, "talk", KEYFRAME_EVERY + 2)
    chain = Chain(repo.store, "talk")
    chain.delete_records([KEYFRAME_EVERY])  # the last delta of the packed cycle
    assert not chain.packs()
    assert [c.seq for c in repo.history("talk")] == [s for s in saved if s != KEYFRAME_EVERY]
    assert repo.load("talk", 5).state["messages"] == saved[5][0]
    assert repo.load("talk").state["messages"] == saved[KEYFRAME_EVERY + 2][0]


def test_after_deleting_the_newest_packed_records_the_session_saves_those_seqs_again(repo):
    # (What the LangGraph saver does when a run is deleted.) The floor comes down with the head, else it
    # would refuse the next saves as records "a pack already holds".
    saved = chat(repo, "talk", 2 * KEYFRAME_EVERY + 3)
    chain = Chain(repo.store, "talk")
    assert chain._read_floor() == 2 * KEYFRAME_EVERY
    chain.delete_records(range(KEYFRAME_EVERY + 5, 2 * KEYFRAME_EVERY + 4))
    assert chain.head_seq() == KEYFRAME_EVERY + 4 and chain._read_floor() == KEYFRAME_EVERY + 4
    with repo.session("talk", schema=dict) as s:
        assert s.state["messages"] == saved[KEYFRAME_EVERY + 4][0]
        s.state["messages"].append("again")
        assert s.save().seq == KEYFRAME_EVERY + 5
    assert repo.load("talk").state["messages"][-1] == "again"
    assert repo.load("talk", 3).state["messages"] == saved[3][0]
    assert repo.fsck().ok


def test_retention_drops_whole_packs(repo):
    saved = chat(repo, "talk", 3 * KEYFRAME_EVERY + 1)
    report = repo.gc(keep_last=10)
    assert report.deleted_checkpoints == 2 * KEYFRAME_EVERY  # up to the keyframe the kept ones build on
    chain = Chain(repo.store, "talk")
    assert [(first, last) for first, last, _ in chain.packs()] == [(65, 96)]
    assert repo.load("talk", 70).state["messages"] == saved[70][0]
    assert repo.fsck().ok


def test_export_and_import_carry_packed_checkpoints_with_their_checksums(repo, tmp_path):
    saved = chat(repo, "talk", KEYFRAME_EVERY + 4)
    bundle = repo.export_session("talk", tmp_path / "talk.tar")
    target = sp.open(tmp_path / "other")
    target.import_session(bundle)  # same id: every record keeps its bytes, so its checksum
    assert [c.checksum for c in target.history("talk")] == [checksum for _, checksum in saved.values()]
    assert target.load("talk", 7).state["messages"] == saved[7][0]
    repo.import_session(bundle, as_id="copy")
    assert repo.load("copy", 7).state["messages"] == saved[7][0]


def test_a_damaged_pack_is_reported_with_every_checkpoint_it_breaks(tmp_path):
    repo = sp.open(tmp_path / "store")
    chat(repo, "talk", KEYFRAME_EVERY + 2)
    chain = Chain(repo.store, "talk")
    ((_, _, key),) = chain.packs()
    path = tmp_path / "store" / key
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(sp.CorruptCheckpoint, match=key):
        repo.load("talk", 3)
    assert repo.load("talk").seq == KEYFRAME_EVERY + 2  # the head's cycle is not in the pack
    report = repo.fsck()
    (problem,) = [p for p in report.problems if p.key == key]
    assert {seq for _, seq in problem.broken} == set(range(1, KEYFRAME_EVERY + 1))


def test_a_packed_checkpoint_can_be_rebased(repo):
    saved = chat(repo, "talk", KEYFRAME_EVERY + 2)
    chain = Chain(repo.store, "talk")
    chain.rebase(10)
    assert chain.record(10)["base"] == 10
    for seq in (9, 10, 11, KEYFRAME_EVERY + 2):
        assert repo.load("talk", seq).state["messages"] == saved[seq][0]


def test_stores_that_do_not_pack_keep_loose_records():
    repo = sp.open("memory://")
    chat(repo, "talk", KEYFRAME_EVERY + 2)
    chain = Chain(repo.store, "talk")
    assert chain.packs() == [] and len(repo.store.list(chain.prefix)) == KEYFRAME_EVERY + 2
    assert not repo.store.exists(chain.floor_key)
    assert history.Chain(repo.store, "talk").seqs() == list(range(1, KEYFRAME_EVERY + 3))


def test_sqlite_gives_the_pages_of_packed_records_back(tmp_path):
    import sqlite3

    repo = sp.open(f"sqlite:///{tmp_path / 'store.db'}")
    chat(repo, "talk", 2 * KEYFRAME_EVERY + 1)
    assert len(Chain(repo.store, "talk").packs()) == 2
    with sqlite3.connect(tmp_path / "store.db") as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental, set on a new file
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # no pages left behind by the packing


class _PacksRightAfterACreate(MemoryStore):
    """A store checking the floor after the create (the generic `Store.commit`), where another writer continues
    from a commit key the moment it is created: it commits a keyframe after it, packing it, before the first
    writer reads the floor."""

    pack_records = True

    def __init__(self) -> None:
        super().__init__()
        self.target: str | None = None
        self.between = lambda: None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        created = super().put_if_absent(key, data)
        if created and key == self.target:
            self.target = None
            self.between()
        return created


def test_a_commit_packed_by_another_writer_before_the_floor_check_is_not_a_conflict():
    store = _PacksRightAfterACreate()
    repo = sp.open(store)
    first = repo.session("race", schema=dict, lease=False)
    first.state["n"] = 0
    first.save()
    second = repo.session("race", schema=dict, lease=False)

    def other_writer_packs() -> None:
        other = repo.session("race", schema=dict, lease=False)  # sees seq 2, just created
        other.state["big"] = "x" * (100 * 1024)  # too big for a delta: a keyframe, which packs seqs 1-2
        other.save()

    store.target = Chain(store, "race").commit_key(2)
    store.between = other_writer_packs
    first.state["n"] = 1
    landed = first.save()  # before the fix: ConflictError, although seq 2 is this very commit
    assert landed.seq == 2
    chain = Chain(store, "race")
    assert [(a, b) for a, b, _ in chain.packs()] == [(1, 2)]
    assert chain.record(2)["_checksum"] == landed.checksum
    assert repo.load("race", 3).state["big"].startswith("x")

    # A real conflict still is one: a writer still at seq 1 re-creates seq 2, whose loose record the pack took.
    with pytest.raises(ConflictError):
        second.state["n"] = "stale"
        second.save()
    assert chain.record(2)["_checksum"] == landed.checksum
