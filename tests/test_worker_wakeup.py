"""On PostgreSQL, an answer wakes a waiting worker through LISTEN/NOTIFY instead of waiting for its next poll."""

from __future__ import annotations

import threading
import time

import pytest
from services import fresh_name, postgres_url, require_module, with_query

import safepoint as sp
from safepoint.runtime.inputs import READY_CHANNEL

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


def test_an_answer_is_announced_on_the_ready_channel(repo):
    assert sp.run(approval, "report", store=repo).status == sp.Status.WAITING
    listener = repo.store.listen(READY_CHANNEL)
    try:
        repo.send("report", "approve", True)
        assert listener.wait(timeout=10) == ["report"]
    finally:
        listener.close()


def test_a_worker_waiting_between_scans_is_woken_by_an_answer(repo):
    assert sp.run(approval, "report", store=repo).status == sp.Status.WAITING
    lines: list[str] = []
    worker = sp.Worker(repo, agents={"approval": approval}, poll_interval=POLL_SECONDS, log=lines.append)
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the first scan finds nothing ready; the worker now waits up to POLL_SECONDS
        assert worker.results == []
        answered = time.monotonic()
        repo.send("report", "approve", True)
        while repo.load("report").status != sp.Status.COMPLETED and time.monotonic() - answered < 20:
            time.sleep(0.05)
        woken_after = time.monotonic() - answered
        assert repo.load("report").status == sp.Status.COMPLETED, lines
        assert woken_after < 20 < POLL_SECONDS
        assert [(r.session, r.status) for r in worker.results] == [("report", sp.Status.COMPLETED)]
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()  # the stop is seen between listening slices, not after the poll interval
