"""Human in the loop across processes: wait and exit, a bad answer refused, send, resume to the end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import safepoint as sp

AGENTS = textwrap.dedent(
    """
    import json, os
    import safepoint as sp

    LOG = os.environ["APPROVAL_LOG"]

    def log(what):
        with open(LOG, "a") as f:
            f.write(what + "\\n")

    @sp.agent("approver")
    def approver(s):
        outline = s.step("outline", lambda: (log("outline"), ["intro", "prices", "outlook"])[1])
        decision = s.wait_for("approve", prompt="Approve this outline? " + json.dumps(outline), schema=bool)
        if not decision:
            return "rejected"
        return s.step("write", lambda: (log("write"), "report for " + ", ".join(outline))[1])

    if __name__ == "__main__":
        import sys
        result = sp.run(approver, sys.argv[2], store=sys.argv[1])
        sys.exit(sp.WAITING_EXIT_CODE if result.status == "waiting" else 0)
    """
)


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "approval_agents.py").write_text(AGENTS)
    env = {**os.environ, "APPROVAL_LOG": str(tmp_path / "log.txt"), "PYTHONPATH": str(tmp_path)}
    store = str(tmp_path / "store")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "safepoint", "--store", store, *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return tmp_path, store, env, cli


def test_wait_exit_send_resume_across_processes(setup):
    tmp_path, store, env, cli = setup
    first = subprocess.run([sys.executable, str(tmp_path / "approval_agents.py"), store, "job"], env=env, timeout=60)
    assert first.returncode == sp.WAITING_EXIT_CODE  # it saved the question and exited, holding nothing
    repo = sp.open(store)
    head = repo.load("job")
    assert head.status == sp.Status.WAITING and head.step == "waiting for approve"
    assert list(repo.pending_inputs("job")) == ["approve"]
    with repo.session("job", schema=dict) as s:  # nothing is held open while it waits: the lease is free
        assert s.seq == head.seq

    before = [c.seq for c in repo.history("job")]
    refused = cli("send", "job", "approve", "maybe")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "refused" in refused.stderr and "Traceback" not in refused.stderr
    assert [c.seq for c in repo.history("job")] == before  # nothing changed
    unknown = cli("send", "job", "deploy", "true")
    assert unknown.returncode == 1 and "not waiting for 'deploy'" in unknown.stderr

    answered = cli("send", "job", "approve", "true")
    assert answered.returncode == 0, answered.stderr
    assert repo.load("job").meta["ready"] is True

    resumed = cli("resume", "job", "--agents", "approval_agents")
    assert resumed.returncode == 0, resumed.stderr
    assert "completed" in resumed.stdout
    assert "1 step(s) replayed" in resumed.stderr
    final = repo.load("job")
    assert final.status == sp.Status.COMPLETED
    assert final.runtime["result"] == "report for intro, prices, outlook"
    assert (tmp_path / "log.txt").read_text().split() == ["outline", "write"]  # each step ran once


def test_resume_while_still_waiting_exits_75_again(setup):
    tmp_path, store, env, cli = setup
    subprocess.run([sys.executable, str(tmp_path / "approval_agents.py"), store, "job"], env=env, timeout=60)
    again = cli("resume", "job", "--agents", "approval_agents")
    assert again.returncode == sp.WAITING_EXIT_CODE
    assert "waiting for approve" in again.stdout
    assert (tmp_path / "log.txt").read_text().split() == ["outline"]


def test_answer_with_a_pydantic_schema_and_a_rejection(tmp_path):
    from pydantic import BaseModel

    class Review(BaseModel):
        approved: bool
        comment: str = ""

    repo = sp.open(tmp_path / "store")

    def reviewer(s):
        review = s.wait_for("review", prompt="Review the draft", schema=Review)
        return {"approved": review.approved, "comment": review.comment}

    assert sp.run(reviewer, "r", store=repo).status == sp.Status.WAITING
    with pytest.raises(sp.InvalidAnswer, match="approved"):
        repo.send("r", "review", {"comment": "no verdict"})
    repo.send("r", "review", {"approved": False, "comment": "too long"})
    result = sp.run(reviewer, "r", store=repo)
    assert result.status == sp.Status.COMPLETED
    assert result.value == {"approved": False, "comment": "too long"}
