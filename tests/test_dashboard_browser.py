"""The dashboard in a real browser (Debian's chromium, driven by playwright), against a real `safepoint dashboard`
server and real `safepoint worker` processes, on the directory and PostgreSQL stores.

Scenarios: filter the list to waiting sessions, open one, answer its question through the form and watch a
worker resume it to completed without a reload; diff two checkpoints; resolve an effect in doubt; a session
whose worker is SIGSTOPped shows up as stuck in the attention list. No page logs a console error.

`SAFEPOINT_DASHBOARD_SCREENSHOT=docs/img/dashboard-session.png` also saves the session page's screenshot there
(the picture in the README).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dashboard_fixtures import fleet, store_url
from services import require_module

import safepoint as sp

require_module("starlette", "dashboard")
sync_api = require_module("playwright.sync_api", "test")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REPO_ROOT = Path(__file__).resolve().parent.parent

AGENTS = """
import safepoint as sp

REPORT = "# Weekly report\\n\\nSignups rose 12% after the pricing change; churn is flat.\\n"


def write_draft(s):
    s.report_usage(tokens=1840, cost=0.0092)
    return REPORT


@sp.agent("approval")
def approval(s):
    s.state.mission.goal = "Write and publish the weekly report"
    s.state.mission.remaining = ["draft", "approval", "publish"]
    draft = s.step("draft", write_draft, s)
    s.put_artifact("report.md", draft.encode(), "text/markdown")
    s.state.mission.done.append("draft")
    s.save("drafted")
    approved = s.wait_for("approve", prompt="Publish the report to the team wiki?", schema=bool)
    s.state.data["published"] = s.step("publish", lambda: approved)
    return "published" if approved else "shelved"
"""

SPINNER = """
import time
import safepoint as sp

@sp.agent("spinner")
def spinner(s):
    for tick in range(100000):
        s.state.data["tick"] = tick
        s.save(f"tick {tick}")
        time.sleep(0.1)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    """A `safepoint` process; its output goes to `<cwd>/<command>-<n>.log` (shown when a test fails)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = cwd / f"{args[2]}-{len(list(cwd.glob('*.log')))}.log"
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "safepoint", *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", params=["file", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A store with the test fleet and an `approval` session waiting, a dashboard server and a worker over it."""
    if not Path(CHROMIUM).exists():
        message = "Debian's chromium is not installed (apt-get install chromium; scripts/test.sh does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: a missing browser fails the run)", pytrace=False)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp(f"browser-{request.param}")
    (tmp / "dash_agents.py").write_text(textwrap.dedent(AGENTS))
    (tmp / "dash_spinner.py").write_text(textwrap.dedent(SPINNER))
    sys.path.insert(0, str(tmp))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for url in store_url(request.param, tmp):
            repo = sp.open(url)
            fleet(repo)
            import dash_agents  # the agent module the worker imports, here too to start the session

            assert sp.run(dash_agents.approval, "approval", store=repo).status is sp.Status.WAITING
            port = _free_port()
            server = _spawn(["--store", url, "dashboard", "--port", str(port), "--stuck-floor", "1",
                             "--stuck-factor", "3", "--poll", "0.2"], tmp)  # fmt: skip
            worker = _spawn(["--store", url, "worker", "--agents", "dash_agents", "--poll", "0.2"], tmp)
            procs += [server, worker]
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(base + "/", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                logs = "".join(log.read_text() for log in tmp.glob("*.log"))
                raise AssertionError(f"the dashboard did not start: {logs}")
            with sync_api.sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                try:
                    yield {"repo": repo, "url": url, "base": base, "browser": browser, "tmp": tmp, "procs": procs}
                finally:
                    browser.close()
            repo.close()
    finally:
        for proc in procs:
            _stop(proc)
        sys.path.remove(str(tmp))
        sys.modules.pop("dash_agents", None)


@pytest.fixture
def page(world: dict) -> Iterator[object]:
    """A fresh browser page that records console errors and uncaught exceptions; none may occur."""
    context = world["browser"].new_context(viewport={"width": 1360, "height": 1000})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert errors == [], f"console errors: {errors}"


def test_filter_open_answer_and_watch_the_worker_resume_it(world: dict, page) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    page.goto(world["base"] + "/sessions")
    page.select_option("select[name=status]", "waiting")
    page.click("form.filters button")
    rows = page.locator("table.sessions tr.row")
    expect(rows).to_have_count(3)  # approval, waiting, asking
    expect(page.locator('tr.row[data-session="done"]')).to_have_count(0)
    page.click('tr.row[data-session="approval"] a')
    expect(page.locator("#questions")).to_contain_text("Publish the report to the team wiki?")
    expect(page.locator("#live-dot.on")).to_have_count(1)  # the event stream is connected
    page.click("text=preview")  # the artifact's text preview, loaded into the page
    expect(page.locator("#preview pre")).to_contain_text("Signups rose 12%")
    shot = os.environ.get("SAFEPOINT_DASHBOARD_SCREENSHOT")
    if shot and world["url"].startswith("/"):
        page.screenshot(path=str(REPO_ROOT / shot), full_page=True)
    page.select_option('.question[data-name="approve"] select[name=value]', "true")
    page.click('.question[data-name="approve"] button')
    expect(page.locator("#timeline")).to_contain_text("answered approve (by dashboard)")
    page.evaluate("window.__no_reload = true")  # gone if the page were loaded again
    # The worker picks the answered session up, replays the draft, runs publish and completes: pushed live.
    expect(page.locator("#head h2")).to_contain_text("completed", timeout=20_000)
    lag = time.time() - world["repo"].load("approval").created_at.timestamp()
    assert lag < 3.0, f"the completion showed {lag:.2f} s after its commit"  # ~1 s when the machine is idle
    expect(page.locator("#timeline")).to_contain_text("publish")
    assert page.evaluate("window.__no_reload") is True
    assert world["repo"].load("approval").runtime["result"] == "published"


def test_diff_two_checkpoints(world: dict, page) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    page.goto(world["base"] + "/sessions/waiting")
    page.select_option("#diff-card select[name=a]", "1")
    page.select_option("#diff-card select[name=b]", "2")
    page.click("#diff-card button")
    expect(page.locator("#diff pre.diff")).to_contain_text("state.data.draft")
    expect(page.locator("#diff")).to_contain_text("from seq 1 to seq 2")


def test_a_live_refresh_never_replaces_what_a_person_typed(world: dict, page) -> None:  # type: ignore[no-untyped-def]
    """A refresh asked for before the person typed, answered after: the typed text stays, the swap waits."""
    held: list = []
    page.route("**/sessions/waiting/live", lambda route: held.append(route))  # held until released
    page.goto(world["base"] + "/sessions/waiting")
    page.evaluate(
        "window.__answered = 0;"
        "document.body.addEventListener('htmx:afterRequest', () => { window.__answered += 1; });"
        "htmx.trigger(document.body, 'sp:change');"
    )
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the live region asked for no refresh"
    reason = page.locator("#fail-form input[name=reason]")
    reason.fill("the customer withdrew")
    page.locator("#head h2").click()  # the field loses the focus; what it holds is still unsent
    answered = len(held)
    for route in held:
        route.continue_()
    page.wait_for_function(f"window.__answered >= {answered}")
    assert reason.input_value() == "the customer withdrew"
    assert world["repo"].info("waiting").status is sp.Status.WAITING


def test_resolve_an_effect_in_doubt(world: dict, page) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    page.goto(world["base"] + "/")
    expect(page.locator('[data-group="in_doubt"] tr.row[data-session="doubt"]')).to_have_count(1)
    page.click('[data-group="in_doubt"] tr.row[data-session="doubt"] a')
    doubt = page.locator('.doubt[data-key="email:42"]')
    doubt.locator("input[name=result]").fill('{"message_id": "m-42"}')
    doubt.locator(".resolve-done button").click()
    expect(page.locator("#doubts")).to_have_count(0)
    expect(page.locator("#timeline")).to_contain_text("resolve effect email:42: done (by dashboard)")
    effect = world["repo"].load("doubt").runtime["effects"]["email:42"]
    assert effect == {**effect, "status": "done", "result": {"message_id": "m-42"}}


def test_a_sigstopped_worker_makes_its_session_stuck(world: dict, page) -> None:  # type: ignore[no-untyped-def]
    expect = sync_api.expect
    repo = world["repo"]
    with repo.session("spin", agent="spinner", lease=False) as s:
        s.save("queued")  # running and never leased: a worker takes it
    spinner = _spawn(["--store", world["url"], "worker", "--agents", "dash_spinner", "--poll", "0.2"], world["tmp"])
    world["procs"].append(spinner)
    page.goto(world["base"] + "/")
    stuck = page.locator('[data-group="stuck"] tr.row[data-session="spin"]')
    deadline = time.monotonic() + 20
    while repo.info("spin").seq < 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert repo.info("spin").seq >= 8, "the spinner worker did not start ticking"
    expect(stuck).to_have_count(0)  # ticking every 0.1 s: not stuck
    spinner.send_signal(signal.SIGSTOP)
    try:
        # Idle past 3x its own 0.1 s pace and the 1 s floor: the overview (refreshed live) lists it as stuck.
        expect(stuck).to_have_count(1, timeout=15_000)
        # Stopped, it neither checkpoints nor renews its lease: whichever the core sees first is the reason.
        expect(stuck.locator(".why")).to_contain_text(re.compile(r"no checkpoint for|lease holder \S+ is gone"))
    finally:
        spinner.send_signal(signal.SIGCONT)
        _stop(spinner)
