"""The dashboard over HTTP, on the directory, SQLite and PostgreSQL stores: pages, actions audited in the history,
auth, CSRF, escaping, read-only mode and the change feed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_fixtures import HOSTILE, csrf_of, fleet, store_url
from services import require_module
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app as cli
from safepoint.core import session_index
from safepoint.core.stuck import StuckPolicy
from safepoint.errors import SafepointError

require_module("starlette", "dashboard")
from starlette.testclient import TestClient  # noqa: E402

from safepoint.dashboard import Settings, create_app  # noqa: E402
from safepoint.dashboard.live import ChangeFeed  # noqa: E402

LOOPBACK = "http://127.0.0.1"


@pytest.fixture(params=["file", "sqlite", "postgres"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sp.Repository]:
    for url in store_url(request.param, tmp_path):
        with sp.open(url) as opened:
            fleet(opened)
            yield opened


def client(repo: sp.Repository, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(**settings), repo=repo), base_url=LOOPBACK)  # type: ignore[arg-type]


def post(c: TestClient, url: str, page: str, **form: str):  # type: ignore[no-untyped-def]
    """POST a form of the page at `page`, with that page's CSRF token."""
    token = csrf_of(c.get(page).text)
    return c.post(url, data={"csrf": token, **form}, follow_redirects=False)


def test_overview_counts_and_the_attention_list(repo: sp.Repository) -> None:
    page = client(repo).get("/")
    assert page.status_code == 200
    attention = page.text[page.text.index('id="attention"') :]
    waiting = attention[attention.index('data-group="waiting"') : attention.index('data-group="failed"')]
    assert 'data-session="waiting"' in waiting and 'data-session="asking"' in waiting
    failed = attention[attention.index('data-group="failed"') :]
    assert 'data-session="broken"' in failed and "the source is gone" in failed
    doubt = attention[attention.index('data-group="in_doubt"') : attention.index('data-group="waiting"')]
    assert 'data-session="doubt"' in doubt and "email:42" in doubt
    overview = repo.overview()
    assert overview.sessions == 6 and overview.by_status["waiting"] == 2 and overview.by_agent["writer"] == 3


def test_list_filters_sorts_and_paginates(repo: sp.Repository) -> None:
    c = client(repo, page_size=2)
    waiting = c.get("/sessions?status=waiting").text
    assert 'data-session="waiting"' in waiting and 'data-session="asking"' in waiting
    assert 'data-session="done"' not in waiting and "2 sessions" in waiting
    by_agent = c.get("/sessions?agent=planner").text
    assert 'data-session="asking"' in by_agent and 'data-session="done"' in by_agent
    assert 'data-session="waiting"' not in by_agent
    assert 'data-session="waiting"' in c.get("/sessions?tag=nightly").text
    assert 'data-session="broken"' in c.get("/sessions?q=SOURCE+IS+GONE").text  # text search, any case
    first, second = c.get("/sessions").text, c.get("/sessions?page=2").text
    order = [s.info.id for s in repo.summaries()]  # newest activity first
    assert first.index(f'data-session="{order[0]}"') < first.index(f'data-session="{order[1]}"')
    assert f'data-session="{order[2]}"' in second and f'data-session="{order[0]}"' not in second
    assert 'rel="next"' in first and "6 sessions" in first


def test_session_page_shows_timeline_state_lease_and_diff(repo: sp.Repository) -> None:
    c = client(repo)
    page = c.get("/sessions/waiting").text
    for expected in ("draft", "revise", "waiting for approve", "Publish the report?", "write the report", "lease"):
        assert expected in page
    diff = c.get("/sessions/waiting/diff?a=1&b=2", headers={"hx-request": "true"}).text
    assert "+ state.data.draft: &#34;first version&#34;" in diff or "state.data.draft" in diff
    assert c.get("/sessions/nope").status_code == 404


def test_answer_refused_with_the_reason_then_accepted_and_audited(repo: sp.Repository) -> None:
    c = client(repo)
    before = len(repo.history("asking"))
    url, page = "/sessions/asking/answer", "/sessions/asking"
    bad = post(c, url, page, name="trip", **{"field.city": "Oslo", "field.days": "0"})
    assert bad.status_code == 400 and "Refused" in bad.text and "minimum" in bad.text
    assert len(repo.history("asking")) == before and repo.pending_inputs("asking")  # nothing changed
    good = post(c, url, page, name="trip", **{"field.city": "Oslo", "field.days": "3"})
    assert good.status_code == 303 and good.headers["location"] == "/sessions/asking"
    head = repo.load("asking")
    assert head.runtime["inputs"]["trip"]["answer"] == {"city": "Oslo", "days": 3}
    assert head.meta["by"] == "dashboard" and not repo.pending_inputs("asking")
    assert "answered trip (by dashboard)" in c.get("/sessions/asking").text


def test_resolve_an_effect_in_doubt(repo: sp.Repository) -> None:
    c = client(repo)
    assert "email:42" in c.get("/sessions/doubt").text
    done = post(c, "/sessions/doubt/resolve", "/sessions/doubt", key="email:42", outcome="done", result='{"id": "m-1"}')
    assert done.status_code == 303
    effect = repo.load("doubt").runtime["effects"]["email:42"]
    assert effect["status"] == "done" and effect["result"] == {"id": "m-1"} and repo.summary("doubt").in_doubt == []
    again = post(c, "/sessions/doubt/resolve", "/sessions/doubt", key="email:42", outcome="retry")
    assert again.status_code == 400 and "not in doubt" in again.text  # settled already: refused
    assert "resolve effect email:42: done (by dashboard)" in c.get("/sessions/doubt").text


def test_edit_fork_fail_and_retry_are_audited(repo: sp.Repository) -> None:
    c = client(repo)
    seq = repo.info("waiting").seq
    stale = post(c, "/sessions/waiting/set", "/sessions/waiting", path="mission.goal", value='"x"', seq=str(seq - 1))
    assert stale.status_code == 400 and "moved" in stale.text and repo.info("waiting").seq == seq
    edit = post(c, "/sessions/waiting/set", "/sessions/waiting", path="mission.goal", value='"shorter"', seq=str(seq))
    assert edit.status_code == 303 and repo.load("waiting").state["mission"]["goal"] == "shorter"
    assert repo.load("waiting").meta == {**repo.load("waiting").meta, "manual_edit": True, "by": "dashboard"}
    fork = post(c, "/sessions/waiting/fork", "/sessions/waiting", at="1", new_id="waiting-copy")
    assert fork.status_code == 303 and fork.headers["location"] == "/sessions/waiting-copy"
    assert repo.info("waiting-copy").parent == {"session": "waiting", "seq": 1}
    assert "waiting-copy" in c.get("/sessions/waiting").text  # the parent page links its child
    failed = post(c, "/sessions/doubt/fail", "/sessions/doubt", reason="mail server is down for good")
    assert failed.status_code == 303 and repo.info("doubt").status is sp.Status.FAILED
    assert "mail server is down for good" in repo.summary("doubt").error
    retried = post(c, "/sessions/broken/retry", "/sessions/broken")
    assert retried.status_code == 303 and repo.info("broken").status is sp.Status.RUNNING
    assert repo.load("broken").meta["how"] == "retry" and "error" not in repo.load("broken").runtime


def test_hostile_values_render_as_text(repo: sp.Repository) -> None:
    c = client(repo)
    for path in ("/", "/sessions", "/sessions/hostile"):
        html = c.get(path).text
        assert HOSTILE not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(" in c.get("/sessions/hostile").text


def test_posts_without_a_valid_csrf_token_are_refused(repo: sp.Repository) -> None:
    c = client(repo)
    c.get("/sessions/waiting")  # the browser has its CSRF cookie now
    before = len(repo.history("waiting"))
    for form in ({}, {"csrf": "forged"}):
        refused = c.post("/sessions/waiting/answer", data={"name": "approve", "value": "true", **form})
        assert refused.status_code == 403 and "CSRF" in refused.text
    other = TestClient(create_app(Settings(), repo=repo), base_url=LOOPBACK)  # another browser's token
    other_token = csrf_of(other.get("/sessions/waiting").text)
    assert c.post("/sessions/waiting/answer", data={"csrf": other_token, "name": "approve"}).status_code == 403
    assert len(repo.history("waiting")) == before and repo.pending_inputs("waiting")


def test_read_only_mode_has_no_action_routes(repo: sp.Repository) -> None:
    c = client(repo, read_only=True)
    page = c.get("/sessions/waiting").text
    assert 'method="post"' not in page and "read-only" in page
    token = csrf_of(client(repo).get("/sessions/waiting").text)  # even a valid token finds no route
    for action in ("answer", "resolve", "set", "fork", "fail", "retry"):
        assert c.post(f"/sessions/waiting/{action}", data={"csrf": token}).status_code in (403, 404, 405)
    app = create_app(Settings(read_only=True), repo=repo)
    paths = {getattr(route, "path", "") for route in app.routes}
    assert not any(path.endswith(("/answer", "/resolve", "/set", "/fork", "/fail", "/retry")) for path in paths)


def test_auth_no_token_wrong_token_right_token(repo: sp.Repository) -> None:
    c = client(repo, token="s3cret-token")
    for path in ("/", "/sessions", "/sessions/waiting", "/events"):
        denied = c.get(path)
        assert denied.status_code == 401 and "waiting" not in denied.text and "writer" not in denied.text
    assert c.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    login_page = c.get("/login")
    assert login_page.status_code == 200
    wrong = c.post("/login", data={"csrf": csrf_of(login_page.text), "token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401 and "sp_auth=" not in wrong.headers.get("set-cookie", "")
    right = c.post("/login", data={"csrf": csrf_of(login_page.text), "token": "s3cret-token"}, follow_redirects=False)
    assert right.status_code == 303
    cookie = next(v for k, v in right.headers.multi_items() if k == "set-cookie" and v.startswith("sp_auth="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret-token" not in cookie
    assert c.get("/sessions/waiting").status_code == 200  # the cookie now opens every page


def test_a_non_loopback_bind_refuses_to_start_without_a_token(
    repo: sp.Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(SafepointError, match="without a token"):
        create_app(Settings(host="0.0.0.0"), repo=repo)
    create_app(Settings(host="0.0.0.0", token="t"), repo=repo)  # with one it starts
    monkeypatch.delenv("SAFEPOINT_DASHBOARD_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["--store", repo.url, "dashboard", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "without a token" in result.output
    # Without a token, requests must name a loopback host (no DNS rebinding onto 127.0.0.1).
    assert TestClient(create_app(Settings(), repo=repo), base_url="http://evil.example").get("/").status_code == 400


def test_the_change_feed_reports_a_commit_within_a_second(repo: sp.Repository) -> None:
    feed = ChangeFeed(repo.store, repo.follow_index(max_age=0.2), poll=0.2)

    async def scenario() -> tuple[list[str], float]:
        queue = feed.subscribe()
        await asyncio.sleep(0.5)  # the feed takes its starting point
        started = time.monotonic()
        with repo.session("done") as s:
            s.save("one more")
        ids = await asyncio.wait_for(queue.get(), timeout=5)
        return ids, time.monotonic() - started

    try:
        ids, took = asyncio.run(scenario())
    finally:
        feed.close()
    assert ids == ["done"] and took < 1.5


def test_stuck_sessions_follow_the_dashboards_policy(repo: sp.Repository) -> None:
    with repo.session("slow", agent="writer") as s:
        s.save("one")
        time.sleep(0.3)
        s.save("two")
        s.runtime["hold"] = True  # still open: it is `running`
        time.sleep(0.6)
        strict = client(repo, policy=StuckPolicy(factor=1, floor=0.2)).get("/").text
        lenient = client(repo).get("/").text

    def stuck_group(html: str) -> str:
        return html[html.index('data-group="stuck"') : html.index('data-group="in_doubt"')]

    assert 'data-session="slow"' in stuck_group(strict) and "no checkpoint for" in stuck_group(strict)
    assert 'data-session="slow"' not in stuck_group(lenient)


def test_artifacts_download_as_attachments_and_preview_as_text(repo: sp.Repository) -> None:
    with repo.session("files") as s:
        s.put_artifact("notes.html", HOSTILE.encode(), "text/html")
        s.save("wrote")
        s.state.data["later"] = True
        s.save("more")
    c = client(repo)
    download = c.get("/sessions/files/artifacts/0")
    assert download.content == HOSTILE.encode() and download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == 'attachment; filename="notes.html"'
    preview = c.get("/sessions/files/artifacts/0?preview=1", headers={"hx-request": "true"}).text
    assert "&lt;script&gt;" in preview and HOSTILE not in preview
    assert c.get("/sessions/files/artifacts/7").status_code == 404
    at_one = c.get("/sessions/files?seq=1").text
    assert "State at seq 1" in at_one and "later" not in at_one[at_one.index('id="state"') :]


def test_the_list_shows_the_true_head_of_an_entry_left_a_commit_behind(tmp_path: Path) -> None:
    with sp.open(str(tmp_path / "store")) as repo:
        with repo.session("killed", agent="writer") as s:
            s.save("first-step")
            s.save("second-step")
            behind = repo.store.get(session_index.key("killed"))
            s.save("third-step")
        assert behind is not None
        repo.store.put(session_index.key("killed"), behind)  # its writer killed between commit key and entry
        c = client(repo, poll=3600, check_every=0.2)  # never re-read for its age: only the check can heal it
        deadline = time.monotonic() + 10
        while "third-step" not in (page := c.get("/sessions").text) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "third-step" in page and "second-step" not in page
        status = repo.info("killed").status.value  # (the chain's)
        assert "third-step" in c.get(f"/sessions?status={status}").text
        assert [(s.info.seq, s.info.head and s.info.head.step) for s in repo.summaries()] == [(3, "third-step")]
