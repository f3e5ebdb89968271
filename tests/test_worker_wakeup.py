"""On PostgreSQL, workers are woken through LISTEN/NOTIFY (an answer, a session left running) instead of polling."""

from __future__ import annotations

import threading
import time

import pytest
from services import fresh_name, postgres_url, require_module, with_query

import safepoint as sp
from safepoint.runtime.wake import WAKE_CHANNEL

psycopg = require_module("psycopg", "postgres")

POLL_SECONDS = 120.0  # far longer than the test may take: only a notification can wake the worker in time


@pytest.fixture
def repo():
    schema = fresh_name("wake")
    url = postgres_url()
    opened = sp.open(with_query(url, schema=schema))
    yield opened
    opened.store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def approval(s: sp.Session) -> str:
    s.step("draft", lambda: "outline")
    if not s.wait_for("approve", prompt="Approve the outline?", schema=bool):
        return "rejected"
    return s.step("publish", lambda: "published")


def test_answers_and_sessions_left_running_are_announced(repo):
    assert sp.run(approval, "report", store=repo).status == sp.Status.WAITING
    listener = repo.store.listen(WAKE_CHANNEL)
    try:
        repo.send("report", "approve", True)
        assert listener.wait(timeout=10) == ["report"]
        with repo.session("draft", agent="approval") as s:
            s.save(step="started")
        assert listener.wait(timeout=10) == ["draft"]  # closed while running: another worker may go on
        with repo.session("done", agent="approval") as s:
            s.save(step="finished", status=sp.Status.COMPLETED)
        assert listener.wait(timeout=0.5) == []  # nothing left to do: nobody is woken
    finally:
        listener.close()


def _worker(repo: sp.Repository) -> tuple[sp.Worker, threading.Thread]:
    worker = sp.Worker(repo, agents={"approval": approval}, poll_interval=POLL_SECONDS)
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    time.sleep(1.0)  # the first scan finds nothing to do; the worker now waits up to POLL_SECONDS
    assert worker.results == []
    return worker, thread


def _completed_within(repo: sp.Repository, session_id: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while repo.load(session_id).status != sp.Status.COMPLETED and time.monotonic() < deadline:
        time.sleep(0.05)
    return repo.load(session_id).status == sp.Status.COMPLETED


def test_a_worker_waiting_between_scans_is_woken_by_an_answer(repo):
    assert sp.run(approval, "report", store=repo).status == sp.Status.WAITING
    worker, thread = _worker(repo)
    try:
        repo.send("report", "approve", True)
        assert _completed_within(repo, "report", 20)  # 20 s < POLL_SECONDS: only the notification explains it
        assert [(r.session, r.status) for r in worker.results] == [("report", sp.Status.COMPLETED)]
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()  # the stop is seen between listening slices, not after the poll interval


def test_a_session_left_running_is_taken_on_at_once(repo):
    assert sp.run(approval, "report", store=repo).status == sp.Status.WAITING
    repo.send("report", "approve", True)
    with repo.session("report") as s:  # someone else opens it: the worker's first scan sees it held
        worker, thread = _worker(repo)
        s.save(step="touched")  # still running, and left so when the lease is released below
    try:
        assert _completed_within(repo, "report", 20)
        assert [(r.session, r.status) for r in worker.results] == [("report", sp.Status.COMPLETED)]
    finally:
        worker.stop()
        thread.join(timeout=10)
