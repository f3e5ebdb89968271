"""core.summary: what every front end shows of a session, computed from its head's runtime records."""

from __future__ import annotations

import pytest

import safepoint as sp
from safepoint.core.summary import totals


@pytest.fixture
def repo() -> sp.Repository:
    return sp.open("memory://")


def test_a_waiting_session_with_usage_and_a_retry(repo: sp.Repository) -> None:
    flaky = iter([TimeoutError("slow"), None])

    @sp.agent("summarised")
    def agent(s: sp.Session) -> bool:
        def call() -> int:
            error = next(flaky)
            if error:
                raise error
            sp.report_usage(tokens=120, cost=0.25)
            return 1

        s.step("plan", call, retry=sp.RetryPolicy(attempts=3, initial=0.001))
        return s.wait_for("approve", prompt="Approve?", schema=bool)

    sp.run(agent, "s1", store=repo)
    summary = repo.summary("s1")
    assert (summary.tokens, summary.cost, summary.steps_done, summary.retries) == (120, 0.25, 1, 1)
    assert summary.waiting_for == ["approve"]
    assert summary.in_doubt == [] and summary.error is None
    data = summary.to_dict()
    assert data["status"] == "waiting" and data["agent"] == "summarised" and data["waiting_for"] == ["approve"]


def test_an_effect_cut_off_mid_call_is_in_doubt(repo: sp.Repository) -> None:
    with repo.session("s2") as s:
        s.runtime["effects"] = {"email:1": {"status": "intent", "at": "2026-01-01T00:00:00+00:00"}}
        s.save(step="effect email:1: intent")
    assert repo.summary("s2").in_doubt == ["email:1"]


def test_a_failed_step_is_the_summary_error(repo: sp.Repository) -> None:
    @sp.agent("failing")
    def agent(s: sp.Session) -> None:
        s.step("boom", lambda: 1 / 0)

    sp.run(agent, "s3", store=repo)
    summary = repo.summary("s3")
    assert summary.info.status == sp.Status.FAILED
    assert "ZeroDivisionError" in (summary.error or "")


def test_totals_sum_over_sessions(repo: sp.Repository) -> None:
    for n, agent in enumerate(["a", "a", "b"]):
        with repo.session(f"t{n}", agent=agent) as s:
            s.runtime["usage"] = {"tokens": 10 * (n + 1), "cost": 0.1}
            s.save(status=sp.Status.COMPLETED if n else sp.Status.RUNNING)
    with repo.session("empty"):
        pass  # opened, never saved
    result = totals(repo.summaries())
    assert result.sessions == 4
    assert result.by_status == {"running": 1, "completed": 2, "new": 1}
    assert result.by_agent == {"a": 2, "b": 1, "": 1}
    assert (result.tokens, result.cost) == (60, 0.3)
