"""Side effects under an idempotency key: done ones never re-run; in-doubt ones are asked about or reconciled.

Every effect writes to a real sink the test owns (an SQLite outbox keyed by the idempotency key), so
"ran exactly once" is counted in the outside world, not in safepoint's own records.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

import pytest

import safepoint as sp

KEY = "email:report-42"


class Outbox:
    """The outside world: an SQLite table with one row per delivery (no uniqueness, so duplicates show)."""

    def __init__(self, path):
        self.path = str(path)
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TABLE IF NOT EXISTS outbox (key TEXT, body TEXT)")

    def send(self, key: str, body: str) -> dict:
        with sqlite3.connect(self.path) as db:
            row = db.execute("INSERT INTO outbox (key, body) VALUES (?, ?)", (key, body)).lastrowid
        return {"message_id": row}

    def count(self, key: str = KEY) -> int:
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT COUNT(*) FROM outbox WHERE key = ?", (key,)).fetchone()[0]

    def lookup(self, key: str):
        """A reconcile function: ask the outside system whether the effect with this key happened."""
        with sqlite3.connect(self.path) as db:
            row = db.execute("SELECT rowid FROM outbox WHERE key = ?", (key,)).fetchone()
        return {"message_id": row[0]} if row else sp.NOT_DONE


@pytest.fixture
def outbox(tmp_path):
    return Outbox(tmp_path / "outbox.db")


@pytest.fixture
def repo(tmp_path):
    return sp.open(tmp_path / "store")


def crashing(outbox: Outbox, *, after_send: bool, times: int = 1, crash=KeyboardInterrupt):
    """An effect function that dies (BaseException, like a kill) `times` times, before or after delivering."""
    left = [times]

    def send(key: str, body: str) -> dict:
        if left[0] > 0:
            left[0] -= 1
            if after_send:
                outbox.send(key, body)
            raise crash()
        return outbox.send(key, body)

    return send


def mailer(send, *, reconcile=None):
    def agent(s):
        receipt = s.effect(KEY, send, KEY, "the report", reconcile=reconcile)
        return {"receipt": receipt}

    return agent


def test_a_done_effect_returns_its_recorded_result_and_never_runs_again(repo, outbox):
    crash = [True]

    def agent(s):
        receipt = s.effect(KEY, outbox.send, KEY, "the report")
        if crash[0]:
            crash[0] = False
            raise RuntimeError("died after the email went out")
        return receipt

    with pytest.raises(RuntimeError):
        sp.run(agent, "job", store=repo, schema=dict)
    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED and result.value == {"message_id": 1}
    with repo.session("job", schema=dict) as s:  # even called again in a later session
        assert s.effect(KEY, outbox.send, KEY, "the report") == {"message_id": 1}
    assert outbox.count() == 1
    steps = [c.step for c in repo.history("job")]
    assert steps[:2] == [f"effect {KEY}: intent", f"effect {KEY}"]  # the intent is durable before the call
    assert repo.load("job").runtime["effects"][KEY]["status"] == "done"


def test_the_intent_is_saved_before_the_call(repo, outbox):
    seen = []

    def send(key, body):
        seen.append(repo.load("job").runtime["effects"][key]["status"])
        return outbox.send(key, body)

    sp.run(mailer(send), "job", store=repo, schema=dict)
    assert seen == ["intent"]


CHILD = textwrap.dedent(
    """
    import os, sqlite3, sys
    import safepoint as sp

    store, outbox, key, deliver = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "deliver"

    def send(key, body):
        if deliver:
            with sqlite3.connect(outbox) as db:
                db.execute("INSERT INTO outbox (key, body) VALUES (?, ?)", (key, body))
        os._exit(9)  # the process dies mid-call: the intent is saved, the result never will be

    def agent(s):
        return {"receipt": s.effect(key, send, key, "the report")}

    sp.run(agent, "job", store=store, schema=dict)
    """
)


def crash_in_child(repo_path, outbox: Outbox, *, deliver: bool) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(repo_path), outbox.path, KEY, "deliver" if deliver else "no"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 9, child.stderr


def test_an_effect_in_doubt_after_a_real_crash_waits_for_a_human_and_done_resolves_it(repo, outbox, tmp_path):
    crash_in_child(tmp_path / "store", outbox, deliver=True)
    head = repo.load("job")
    assert head.runtime["effects"][KEY]["status"] == "intent" and outbox.count() == 1

    result = sp.run(mailer(outbox.send), "job", store=repo, schema=dict)
    assert result.status == sp.Status.WAITING
    assert result.waiting_for == [f"effect:{KEY}"]
    assert outbox.count() == 1  # not silently re-run
    pending = repo.pending_inputs("job")
    assert list(pending) == [f"effect:{KEY}"]
    assert KEY in pending[f"effect:{KEY}"]["prompt"]
    assert repo.load("job").status == sp.Status.WAITING

    # Asking again does not run it either; a bad answer is refused.
    assert sp.run(mailer(outbox.send), "job", store=repo, schema=dict).status == sp.Status.WAITING
    with pytest.raises(sp.InvalidAnswer):
        repo.send("job", f"effect:{KEY}", "maybe")
    assert outbox.count() == 1

    repo.send("job", f"effect:{KEY}", "done")
    result = sp.run(mailer(outbox.send), "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED
    assert outbox.count() == 1
    record = repo.load("job").runtime["effects"][KEY]
    assert record["status"] == "done" and record["resolved_in_doubt"] is True
    assert result.value == {"receipt": record["result"]}


@pytest.mark.parametrize("crash", [KeyboardInterrupt, SystemExit])
def test_an_effect_in_doubt_answered_retry_runs_exactly_once(repo, outbox, crash):
    send = crashing(outbox, after_send=False, crash=crash)
    with pytest.raises(crash):
        sp.run(mailer(send), "job", store=repo, schema=dict)
    assert outbox.count() == 0
    waiting = sp.run(mailer(send), "job", store=repo, schema=dict)
    assert waiting.waiting_for == [f"effect:{KEY}"] and outbox.count() == 0

    repo.send("job", f"effect:{KEY}", "retry")
    assert outbox.count() == 0  # answering runs nothing by itself
    result = sp.run(mailer(send), "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED
    assert result.value == {"receipt": {"message_id": 1}}
    assert outbox.count() == 1
    with repo.session("job", schema=dict) as s:
        assert s.effect(KEY, send, KEY, "the report") == {"message_id": 1}
    assert outbox.count() == 1


def test_an_answered_in_doubt_effect_that_is_in_doubt_again_is_asked_about_again(repo, outbox):
    # The human said "retry"; the retry itself died mid-call. That is a new doubt: the earlier answer
    # must not be taken as permission to run the effect yet again.
    send = crashing(outbox, after_send=True, times=2)
    with pytest.raises(KeyboardInterrupt):
        sp.run(mailer(send), "job", store=repo, schema=dict)
    sp.run(mailer(send), "job", store=repo, schema=dict)
    repo.send("job", f"effect:{KEY}", "retry")
    with pytest.raises(KeyboardInterrupt):
        sp.run(mailer(send), "job", store=repo, schema=dict)
    assert outbox.count() == 2
    result = sp.run(mailer(send), "job", store=repo, schema=dict)
    assert outbox.count() == 2, "the effect in doubt a second time was silently run again"
    assert result.status == sp.Status.WAITING and result.waiting_for == [f"effect:{KEY}"]


def test_reconcile_finding_the_effect_done_records_its_result_without_running_it(repo, outbox, tmp_path):
    crash_in_child(tmp_path / "store", outbox, deliver=True)
    asked = []

    def reconcile(key):
        asked.append(key)
        return outbox.lookup(key)

    result = sp.run(mailer(outbox.send, reconcile=reconcile), "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED
    assert asked == [KEY]
    assert outbox.count() == 1
    assert result.value == {"receipt": {"message_id": 1}}
    record = repo.load("job").runtime["effects"][KEY]
    assert record["status"] == "done" and record["result"] == {"message_id": 1} and record["resolved_in_doubt"]
    assert repo.pending_inputs("job") == {}


def test_reconcile_saying_not_done_runs_the_effect_once(repo, outbox, tmp_path):
    crash_in_child(tmp_path / "store", outbox, deliver=False)
    asked = []

    def reconcile(key):
        asked.append(key)
        return outbox.lookup(key)

    agent = mailer(outbox.send, reconcile=reconcile)
    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED
    assert asked == [KEY]
    assert outbox.count() == 1 and result.value == {"receipt": {"message_id": 1}}
    with repo.session("job", schema=dict) as s:  # done now: neither reconciled nor run again
        assert s.effect(KEY, outbox.send, KEY, "x", reconcile=reconcile) == {"message_id": 1}
    assert asked == [KEY] and outbox.count() == 1


def test_reconcile_returning_not_done_in_process(repo, outbox):
    send = crashing(outbox, after_send=False, crash=SystemExit)
    with pytest.raises(SystemExit):
        sp.run(mailer(send), "job", store=repo, schema=dict)
    result = sp.run(mailer(send, reconcile=lambda key: sp.NOT_DONE), "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED and outbox.count() == 1


def test_a_done_effect_does_not_consult_reconcile(repo, outbox):
    asked = []

    def reconcile(key):
        asked.append(key)
        return sp.NOT_DONE

    sp.run(mailer(outbox.send, reconcile=reconcile), "job", store=repo, schema=dict)
    with repo.session("job", schema=dict) as s:
        s.effect(KEY, outbox.send, KEY, "again", reconcile=reconcile)
    assert asked == [] and outbox.count() == 1


def test_effects_with_different_keys_are_independent(repo, outbox):
    def agent(s):
        return [s.effect(f"email:{who}", outbox.send, f"email:{who}", "hi") for who in ("ann", "bob")]

    with repo.session("job", schema=dict) as s:
        s.effect("email:ann", outbox.send, "email:ann", "hi")
    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.value == [{"message_id": 1}, {"message_id": 2}]
    assert outbox.count("email:ann") == 1 and outbox.count("email:bob") == 1
