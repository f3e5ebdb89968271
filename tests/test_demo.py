"""`safepoint demo`: the research agent survives SIGKILL anywhere, sends once, waits for a human across processes.

The kill tests run the agent as real processes (`python -m safepoint demo ...`) and check against the
demo's own outbox file, which the test reads directly: the `outbox` table counts deliveries per idempotency
key, and `model_calls` has one row per model call any process made (the bill), killed or not.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.demo import agent as demo
from safepoint.errors import CheckpointNotFound

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEPOINT_", "OPENAI_"))}
STEPS = demo.step_names()
MODEL_STEPS = [name for name in STEPS if name not in ("approve", "send")]
SEND = STEPS.index("send") + 1  # step numbers as `--crash-at` counts them


def demo_command(store: Path, outbox: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "safepoint", "--store", str(store), "demo", "--outbox", str(outbox), *args]


def run_demo(store: Path, outbox: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    command = demo_command(store, outbox, *args)
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=store.parent)


def cli(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "safepoint", "--store", str(store), *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120, cwd=store.parent)


def deliveries(outbox: Path, key: str) -> int:
    with sqlite3.connect(outbox, timeout=60) as db:
        row = db.execute("SELECT deliveries FROM outbox WHERE key = ?", (key,)).fetchone()
    return row[0] if row else 0


def bill(outbox: Path, session: str, after: int = 0) -> list[tuple[int, str]]:
    """(row id, step) of the model calls made for `session` after row `after`."""
    if not outbox.exists():
        return []
    with sqlite3.connect(outbox, timeout=60) as db:
        query = "SELECT id, step FROM model_calls WHERE session = ? AND id > ? ORDER BY id"
        return list(db.execute(query, (session, after)))


def done_steps(store: Path, session: str) -> set[str]:
    """The steps the session's head records as done: none of them may run again."""
    with sp.open(store) as repo:
        if not repo.exists(session):
            return set()
        try:
            runtime = repo.load(session).runtime
        except CheckpointNotFound:
            return set()
    return {name for name, record in runtime.get("steps", {}).items() if record.get("status") == "done"}


def check_completed(store: Path, outbox: Path, session: str, kills: int) -> None:
    with sp.open(store) as repo:
        head = repo.load(session)
        assert head.status == sp.Status.COMPLETED, head.runtime.get("error")
        result = head.runtime["result"]
        assert result["sent"] is True
        with repo.open_artifact(result["report"]["ref"]) as handle:
            assert handle.read().startswith(b"# Heat pumps in Europe")
    assert done_steps(store, session) == set(MODEL_STEPS)
    assert deliveries(outbox, f"send-report:{session}") == 1  # the effect ran exactly once
    calls = [step for _, step in bill(outbox, session)]
    assert set(calls) == set(MODEL_STEPS)
    assert len(calls) <= len(MODEL_STEPS) + kills  # a kill cuts off at most the one step it lands in


def drive(
    store: Path,
    outbox: Path,
    session: str,
    args: list[str],
    *,
    crash_args: tuple[str, ...] = (),
    kill_after: float | None = None,
    tally: list[str] | None = None,
    enough: int = 0,
) -> int:
    """Run the demo on `session` until it completes; returns how many runs were SIGKILLed on the way.

    Before each run, the steps the store records as done are read; the bill rows that run adds must not name
    any of them (a step that completed before a kill never runs again). Each kill is added to `tally`; once
    it holds `enough`, the session is finished without `crash_args`.
    """
    kills, tally = 0, [] if tally is None else tally
    for _ in range(60):
        done, seen = done_steps(store, session), bill(outbox, session)
        last = seen[-1][0] if seen else 0
        crashing = () if enough and len(tally) >= enough else crash_args
        command = demo_command(store, outbox, "--session", session, *args, *crashing)
        if kill_after is None:
            proc = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=120, cwd=store.parent)
            code, err = proc.returncode, proc.stderr
        else:  # the parent kills it at a random moment once the agent runs: also inside safepoint's own commits
            child = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert child.stdout is not None
            child.stdout.readline()  # the agent's first line: its imports are done
            time.sleep(random.uniform(0, kill_after))
            child.send_signal(signal.SIGKILL)
            err = child.communicate(timeout=120)[1]
            code = child.returncode
        again = [step for _, step in bill(outbox, session, last) if step in done]
        assert not again, f"{session}: steps done before this run ran again: {again}"
        if code == -signal.SIGKILL:
            kills += 1
            tally.append(session)
        elif code == 0:
            check_completed(store, outbox, session, kills)
            return kills
        else:
            raise AssertionError(f"{session}: demo exited {code}: {err[-2000:]}")
    raise AssertionError(f"{session} did not complete in 60 runs")


def test_sigkill_at_random_points_at_least_50_times(tmp_path: Path) -> None:
    store, outbox = tmp_path / "store", tmp_path / "outbox.db"
    args, crash_args = ["--delay", "0", "--auto-approve"], ("--crash-rate", "0.15", "--fail-rate", "0.1")
    kills: list[str] = []  # one entry per SIGKILL, naming the session
    sessions = iter(f"k{n}" for n in range(1000))
    lock = threading.Lock()

    def worker() -> None:
        while len(kills) < 50:
            with lock:
                session = next(sessions)
            drive(store, outbox, session, args, crash_args=crash_args, tally=kills, enough=50)

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(worker) for _ in range(2)]:
            future.result()
    assert len(kills) >= 50
    with sp.open(store) as repo:  # the kills left nothing a check of the whole store would flag
        assert repo.fsck().ok


def test_sigkill_from_outside_at_random_moments(tmp_path: Path) -> None:
    """Killed by another process at a random moment: mid-commit, mid-lease, mid-send, anywhere."""
    store, outbox = tmp_path / "store", tmp_path / "outbox.db"
    random.seed(7)
    args = ["--delay", "0.01", "--auto-approve"]
    kills = sum(drive(store, outbox, f"x{i}", args, kill_after=1.0) for i in range(3))
    assert kills >= 3
    with sp.open(store) as repo:
        assert repo.fsck().ok


def test_crash_mid_send_is_reconciled_not_resent(tmp_path: Path) -> None:
    store, outbox = tmp_path / "store", tmp_path / "outbox.db"
    crashed = run_demo(store, outbox, "--session", "s", "--delay", "0", "--auto-approve", "--crash-at", str(SEND))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "crash: SIGKILL after the outbox took the report" in crashed.stdout
    assert deliveries(outbox, "send-report:s") == 1
    with sp.open(store) as repo:
        assert repo.load("s").runtime["effects"]["send-report:s"]["status"] == "intent"  # in doubt
    resumed = run_demo(store, outbox, "--session", "s", "--delay", "0")
    assert resumed.returncode == 0, resumed.stderr
    assert "was in doubt" in resumed.stdout and "not sent again" in resumed.stdout
    assert "1 delivery of send-report:s" in resumed.stdout
    with sp.open(store) as repo:
        assert repo.load("s").runtime["effects"]["send-report:s"]["resolved_in_doubt"] is True
    check_completed(store, outbox, "s", kills=1)


def test_wait_exit_send_resume_across_processes(tmp_path: Path) -> None:
    store, outbox = tmp_path / "store", tmp_path / "outbox.db"
    waiting = run_demo(store, outbox, "--session", "w", "--delay", "0", "--fail-rate", "0")
    assert waiting.returncode == sp.WAITING_EXIT_CODE == 75, waiting.stderr
    assert f"safepoint --store {store} send w approve_outline true" in waiting.stdout
    with sp.open(store) as repo:
        before = len(repo.history("w"))
        assert repo.load("w").status == sp.Status.WAITING
    again = run_demo(store, outbox, "--session", "w", "--delay", "0")  # still waiting: says so, changes nothing
    assert again.returncode == 75 and "send w approve_outline" in again.stdout

    refused = cli(store, "send", "w", "approve_outline", "maybe")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith("error: ") and "boolean" in refused.stderr
    with sp.open(store) as repo:
        assert len(repo.history("w")) == before  # nothing changed
        assert "approve_outline" in repo.pending_inputs("w")

    assert cli(store, "send", "w", "approve_outline", "true").returncode == 0
    resumed = cli(store, "resume", "w")
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout
    check_completed(store, outbox, "w", kills=0)
    summary = run_demo(store, outbox, "--session", "w", "--delay", "0")  # a finished session: the summary again
    assert summary.returncode == 0 and "1 delivery of send-report:w" in summary.stdout
    assert deliveries(outbox, "send-report:w") == 1


def test_the_tour_crashes_resumes_approves_and_sums_up(tmp_path: Path) -> None:
    store, outbox = tmp_path / "store", tmp_path / "outbox.db"
    done = run_demo(store, outbox, "--delay", "0", "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    expected = ["crash: SIGKILL in the middle of a step", "was killed (SIGKILL)", "resumed at seq"]
    expected += ["tokens not spent again", "exited with 75", "approve_outline true", "completed at seq"]
    for fragment in expected:
        assert fragment in out, fragment
    session = out.split("in session ")[1].split()[0]
    assert f"1 delivery of send-report:{session}" in out
    check_completed(store, outbox, session, kills=1)


def test_a_rejected_outline_writes_and_sends_nothing(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    repo = sp.open("memory://rejected")
    options = demo.Options(delay=0, outbox=outbox, display=demo.Display(len(STEPS), quiet=True))
    assert demo.run_session(repo, "memory://rejected", "r", options) == sp.WAITING_EXIT_CODE
    repo.send("r", demo.APPROVAL, False)
    assert demo.run_session(repo, "memory://rejected", "r", options) == 0
    result = repo.load("r").runtime["result"]
    assert result == {"sent": False, "reason": "the outline was rejected; no report was written"}
    assert deliveries(outbox, "send-report:r") == 0 and "write" not in done_steps_of(repo, "r")


def done_steps_of(repo: sp.Repository, session: str) -> set[str]:
    return {n for n, r in repo.load(session).runtime["steps"].items() if r["status"] == "done"}


def test_offline_model_is_deterministic_and_the_state_tells_the_story(tmp_path: Path) -> None:
    reports = []
    for name in ("a", "b"):
        repo = sp.open(f"memory://{name}")
        options = demo.Options(delay=0, outbox=tmp_path / f"{name}.db", display=demo.Display(len(STEPS), quiet=True))
        assert demo.run_session(repo, f"memory://{name}", name, options, auto_approve=True) == 0
        head = repo.load(name)
        reports.append(head.runtime["result"]["report"]["ref"])
        assert head.state["mission"]["done"] == STEPS and head.state["mission"]["remaining"] == []
        assert len(head.state["data"]["notes"]) >= 2 * len(demo.corpus())
        assert head.runtime["config"]["model"] == "offline-fake-model"
        assert head.runtime["usage"]["tokens"] > 5000 and head.runtime["usage"]["cost"] > 0
    assert reports[0] == reports[1]


def test_the_corpus_ships_with_the_package() -> None:
    files = demo.corpus()
    assert 6 <= len(files) <= 10
    assert all(1000 <= len(text.encode()) <= 3000 for _, text in files)


def test_tour_needs_a_store_on_disk() -> None:
    with pytest.raises(sp.SafepointError, match="needs a store on disk"):
        demo.tour(sp.open("memory://tour"), "memory://tour", demo.Options())


class _FakeEndpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat completions endpoint: a 429 with Retry-After first, then bullet answers."""

    calls: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls.append({"body": body, "auth": self.headers.get("Authorization")})
        if len(type(self).calls) == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        answer = {"choices": [{"message": {"content": "- one point\n- another point"}}], "usage": {"total_tokens": 42}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_an_openai_compatible_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeEndpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SAFEPOINT_DEMO_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
        monkeypatch.setenv("SAFEPOINT_DEMO_MODEL", "tiny-model")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        repo = sp.open("memory://endpoint")
        options = demo.Options(outbox=tmp_path / "o.db", display=demo.Display(len(STEPS), quiet=True))
        assert demo.run_session(repo, "memory://endpoint", "e", options, auto_approve=True) == 0
    finally:
        server.shutdown()
    calls = _FakeEndpoint.calls
    assert len(calls) == len(MODEL_STEPS) + 1  # one 429, retried
    assert calls[0]["body"]["model"] == "tiny-model" and calls[0]["auth"] == "Bearer sk-test"
    head = repo.load("e")
    assert head.runtime["steps"]["plan"]["attempts"] == 2
    assert head.runtime["usage"]["tokens"] == 42 * len(MODEL_STEPS)
    assert head.state["data"]["config"]["model"]["kind"] == "openai"
    assert "sk-test" not in json.dumps(head.state)  # the key is never stored
