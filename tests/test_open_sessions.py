"""The index of open sessions: kept by writers, completed by the first worker pass, listed instead of every session."""

from __future__ import annotations

from pathlib import Path

import pytest

import safepoint as sp
from safepoint.core import open_sessions
from safepoint.core.history import session_segment
from safepoint.runtime.leases import Lease


def job(s: sp.Session) -> str:
    return s.step("work", lambda: "done")


@pytest.fixture
def repo(tmp_path: Path) -> sp.Repository:
    return sp.open(tmp_path / "store")


def listed_keys(repo: sp.Repository) -> list[str]:
    return repo.store.list(open_sessions.PREFIX)


def left_running(repo: sp.Repository, session_id: str) -> None:
    """A session saved `running` by a writer that is gone: a worker's candidate ("never leased")."""
    with repo.session(session_id, agent="job", lease=False) as s:
        s.save(step="queued")


def closed(repo: sp.Repository, session_id: str, status: sp.Status) -> None:
    with repo.session(session_id, agent="job") as s:
        s.save(step="end", status=status)


def test_a_session_is_listed_from_its_opening_until_it_completes_or_fails(repo: sp.Repository) -> None:
    with repo.session("a", agent="job") as s:
        assert listed_keys(repo) == ["open/a"]  # before its first checkpoint
        s.save(step="one")
        s.save(step="two", status=sp.Status.WAITING)
        s.save(step="three", status=sp.Status.PAUSED)
        assert repo.store.get("open/a") == b"a"
        s.save(step="end", status=sp.Status.COMPLETED)
        assert listed_keys(repo) == []
    closed(repo, "b", sp.Status.FAILED)
    assert listed_keys(repo) == []
    with repo.session("b") as s:  # taken up again: open again
        assert listed_keys(repo) == ["open/b"]
        s.save(step="retry")
    assert listed_keys(repo) == ["open/b"]


def test_a_session_id_that_is_not_a_plain_name_is_listed_by_its_id(repo: sp.Repository) -> None:
    left_running(repo, "user 42: run #7")
    (entry,) = listed_keys(repo)
    assert entry == "open/" + session_segment("user 42: run #7")
    assert repo.store.get(entry) == b"user 42: run #7"
    repo.store.put(open_sessions.COMPLETE, b"1")
    assert sp.Worker(repo, agents={"job": job}).candidates() == [("user 42: run #7", "never leased")]


def test_the_first_worker_pass_indexes_a_store_written_before_the_index(repo: sp.Repository) -> None:
    left_running(repo, "crashed")
    closed(repo, "done", sp.Status.COMPLETED)
    with pytest.raises(sp.Suspended):
        with repo.session("asking", agent="job") as s:
            s.wait_for("go", prompt="Go on?")
    for entry in listed_keys(repo):  # as a store written by an older safepoint has them: none
        repo.store.delete(entry)
    assert not repo.store.exists(open_sessions.COMPLETE)

    worker = sp.Worker(repo, agents={"job": job})
    assert worker.candidates() == [("crashed", "never leased")]  # found by reading every session
    assert listed_keys(repo) == ["open/asking", "open/crashed"]
    assert repo.store.exists(open_sessions.COMPLETE)
    assert [(r.session, r.status) for r in worker.run_once()] == [("crashed", sp.Status.COMPLETED)]
    assert listed_keys(repo) == ["open/asking"]


def test_once_indexed_a_pass_reads_only_the_open_sessions(repo: sp.Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(30):
        closed(repo, f"done{n:02d}", sp.Status.COMPLETED)
    left_running(repo, "todo1")
    left_running(repo, "todo2")
    worker = sp.Worker(repo, agents={"job": job})
    assert sorted(worker.candidates()) == [("todo1", "never leased"), ("todo2", "never leased")]  # the full scan

    read: list[str] = []
    get = repo.store.get
    monkeypatch.setattr(repo.store, "get", lambda key: read.append(key) or get(key))
    assert sorted(worker.candidates()) == [("todo1", "never leased"), ("todo2", "never leased")]
    assert sorted(key for key in read if key.startswith("sessions/")) == ["sessions/todo1", "sessions/todo2"]
    assert not any("done" in key for key in read)


def test_a_stale_entry_is_removed_only_while_nobody_holds_the_session(repo: sp.Repository) -> None:
    closed(repo, "done", sp.Status.COMPLETED)
    repo.store.put(open_sessions.COMPLETE, b"1")
    repo.store.put("open/done", b"done")  # as a writer that died between its last commit and the removal leaves it
    worker = sp.Worker(repo, agents={"job": job})

    holder = Lease(repo.store, "done", session_segment("done")).acquire()  # someone is taking it up again
    try:
        assert worker.candidates() == []
        assert listed_keys(repo) == ["open/done"]  # kept: the holder may be about to run it
    finally:
        holder.release()
    assert worker.candidates() == []
    assert listed_keys(repo) == []

    repo.store.put("open/vanished", b"vanished")  # names no session at all
    assert worker.candidates() == []
    assert listed_keys(repo) == []


def test_answering_forking_and_importing_list_the_session(repo: sp.Repository, tmp_path: Path) -> None:
    with pytest.raises(sp.Suspended):
        with repo.session("asking", agent="job") as s:
            s.wait_for("go", prompt="Go on?")
    repo.store.delete("open/asking")  # (lost, or written before the index existed)
    repo.store.put(open_sessions.COMPLETE, b"1")
    repo.send("asking", "go", True)
    assert listed_keys(repo) == ["open/asking"]
    assert sp.Worker(repo, agents={"job": job}).candidates() == [("asking", "answered")]

    left_running(repo, "running")
    closed(repo, "done", sp.Status.COMPLETED)
    repo.fork("running", new_id="running-copy")
    repo.fork("done", new_id="done-copy")
    bundle = repo.export_session("running", tmp_path / "running.spb")
    repo.import_session(bundle, as_id="running-imported")
    assert listed_keys(repo) == ["open/asking", "open/running", "open/running-copy", "open/running-imported"]
