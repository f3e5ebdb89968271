"""gc beside writers, deterministically: pins, the deleting mark, saves that verify artifacts, last good, delete."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.core import gc_guard
from safepoint.core.artifacts import manifest_key

SETTLE = 2 * gc_guard.WINDOW


@pytest.fixture
def repo(tmp_path: Path) -> sp.Repository:
    return sp.open(str(tmp_path / "store"))


def test_an_uploaded_artifact_survives_gc_until_it_is_saved(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        ref = s.put_artifact("draft.txt", b"not saved yet")
        assert repo.store.exists(gc_guard.pin_key("a"))
        report = repo.gc(settle=SETTLE)
        assert report.kept_objects >= 2  # the manifest and its chunk, pinned
        s.save(step="draft")
        assert not repo.store.exists(gc_guard.pin_key("a"))  # saved: the checkpoint keeps it now
    with repo.open_artifact(ref.ref) as handle:
        assert handle.read() == b"not saved yet"


def test_an_upload_never_saved_is_collected_once_its_session_closes(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        ref = s.put_artifact("draft.txt", b"abandoned")
    assert repo.gc(settle=SETTLE).deleted_objects == 2
    assert not repo.store.exists(manifest_key(ref.ref))


def test_a_save_refuses_a_reference_to_a_missing_artifact_and_writes_nothing(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        s.save(step="start")
        s.state["artifacts"] = [{"name": "x", "ref": "sha256:" + "ab" * 32, "size": 1, "media_type": "text/plain"}]
        with pytest.raises(sp.ArtifactNotFound, match="state.artifacts references sha256:abab"):
            s.save(step="broken")
    assert [c.seq for c in repo.history("a")] == [1]


def test_a_writer_waits_while_gc_deletes_then_checks_again(repo: sp.Repository) -> None:
    with repo.session("garbage", schema=dict) as g:
        g.put_artifact("never saved", b"garbage")
    with repo.session("a", schema=dict) as s:
        s.save(step="one")
        mark, blob = gc_guard.begin_deleting(repo.store)
        with pytest.raises(gc_guard.GcBusy, match="another gc is deleting"):
            repo.gc(settle=SETTLE)  # one gc deletes at a time (this store has garbage to delete)
        done = threading.Event()
        time.sleep(gc_guard.WINDOW)  # the writer's last look at gc is too old to trust now

        def save() -> None:
            s.save(step="two")
            done.set()

        thread = threading.Thread(target=save)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set()  # held back while gc deletes
        gc_guard.end_deleting(repo.store, mark, blob)
        thread.join(5)
        assert done.is_set()
        assert s._chain.gc_watch.generation == mark.generation + 1  # it saw the gc, and checked again


def test_gc_frees_the_bytes_of_the_checkpoints_it_deletes(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        for n in range(40):
            s.state["n"] = n
            s.state["text"] = f"line {n} " * 40
            s.save(step=f"s{n}")
    report = repo.gc(keep_last=1, settle=SETTLE)
    assert report.deleted_checkpoints > 0
    assert report.freed_bytes > report.deleted_checkpoints * 100


def test_last_good_skips_a_checkpoint_whose_artifact_is_missing(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        s.save(step="plain")
        ref = s.put_artifact("data.csv", b"a,b\n1,2\n")
        s.save(step="with artifact")
    repo.store.delete(manifest_key(ref.ref))
    report = repo.fsck()
    assert [p.broken for p in report.problems] == [[("a", 2)]]
    assert repo.last_good("a") == 1


def test_delete_removes_a_session_and_gc_then_frees_only_what_nothing_else_uses(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        shared = s.put_artifact("shared.txt", b"kept by the fork")
        s.save(step="one")
        own = s.put_artifact("own.txt", b"only a's")
        s.save(step="two")
    repo.fork("a", at=1, new_id="b")
    assert repo.delete("a") == 2
    assert not repo.exists("a") and "a" not in list(repo.session_ids())
    with pytest.raises(sp.SessionNotFound):
        repo.delete("a")
    repo.gc(settle=SETTLE)
    assert not repo.store.exists(manifest_key(own.ref))
    with repo.open_artifact(shared.ref) as handle:
        assert handle.read() == b"kept by the fork"
    assert repo.fsck().ok
    assert repo.store.list("commits/a/") == [] and repo.store.list("open/a") == []


def test_delete_refuses_a_session_a_live_lease_holds(repo: sp.Repository) -> None:
    with repo.session("a", schema=dict) as s:
        s.save(step="one")
        with pytest.raises(sp.SessionBusy, match="its lease is live"):
            repo.delete("a")
        assert repo.delete("a", force=True) == 1
