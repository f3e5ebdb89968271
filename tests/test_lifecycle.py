"""A session's whole life: started by `run`, crashed before its first checkpoint, slept, timed out, answered
or not, cancelled, deleted; each through the API, the CLI and a worker started afresh (a restart)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app

runner = CliRunner()


@sp.agent("lc-sleeper", schema=dict)
def sleeper(s: sp.Session) -> str:
    s.state["before"] = True
    s.sleep(1.0)
    return "woke"


@sp.agent("lc-asker", schema=dict)
def asker(s: sp.Session) -> str:
    answer = s.wait_for("approve", prompt="Ship it?", timeout=s.input or None, default="no answer")
    return f"answer: {answer}"


@sp.agent("lc-plain", schema=dict)
def plain(s: sp.Session) -> str:
    s.state["ran"] = True
    return "done"


@pytest.fixture
def repo(tmp_path: Path) -> sp.Repository:
    return sp.open(str(tmp_path / "store"))


def fresh_worker(repo: sp.Repository) -> sp.Worker:
    """A worker as after a restart: a new Repository on the same store, nothing carried over in memory."""
    return sp.Worker(sp.open(repo.url), poll_interval=0.1)


def test_a_session_crashed_before_its_first_checkpoint_is_run_by_a_worker_and_by_resume(
    repo: sp.Repository, tmp_path: Path
) -> None:
    for session_id in ("c1", "c2"):
        child = f"""
            import os, safepoint as sp
            repo = sp.open({repo.url!r})
            s = repo.session({session_id!r}, agent="lc-plain", schema=dict, lease_ttl=1)
            os._exit(9)  # dies holding the lease, before any checkpoint
        """
        assert subprocess.run([sys.executable, "-c", textwrap.dedent(child)]).returncode == 9
    assert repo.info("c1").head is None
    time.sleep(1.2)  # the dead process's lease expires
    results = fresh_worker(repo).run_once()
    assert {(r.session, r.status) for r in results} >= {("c1", sp.Status.COMPLETED)}
    if repo.info("c2").head is None:  # the worker may have done both; else resume does the other
        done = runner.invoke(app, ["--store", repo.url, "resume", "c2", "--json"])
        assert done.exit_code == 0, done.output
    assert repo.load("c2").runtime["result"] == "done"


def test_a_session_crashed_before_its_first_checkpoint_is_run_by_safepoint_run(repo: sp.Repository) -> None:
    child = f"""
        import os, safepoint as sp
        repo = sp.open({repo.url!r})
        s = repo.session("c3", agent="lc-plain", schema=dict, lease_ttl=1)
        os._exit(9)  # dies holding the lease, before any checkpoint
    """
    assert subprocess.run([sys.executable, "-c", textwrap.dedent(child)]).returncode == 9
    assert repo.info("c3").head is None
    time.sleep(1.2)  # the dead process's lease expires
    done = runner.invoke(app, ["--store", repo.url, "run", "lc-plain", "--session", "c3", "--json"])
    assert done.exit_code == 0, done.output
    assert (json.loads(done.output)["status"], repo.load("c3").runtime["result"]) == ("completed", "done")


def test_a_timer_wakes_through_a_worker_started_after_the_sleep(repo: sp.Repository) -> None:
    first = sp.run(sleeper, "t1", store=repo)
    assert first.status == sp.Status.WAITING
    head = repo.info("t1").head
    assert head is not None and head.meta["wake_at"]
    assert fresh_worker(repo).run_once() == []  # not due yet
    time.sleep(1.1)
    results = fresh_worker(repo).run_once()
    assert [(r.session, r.status, r.value) for r in results] == [("t1", sp.Status.COMPLETED, "woke")]


def test_wait_for_times_out_through_a_worker_and_returns_the_default(repo: sp.Repository) -> None:
    assert sp.run(asker, "q1", store=repo, input=1.0).status == sp.Status.WAITING
    assert fresh_worker(repo).run_once() == []
    time.sleep(1.1)
    [result] = fresh_worker(repo).run_once()
    assert (result.status, result.value) == (sp.Status.COMPLETED, "answer: no answer")


def test_an_answer_before_the_deadline_wins(repo: sp.Repository) -> None:
    sp.run(asker, "q2", store=repo, input=30.0)
    repo.send("q2", "approve", "yes")
    [result] = fresh_worker(repo).run_once()
    assert result.value == "answer: yes"


def test_resuming_an_unanswered_session_writes_nothing(repo: sp.Repository) -> None:
    sp.run(asker, "q3", store=repo)
    seqs = [c.seq for c in repo.history("q3")]
    for _ in range(3):
        again = runner.invoke(app, ["--store", repo.url, "resume", "q3"])
        assert again.exit_code == sp.WAITING_EXIT_CODE, again.output
    assert [c.seq for c in repo.history("q3")] == seqs


def test_cancel_stops_a_session_for_good(repo: sp.Repository) -> None:
    sp.run(asker, "q4", store=repo)
    cancelled = runner.invoke(app, ["--store", repo.url, "cancel", "q4", "--reason", "not needed", "--json"])
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.output)["status"] == "cancelled"
    assert fresh_worker(repo).run_once() == []
    assert sp.run(asker, "q4", store=repo).status == sp.Status.CANCELLED
    again = runner.invoke(app, ["--store", repo.url, "cancel", "q4"])
    assert again.exit_code == 1 and "cancelled already" in again.output
    assert repo.load("q4").runtime["cancelled"]["reason"] == "not needed"


def test_safepoint_run_starts_an_agent_from_a_file_with_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "myagents.py").write_text(
        textwrap.dedent("""
            import safepoint as sp

            @sp.agent("greeter", schema=dict)
            def greeter(s):
                s.state["greeted"] = s.input["name"]
                return "hello " + s.input["name"]
        """)
    )
    monkeypatch.chdir(tmp_path)
    args = ["--store", "st", "run", "greeter", "--agents", "./myagents.py", "--session", "g1"]
    result = runner.invoke(app, [*args, "--input", '{"name": "Ada"}', "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert (doc["session"], doc["status"], doc["value"]) == ("g1", "completed", "hello Ada")
    with sp.open("st") as repo:
        assert [c.step for c in repo.history("g1")] == ["started", "completed"]  # the input saved first
        assert repo.load("g1").runtime["input"] == {"name": "Ada"}
    # From another directory, by absolute path, in a process of its own.
    shell = subprocess.run(
        [sys.executable, "-m", "safepoint", "--store", str(tmp_path / "st"), "run", "greeter",
         "--agents", str(tmp_path / "myagents.py"), "--session", "g2", "--input", '{"name": "Bo"}'],
        capture_output=True, text=True, cwd="/",
    )  # fmt: skip
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.strip() == "session g2: completed at seq 2"


def test_agents_option_names_a_missing_file_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["--store", "st", "run", "x", "--agents", "./nope.py"])
    assert result.exit_code == 1
    assert "cannot import --agents './nope.py': no Python file at" in result.output
    assert "Traceback" not in result.output


def test_delete_through_the_cli(repo: sp.Repository) -> None:
    sp.run(plain, "d1", store=repo)
    result = runner.invoke(app, ["--store", repo.url, "delete", "d1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"session": "d1", "deleted_checkpoints": 1}
    assert not repo.exists("d1")


class Outline(BaseModel):  # a pydantic model of the user's, importable by name
    title: str = ""
    sections: list[str] = []


def test_a_step_returning_a_pydantic_model_gives_the_model_back_on_replay(repo: sp.Repository) -> None:
    calls = []

    def plan() -> Outline:
        calls.append(1)
        return Outline(title="Heat pumps", sections=["grid", "cost"])

    with repo.session("p1", schema=dict) as s:
        first = s.step("plan", plan)
    with repo.session("p1", schema=dict) as s:
        again = s.step("plan", plan)
    assert calls == [1]
    assert isinstance(first, Outline) and isinstance(again, Outline)
    assert again == first and again.sections == ["grid", "cost"]
