"""fsck, last_good, retention, gc and export/import, checked against what is really in the store."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime, timedelta

import pytest

import safepoint as sp
from safepoint.core import codec, history
from safepoint.core.tree import child_digests


def _grow(store, session_id="s", steps=80, start=0, size=300):
    with store.session(session_id, schema=dict) as s:
        if s.is_new:
            s.state.update(notes=[], blob="")
        for i in range(start, start + steps):
            s.state["notes"].append(f"note {i} " + "x" * size)
            s.save(step=f"step {i}")
    return s


def _keyframes(store, session_id="s"):
    return [c.seq for c in store.history(session_id) if c.keyframe]


def _flip(store, key):
    raw = store.store.get(key)
    store.store.put(key, raw[:-1] + bytes([raw[-1] ^ 0x55]))


def test_fsck_clean_store_is_ok():
    store = sp.open("memory://")
    _grow(store)
    report = store.fsck()
    assert report.ok and report.problems == []
    assert report.checked_checkpoints == 80
    assert report.checked_objects == len(store.store.list("objects/"))


def test_fsck_names_a_damaged_object_and_every_checkpoint_it_breaks():
    store = sp.open("memory://")
    _grow(store, steps=100, size=2000)  # 200 KB of notes: split into shared objects
    last_keyframe = _keyframes(store)[-1]
    record = store.store.get(f"commits/s/{last_keyframe:012d}")
    root = codec.load_sealed(record, "k")["root"]
    child = child_digests(root)[0]  # the big notes list, stored as its own object
    _flip(store, f"objects/{child[:2]}/{child}")
    report = store.fsck()
    assert not report.ok
    [problem] = report.problems
    assert problem.key == f"objects/{child[:2]}/{child}"
    assert problem.broken == [("s", seq) for seq in range(last_keyframe, 101)]
    assert store.last_good("s") == last_keyframe - 1
    with pytest.raises(sp.CorruptCheckpoint, match=child):
        store.load("s")
    # Fall back explicitly: resume from the last good checkpoint; the next save is a clean new head.
    with store.session("s", schema=dict, at=store.last_good("s")) as s:
        s.state["notes"].append("recovered")
        checkpoint = s.save(step="recovered")
    assert checkpoint.seq == 101 and checkpoint.parent == last_keyframe - 1
    assert store.load("s").state["notes"][-1] == "recovered"


def test_fsck_reports_a_damaged_delta_record_and_the_chain_after_it():
    store = sp.open("memory://")
    _grow(store, steps=20)
    _flip(store, "commits/s/000000000010")
    report = store.fsck()
    [problem] = report.problems
    assert problem.key == "commits/s/000000000010"
    assert problem.broken == [("s", seq) for seq in range(10, 21)]
    assert store.last_good("s") == 9


def test_fsck_reports_a_missing_commit_that_later_deltas_need():
    store = sp.open("memory://")
    _grow(store, steps=12)
    store.store.delete("commits/s/000000000005")
    report = store.fsck()
    [problem] = report.problems
    assert problem.key == "commits/s/000000000005"
    assert problem.reason.startswith("checkpoint 5 acknowledged but missing")
    assert problem.broken == [("s", seq) for seq in range(5, 13)]  # itself, and the deltas built on it
    assert problem.last_good == {"s": 4} and report.last_good == {"s": 4}


def test_fsck_checks_artifacts_and_orphans():
    store = sp.open("memory://")
    with store.session("a", schema=dict) as s:
        ref = s.put_artifact("data.bin", b"z" * 100_000)
        s.save()
    manifest = codec.load_sealed(store.store.get(f"artifacts/{ref.ref[7:]}"), "m")
    chunk = manifest["chunks"][0][0]
    _flip(store, f"objects/{chunk[:2]}/{chunk}")
    [problem] = store.fsck().problems
    assert problem.key == f"objects/{chunk[:2]}/{chunk}"
    assert problem.broken == [("a", 1)]


def test_gc_deletes_only_what_nothing_references():
    store = sp.open("memory://")
    with store.session("a", schema=dict) as s:
        s.state["big"] = [f"row {i} " + "y" * 200 for i in range(2000)]
        s.put_artifact("keep.txt", b"keep me" * 1000)
        s.save()
        dropped = s.put_artifact("drop.txt", b"drop me" * 1000)
        s.state["artifacts"] = [a for a in s.state["artifacts"] if a["name"] != "drop.txt"]
        s.save()
    store.store.put_if_absent("objects/ab/" + "ab" * 32, b"junk nobody references")
    before = set(store.store.list(""))
    dry = store.gc(dry_run=True)
    assert set(store.store.list("")) == before
    report = store.gc()
    assert (report.deleted_objects, report.deleted_checkpoints) == (dry.deleted_objects, 0)
    after = set(store.store.list(""))
    assert "objects/ab/" + "ab" * 32 not in after
    assert f"artifacts/{dropped.ref[7:]}" not in after
    assert store.fsck().ok
    with store.session("a", schema=dict) as s:
        assert s.open_artifact("keep.txt").read() == b"keep me" * 1000
        assert len(s.state["big"]) == 2000


def test_retention_keep_last_keeps_what_deltas_need():
    store = sp.open("memory://")
    _grow(store, steps=100)
    states = {c.seq: store.load("s", c.seq).state for c in store.history("s")[-10:]}
    report = store.gc(keep_last=10)
    seqs = [c.seq for c in store.history("s")]
    assert seqs[-10:] == list(range(91, 101))
    assert seqs[0] <= 91 and history.KEYFRAME_EVERY > 100 - seqs[0] - 10  # only the base chain is extra
    assert store.load("s", seqs[0]).seq == seqs[0]
    assert report.deleted_checkpoints == seqs[0] - 1
    for seq, state in states.items():
        assert store.load("s", seq).state == state
    assert store.fsck().ok


def test_retention_newer_than():
    store = sp.open("memory://")
    _grow(store, steps=40)
    cutoff = datetime.now(UTC) + timedelta(seconds=1)
    assert store.gc(newer_than=cutoff).deleted_checkpoints > 0  # everything old, but the head (and its base)
    assert store.history("s")[-1].seq == 40
    assert store.load("s").state["notes"][-1].startswith("note 39")
    with pytest.raises(sp.SafepointError, match="keep_last"):
        store.gc(keep_last=0)


def test_export_import_round_trip_between_backends(tmp_path):
    source = sp.open("memory://")
    _grow(source, steps=50)
    with source.session("s", schema=dict) as s:
        s.put_artifact("report.md", b"# report\n" * 10_000)
        s.save(step="with artifact")
    bundle = source.export_session("s", tmp_path / "s.spb")
    target = sp.open(f"sqlite:///{tmp_path / 'target.db'}")
    info = target.import_session(bundle, as_id="copy")
    assert info.id == "copy" and info.seq == 51
    for seq in (1, 17, 33, 51):
        assert target.load("copy", seq).state == source.load("s", seq).state
    with target.session("copy", schema=dict) as s:
        assert s.open_artifact("report.md").read() == b"# report\n" * 10_000
    assert target.fsck().ok
    with pytest.raises(sp.SafepointError, match="already exists"):
        target.import_session(bundle, as_id="copy")


def test_import_of_a_damaged_bundle_changes_nothing(tmp_path):
    source = sp.open("memory://")
    _grow(source, steps=5)
    bundle = source.export_session("s", tmp_path / "s.spb")
    damaged = tmp_path / "damaged.spb"
    with tarfile.open(bundle) as src, tarfile.open(damaged, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.startswith("commits/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.addfile(member, io.BytesIO(data))
    target = sp.open("memory://")
    with pytest.raises(sp.CorruptCheckpoint):
        target.import_session(damaged)
    assert target.store.list("") == []
