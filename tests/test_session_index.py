"""core.session_index and core.listing: the summary index written with every commit and healed on read; finding
sessions; the overview; and the new audited actions (resolve an effect in doubt, mark failed, retry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dashboard_fixtures import Crash, fleet

import safepoint as sp
from safepoint.core import codec, session_index
from safepoint.core.history import session_segment
from safepoint.core.listing import SessionFilter
from safepoint.errors import InvalidAnswer, SafepointError


@pytest.fixture(params=["memory", "file", "sqlite"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> sp.Repository:
    url = {"memory": "memory://", "file": str(tmp_path / "s"), "sqlite": f"sqlite:///{tmp_path / 's.db'}"}
    return sp.open(url[request.param])


def entry(repo: sp.Repository, session_id: str) -> dict:
    found = session_index.read(repo.store, session_segment(session_id))
    assert found is not None
    return found


def test_every_commit_writes_the_entry_its_chain_would_give(repo: sp.Repository) -> None:
    with repo.session("s", agent="a", tags=["x"]) as s:
        assert entry(repo, "s")["head"] is None  # created: listed before its first checkpoint
        s.step("fetch", lambda: s.report_usage(tokens=120, cost=0.5) or "page")
        s.save("noted")
    doc = entry(repo, "s")
    truth = repo.summary("s")
    assert doc["head"]["seq"] == truth.info.seq == 2 and doc["head"]["step"] == "noted"
    assert (doc["tokens"], doc["kept_tokens"], doc["steps_done"]) == (120, 120, 1) == (
        truth.tokens, truth.kept_tokens, truth.steps_done)  # fmt: skip
    assert len(doc["gaps"]) == 1 and doc["agent"] == "a" and doc["tags"] == ["x"]
    times = session_index.times_of(doc)
    # Gaps are kept in whole milliseconds: each earlier time is within half a millisecond per gap of the truth.
    assert times == pytest.approx([c.created_at.timestamp() for c in repo.history("s")], abs=0.002)
    assert [s.to_dict() for s in repo.summaries()] == [truth.to_dict()]


def test_a_missing_damaged_or_stale_entry_heals_on_read(repo: sp.Repository) -> None:
    for name in ("gone", "torn", "stale"):
        with repo.session(name) as s:
            s.save("one")
            s.save("two")
    stale = repo.store.get(session_index.key("stale"))
    with repo.session("stale") as s:
        s.save("three")
    repo.store.delete(session_index.key("gone"))
    repo.store.put(session_index.key("torn"), b"SPx garbage")
    repo.store.put(session_index.key("stale"), stale)  # a crash between the commit and its hint
    # A listing checks every entry's head against its chain's commit keys (core.index_check): none is behind.
    assert {s.info.id: s.info.seq for s in repo.summaries()} == {"gone": 2, "torn": 2, "stale": 3}
    assert entry(repo, "gone")["head"]["seq"] == 2 and entry(repo, "torn")["head"]["seq"] == 2
    assert entry(repo, "stale")["head"]["seq"] == 3 and len(entry(repo, "stale")["gaps"]) == 2
    repo.store.put(session_index.key("stale"), stale)
    assert repo.summary("stale").info.seq == 3  # the session page reads the chain, and heals the entry too
    assert entry(repo, "stale")["head"]["seq"] == 3 and len(entry(repo, "stale")["gaps"]) == 2


def test_an_imported_session_is_listed(repo: sp.Repository, tmp_path: Path) -> None:
    with repo.session("orig") as s:
        s.save("one")
    bundle = repo.export_session("orig", tmp_path / "orig.bundle")
    repo.import_session(bundle, as_id="copy")
    assert entry(repo, "copy")["head"]["seq"] == 1 and entry(repo, "copy")["id"] == "copy"


def test_find_sessions_filters_sorts_and_pages(repo: sp.Repository) -> None:
    fleet(repo)
    page, rows = repo.find_sessions(SessionFilter(status="waiting"))
    assert page.total == 2 and {r.info.id for r in rows} == {"waiting", "asking"}
    page, rows = repo.find_sessions(SessionFilter(agent="writer", text="GONE"))
    assert [r.info.id for r in rows] == ["broken"] and rows[0].error == "RuntimeError: the source is gone"
    page, rows = repo.find_sessions(SessionFilter(tag="nightly"))
    assert [r.info.id for r in rows] == ["waiting"]
    everything = [s.info.id for s in repo.summaries()]
    first, rows1 = repo.find_sessions(limit=4)
    second, rows2 = repo.find_sessions(offset=4, limit=4)
    assert [r.info.id for r in rows1 + rows2] == everything and first.has_next and not second.has_next
    assert [s.info.updated_at for s in repo.summaries()] == sorted((s.info.updated_at for s in repo.summaries()),
                                                                   reverse=True)  # fmt: skip


def test_overview_and_children(repo: sp.Repository) -> None:
    fleet(repo)
    repo.fork("waiting", at=1, new_id="waiting-b")
    o = repo.overview()
    assert o.sessions == 7 and o.by_status == {"waiting": 2, "running": 3, "failed": 1, "completed": 1}
    assert [s.info.id for s in o.in_doubt] == ["doubt"] and [s.info.id for s in o.failed] == ["broken"]
    assert "doubt" in [s.info.id for s in o.stuck]  # an effect in doubt always needs a person
    assert [c.id for c in repo.children("waiting")] == ["waiting-b"]


def test_resolve_done_records_the_result_the_agent_gets_back(repo: sp.Repository) -> None:
    calls: list[str] = []

    def mailer(s: sp.Session) -> object:
        def send() -> str:
            calls.append("send")
            if len(calls) == 1:
                raise Crash("died mid-call")
            return "sent again"

        return s.effect("email:1", send)

    with pytest.raises(Crash):
        sp.run(mailer, "m", store=repo)
    with pytest.raises(InvalidAnswer, match="say 'done' or 'retry'"):
        repo.resolve_effect("m", "email:1", "maybe")
    with pytest.raises(InvalidAnswer, match="not in doubt"):
        repo.resolve_effect("m", "email:9", "done")
    saved = repo.resolve_effect("m", "email:1", "done", {"id": "msg-7"}, by="ops")
    assert saved.meta["how"] == "resolve effect email:1: done" and saved.meta["by"] == "ops"
    assert sp.run(mailer, "m", store=repo).value == {"id": "msg-7"} and calls == ["send"]  # not sent twice


def test_resolve_retry_withdraws_the_question_and_runs_the_call_again(repo: sp.Repository) -> None:
    calls: list[str] = []

    def mailer(s: sp.Session) -> object:
        def send() -> str:
            calls.append("send")
            if len(calls) == 1:
                raise Crash("died mid-call")
            return "sent"

        return s.effect("email:1", send)

    with pytest.raises(Crash):
        sp.run(mailer, "m", store=repo)
    assert sp.run(mailer, "m", store=repo).status is sp.Status.WAITING  # no reconcile: it asks a person
    assert repo.pending_inputs("m").keys() == {"effect:email:1"}
    saved = repo.resolve_effect("m", "email:1", "retry")
    assert saved.meta["ready"] is True and repo.pending_inputs("m") == {}
    assert sp.run(mailer, "m", store=repo).value == "sent" and calls == ["send", "send"]


def test_resolving_is_refused_while_a_live_worker_holds_the_session(repo: sp.Repository) -> None:
    with repo.session("held") as s:
        s.runtime["effects"] = {"k": {"status": "intent", "at": "now", "attempt": 1}}
        s.save("calling")
        with pytest.raises(SafepointError, match="held by"):
            repo.resolve_effect("held", "k", "done")
    assert repo.summary("held").in_doubt == ["k"]


def test_mark_failed_and_retry(repo: sp.Repository) -> None:
    attempts: list[int] = []

    def flaky(s: sp.Session) -> str:
        def fetch() -> str:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("source down")
            return "page"

        return s.step("fetch", fetch)

    assert sp.run(flaky, "f", store=repo).status is sp.Status.FAILED
    with pytest.raises(SafepointError, match="already failed"):
        repo.mark_failed("f", "again")
    retried = repo.retry("f", by="ops")
    assert retried.status is sp.Status.RUNNING and retried.meta == {**retried.meta, "how": "retry", "by": "ops"}
    with pytest.raises(SafepointError, match="not failed"):
        repo.retry("f")
    assert "f" in [sid for sid in (v.decode() for _, v in repo.store.items("open/"))]  # work for a worker
    assert sp.run(flaky, "f", store=repo).value == "page"
    with repo.session("g") as s:
        s.save("spinning")
    failed = repo.mark_failed("g", "looping on the same page", by="ops")
    assert failed.status is sp.Status.FAILED and "looping on the same page" in repo.summary("g").error
    with pytest.raises(SafepointError, match="already completed"):
        repo.mark_failed("f", "too late")


def test_timeline_rows(repo: sp.Repository) -> None:
    def agent(s: sp.Session) -> str:
        s.step("think", lambda: s.report_usage(tokens=50) or "idea")
        return "done"

    sp.run(agent, "t", store=repo)
    repo.set_value("t", "data.note", "by hand")
    rows = repo.timeline("t")
    assert [r.checkpoint.step for r in rows] == ["think", "completed", "completed"]
    assert rows[0].tokens == 50 and rows[0].duration is None and rows[1].duration >= 0
    assert rows[2].audit == "set data.note (by cli)" and rows[0].audit is None
    assert codec.loads(codec.dumps([r.to_dict() for r in rows]))[2]["audit"] == "set data.note (by cli)"


def test_the_cli_resolves_fails_and_retries(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from safepoint.cli import app

    store = str(tmp_path / "s")
    repo = sp.open(store)
    fleet(repo)
    run = CliRunner().invoke
    bad = run(app, ["--store", store, "resolve", "doubt", "email:42", "done", "--result", "{nope"])
    assert bad.exit_code == 1 and "not valid JSON" in bad.output and repo.summary("doubt").in_doubt == ["email:42"]
    done = run(app, ["--store", store, "resolve", "doubt", "email:42", "done", "--result", '{"id": 1}'])
    assert done.exit_code == 0 and repo.load("doubt").runtime["effects"]["email:42"]["result"] == {"id": 1}
    assert repo.load("doubt").meta["by"] == "cli"
    assert run(app, ["--store", store, "fail", "waiting", "--reason", "abandoned"]).exit_code == 0
    assert repo.info("waiting").status is sp.Status.FAILED and "abandoned" in repo.summary("waiting").error
    assert run(app, ["--store", store, "retry", "waiting"]).exit_code == 0
    assert repo.info("waiting").status is sp.Status.RUNNING
    refused = run(app, ["--store", store, "retry", "done"])
    assert refused.exit_code == 1 and "not failed" in refused.output


def test_a_followed_index_is_a_copy_re_read_when_older_than_max_age(repo: sp.Repository) -> None:
    import time

    fleet(repo)
    mirror = repo.follow_index(max_age=0.3)
    assert len(repo.summaries()) == 6 and mirror.loaded
    with repo.session("done") as s:
        s.save("again")
    assert repo.info("done").seq == 3 and [s.info.seq for s in repo.summaries() if s.info.id == "done"] == [2]
    mirror.reload(["done"], session_segment)  # a change the reader made itself: seen at once
    assert [s.info.seq for s in repo.summaries() if s.info.id == "done"] == [3]
    with repo.session("done") as s:
        s.save("and again")
    time.sleep(0.35)
    repo.summaries()  # older than max_age: answered from the copy at once, and re-read behind the scenes
    deadline = time.monotonic() + 5
    while [s.info.seq for s in repo.summaries() if s.info.id == "done"] != [4]:
        assert time.monotonic() < deadline, "the copy was not re-read"
        time.sleep(0.05)
    with repo.session("new-one") as s:
        s.save("first")
    assert mirror.refresh() == ["new-one"]


def test_a_deleted_sessions_entry_is_removed_by_the_next_listing(repo: sp.Repository) -> None:
    from safepoint.core.history import Chain

    with repo.session("doomed") as s:
        s.save("one")
    chain = Chain(repo.store, "doomed")
    chain.delete_all()
    repo.store.delete(chain.info_key)  # what the adapters' delete does next
    assert repo.summaries() == []  # and the listing removes the orphaned entry
    assert repo.store.get(session_index.key("doomed")) is None
