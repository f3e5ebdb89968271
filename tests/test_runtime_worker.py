"""The worker: finds answered and crashed sessions, runs them N at a time, and stops cleanly on SIGTERM."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.core.history import session_segment
from safepoint.runtime.leases import read_lease

# Agents shared by this test process and the child processes (a crashed run, a `safepoint worker`).
# Every step execution is logged to the file named in the session's state, so "ran once" is counted outside.
AGENTS = textwrap.dedent(
    """
    import os, time
    import safepoint as sp

    def work(s, name, seconds=0.0):
        with open(s.state.data["log"], "a") as f:
            f.write("start " + name + "\\n")
        time.sleep(seconds)
        with open(s.state.data["log"], "a") as f:
            f.write("end " + name + "\\n")
        return name

    @sp.agent("flow")
    def flow(s):
        s.step("one", work, s, "one")
        if s.state.data.get("ask"):
            s.wait_for("go", prompt="Go on?", schema=bool)
        s.step("two", work, s, "two", float(os.environ.get("FLOW_PAUSE", "0")))
        if s.state.data.get("fail"):
            s.step("three", lambda: int("not a number"))
        return "flowed"

    @sp.agent("sleeper")
    def sleeper(s):
        return [s.step(f"step{i}", work, s, f"step{i}", 0.3) for i in range(1, 6)]
    """
)


@pytest.fixture
def env(tmp_path):
    path = tmp_path / "worker_agents.py"
    path.write_text(AGENTS)
    spec = importlib.util.spec_from_file_location(f"worker_agents_{tmp_path.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    repo = sp.open(tmp_path / "store")
    log = tmp_path / "steps.log"
    log.touch()
    return repo, module, log


def queue(repo: sp.Repository, session_id: str, agent: str, log: Path, **data) -> None:
    """Create a session for `agent` (running, nobody holding it) with the log path and options in its state."""
    with repo.session(session_id, agent=agent) as s:
        s.state.data.update(log=str(log), **data)
        s.save(step="queued")


def log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines()


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


CRASHING_CHILD = textwrap.dedent(
    """
    import sys
    import safepoint as sp
    import worker_agents
    sp.run(worker_agents.flow, sys.argv[2], store=sys.argv[1])
    """
)


def crash_mid_step(tmp_path: Path, repo: sp.Repository, session_id: str, log: Path) -> None:
    """Run `flow` in a child process and SIGKILL it in the middle of step "two"."""
    log.write_text("")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "FLOW_PAUSE": "60"}
    child = subprocess.Popen([sys.executable, "-c", CRASHING_CHILD, str(tmp_path / "store"), session_id], env=env)
    try:
        wait_until(lambda: "start two" in log_lines(log) or child.poll() is not None)
    finally:
        child.kill()
        child.wait()  # reaped: its pid is gone, as after a real crash
    assert log_lines(log) == ["start one", "end one", "start two"]
    head = repo.load(session_id)
    assert head.step == "one" and head.status == sp.Status.RUNNING
    lease, _ = read_lease(repo.store, session_segment(session_id))
    assert lease.expires_at > time.time() and not lease.live()  # unexpired, but its holder is dead


def test_candidates_are_answered_and_crashed_sessions_with_a_registered_agent(env, tmp_path):
    repo, agents, log = env
    queue(repo, "answered", "flow", log, ask=True)
    assert sp.run(agents.flow, "answered", store=repo).status == sp.Status.WAITING
    repo.send("answered", "go", True)
    queue(repo, "unanswered", "flow", log, ask=True)
    assert sp.run(agents.flow, "unanswered", store=repo).status == sp.Status.WAITING
    queue(repo, "completed", "flow", log)
    assert sp.run(agents.flow, "completed", store=repo).status == sp.Status.COMPLETED
    queue(repo, "failed", "flow", log, fail=True)
    assert sp.run(agents.flow, "failed", store=repo).status == sp.Status.FAILED
    queue(repo, "crashed", "flow", log)
    crash_mid_step(tmp_path, repo, "crashed", log)
    log.write_text("")
    queue(repo, "ghost", "unregistered-agent", log)  # crashed too, but nobody here can run it
    queue(repo, "held", "flow", log)

    worker = sp.Worker(repo, agents={"flow": agents.flow}, concurrency=2)
    with repo.session("held", agent="flow") as held:  # a live holder: not a candidate
        assert held.seq == 1
        assert sorted(worker.candidates()) == [("answered", "answered"), ("crashed", "crashed")]
        results = worker.run_once()
        assert sorted((r.session, r.status) for r in results) == [
            ("answered", sp.Status.COMPLETED),
            ("crashed", sp.Status.COMPLETED),
        ]
    for session_id in ("answered", "crashed"):
        head = repo.load(session_id)
        assert head.status == sp.Status.COMPLETED and head.runtime["result"] == "flowed"
    # Each resumed run replayed step one (done before) and ran only step two.
    assert sorted(log_lines(log)) == ["end two", "end two", "start two", "start two"]
    assert {r.replayed_steps for r in results} == {1}
    assert repo.load("unanswered").status == sp.Status.WAITING
    assert repo.load("failed").status == sp.Status.FAILED
    assert repo.load("ghost").step == "queued"
    assert worker.candidates() == [("held", "crashed")]  # released now: nobody holds it, it is running


DYING_HOLDER = textwrap.dedent(
    """
    import os, sys
    import safepoint as sp
    s = sp.open(sys.argv[1]).session("job", lease_ttl=3600)
    os._exit(0)  # dies holding a lease that would last an hour
    """
)


def test_a_stale_lease_of_a_dead_process_makes_a_running_session_a_candidate(env, tmp_path):
    repo, agents, log = env
    queue(repo, "job", "flow", log)
    subprocess.run([sys.executable, "-c", DYING_HOLDER, str(tmp_path / "store")], check=True, timeout=60)
    lease, _ = read_lease(repo.store, session_segment("job"))
    assert lease.expires_at > time.time() + 3000 and not lease.live()
    worker = sp.Worker(repo, agents={"flow": agents.flow})
    assert worker.candidates() == [("job", "crashed")]
    assert [r.status for r in worker.run_once()] == [sp.Status.COMPLETED]
    assert read_lease(repo.store, session_segment("job"))[0].token == lease.token + 1


def test_run_once_runs_candidates_two_at_a_time(env):
    repo, _, log = env
    active, peak, lock = [0], [0], threading.Lock()

    def slow(s):
        def work():
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            time.sleep(0.3)
            with lock:
                active[0] -= 1
            return s.id

        return s.step("work", work)

    for n in range(4):
        queue(repo, f"job{n}", "slow", log)
    worker = sp.Worker(repo, agents={"slow": slow}, concurrency=2)
    assert len(worker.candidates()) == 4
    results = worker.run_once()
    assert sorted((r.session, r.status, r.value) for r in results) == [
        (f"job{n}", sp.Status.COMPLETED, f"job{n}") for n in range(4)
    ]
    assert peak[0] == 2  # two ran at once, never more
    assert worker.candidates() == []


def test_sigterm_finishes_the_current_step_checkpoints_releases_and_exits_0(env, tmp_path):
    repo, agents, log = env
    queue(repo, "job", "sleeper", log)
    worker = subprocess.Popen(
        [sys.executable, "-m", "safepoint", "--store", str(tmp_path / "store"), "worker"]
        + ["--agents", "worker_agents", "--poll", "0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: "start step2" in log_lines(log) or worker.poll() is not None)
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, err
    assert "job" in out

    lines = log_lines(log)
    started = [line.split()[1] for line in lines if line.startswith("start")]
    ended = [line.split()[1] for line in lines if line.startswith("end")]
    assert started == ended  # the step running at SIGTERM was finished
    assert 2 <= len(started) < 5 and len(set(started)) == len(started)
    head = repo.load("job")
    assert head.status == sp.Status.RUNNING and head.step == started[-1]  # ... and checkpointed
    done = sorted(name for name, rec in head.runtime["steps"].items() if rec["status"] == "done")
    assert done == sorted(started)

    lease, _ = read_lease(repo.store, session_segment("job"))
    assert lease.expires_at == 0  # released, not merely left to expire
    with repo.session("job", wait=None) as s:  # another process opens it at once
        assert s.seq == head.seq

    # Another worker picks it up later and finishes it; no step runs twice.
    results = sp.Worker(repo, agents={"sleeper": agents.sleeper}).run_once()
    assert [(r.status, r.replayed_steps) for r in results] == [(sp.Status.COMPLETED, len(started))]
    assert repo.load("job").runtime["result"] == [f"step{i}" for i in range(1, 6)]
    final = [line.split()[1] for line in log_lines(log) if line.startswith("start")]
    assert final == [f"step{i}" for i in range(1, 6)]
