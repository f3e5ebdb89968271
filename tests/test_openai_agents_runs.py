"""Durable OpenAI Agents SDK runs: real `Runner.run` with an offline model, across SIGKILLs and a tool approval.

The agent (tests/openai_agents_child.py) looks an order up, then cancels it; cancelling needs approval. Each
process is a real Python process on a directory store; the parent kills one between turns, answers the approval
with the real CLI, and checks what every process left: the conversation, the session's status, and how often each
tool ran (a log the tools append to, fsynced).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from services import require_module

require_module("agents", "openai-agents")

from agents import Agent, function_tool  # noqa: E402
from openai_agents_model import PlannedToolsModel  # noqa: E402
from openai_agents_stores import store_url  # noqa: E402, F401 - the fixture
from typer.testing import CliRunner  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.cli import app  # noqa: E402
from safepoint.integrations.openai_agents import (  # noqa: E402
    SafepointSession,
    approve,
    pending_approvals,
    resume,
    run,
)

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
HERE = Path(__file__).resolve().parent
CHILD = HERE / "openai_agents_child.py"


def child(store: Path, mode: str, log: Path, kill_at: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    args = [sys.executable, str(CHILD), str(store), "orders-42", mode, str(log)] + ([str(kill_at)] if kill_at else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def kinds(items: list[dict[str, Any]]) -> list[str]:
    return [item.get("type") or item.get("role") for item in items]


def cli(store: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["--store", str(store), *args])
    assert result.exit_code == 0, result.output
    return result


def test_sigkill_between_turns_then_approval_then_sigkill_after_the_approved_tool(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "tools.log"

    # 1. Killed when the second model call starts: turn 1 (the lookup and its output) is already saved.
    killed = child(store, "start", log, kill_at=2)
    assert killed.returncode == -9, killed.stderr
    repo = sp.open(store)
    head = repo.load("orders-42")
    assert kinds(head.state["items"]) == ["user", "function_call", "function_call_output"]
    assert head.status == sp.Status.RUNNING and head.state["run"]["status"] == "running"
    assert log.read_text().splitlines() == ["lookup_order 42"]
    stuck = json.loads(cli(store, "ls", "--stuck", "--json").output)
    assert [row["id"] for row in stuck] == ["orders-42"] and "lease holder" in stuck[0]["stuck"]

    # 2. A new process resumes from the saved conversation: the lookup is not run again; the cancel waits.
    waiting = child(store, "resume", log)
    assert waiting.returncode == 0, waiting.stderr
    assert json.loads(waiting.stdout.splitlines()[-1]) == {"interruptions": ["call-1-2"], "final": None}
    assert log.read_text().splitlines() == ["lookup_order 42"]
    listed = cli(store, "ls", "--status", "waiting", "--json")
    assert [row["id"] for row in json.loads(listed.output)] == ["orders-42"]
    summary = repo.summary("orders-42")
    assert summary.waiting_for == ["call-1-2"]
    assert repo.pending_inputs("orders-42")["call-1-2"]["tool"] == "cancel_order"

    # A wrong answer is refused and changes nothing; the right one is recorded.
    seq = repo.info("orders-42").seq
    refused = CliRunner().invoke(app, ["--store", str(store), "send", "orders-42", "call-1-2", '"maybe"'])
    assert refused.exit_code != 0 and repo.info("orders-42").seq == seq
    sent = cli(store, "send", "orders-42", "call-1-2", "true")
    assert "await resume(agent, session=SafepointSession('orders-42', store))" in sent.output

    # 3. Resumed with the SDK's RunState; killed when the model is called after the approved cancel ran and its
    # output was saved.
    killed = child(store, "resume", log, kill_at=1)
    assert killed.returncode == -9, killed.stderr
    assert log.read_text().splitlines() == ["lookup_order 42", "cancel_order 42"]
    head = repo.load("orders-42")
    assert kinds(head.state["items"])[-2:] == ["function_call", "function_call_output"]
    assert head.state["run"]["state"] is None  # the approval's result is in the conversation now

    # 4. The last process finishes from the conversation: nothing ran twice.
    done = child(store, "resume", log)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["final"] == "done: order 42: shipped; order 42: cancelled"
    assert log.read_text().splitlines() == ["lookup_order 42", "cancel_order 42"]
    head = repo.load("orders-42")
    assert head.status == sp.Status.COMPLETED and head.state["run"] is None
    assert kinds(head.state["items"]) == [
        "user", "function_call", "function_call_output", "function_call", "function_call_output", "message",
    ]  # fmt: skip
    assert cli(store, "ls", "--status", "waiting", "--json").output.strip() == "[]"
    assert repo.fsck().ok


def _agent(ran: list[str]) -> tuple[Agent[Any], PlannedToolsModel]:
    @function_tool(needs_approval=True)
    def refund(amount: int) -> str:
        ran.append(f"refund {amount}")
        return f"refunded {amount}"

    model = PlannedToolsModel([("refund", {"amount": 30})], reply="ok")
    return Agent(name="billing", model=model, tools=[refund]), model


def test_rejection_with_a_message_reaches_the_model_and_the_tool_never_runs(tmp_path: Path) -> None:
    ran: list[str] = []
    agent, model = _agent(ran)
    session = SafepointSession("refund-1", tmp_path / "store")

    async def scenario() -> Any:
        first = await run(agent, "Refund 30", session=session)
        assert [item.call_id for item in first.interruptions] == ["call-1-1"]
        assert pending_approvals(session)["call-1-1"]["arguments"] == '{"amount": 30}'
        approve(session, "call-1-1", False, message="refunds over 20 need a manager")
        return await resume(agent, session=SafepointSession("refund-1", tmp_path / "store"))

    result = asyncio.run(scenario())
    assert ran == []
    assert result.final_output == "ok: refunds over 20 need a manager"
    outputs = [item for item in session.items() if item.get("type") == "function_call_output"]
    assert [item["output"] for item in outputs] == ["refunds over 20 need a manager"]
    assert sp.open(tmp_path / "store").info("refund-1").head.status == sp.Status.COMPLETED


def test_resume_refuses_without_an_answer_and_run_refuses_while_waiting(tmp_path: Path) -> None:
    ran: list[str] = []
    agent, _ = _agent(ran)
    session = SafepointSession("refund-2", tmp_path / "store")

    async def scenario() -> None:
        await run(agent, "Refund 30", session=session)
        seq = session.repository.info("refund-2").seq
        with pytest.raises(sp.SafepointError, match=r"waits for approval of call-1-1: answer first"):
            await resume(agent, session=session)
        with pytest.raises(sp.SafepointError, match="has a run waiting for approvals"):
            await run(agent, "Another question", session=session)
        assert session.repository.info("refund-2").seq == seq and ran == []
        with pytest.raises(sp.SafepointError, match="has no run to resume"):
            await resume(agent, session=SafepointSession("never-ran", tmp_path / "store"))
        await session.clear_session()  # drops the waiting run with the items its RunState refers to
        assert pending_approvals(session) == {} and await session.get_items() == []
        assert session.repository.load("refund-2").status == sp.Status.COMPLETED
        again = await run(agent, "Refund 30", session=session)
        assert [item.call_id for item in again.interruptions] == ["call-1-1"]

    asyncio.run(scenario())


def test_a_second_resumer_gets_session_busy_and_runs_nothing(tmp_path: Path) -> None:
    from safepoint.runtime.leases import Lease

    ran: list[str] = []
    agent, _ = _agent(ran)
    session = SafepointSession("refund-3", tmp_path / "store")
    asyncio.run(run(agent, "Refund 30", session=session))
    approve(session, "call-1-1", True)
    other = Lease(session.store, "refund-3", "refund-3").acquire()  # another process resuming it right now
    try:
        seq = session.repository.info("refund-3").seq
        with pytest.raises(sp.SessionBusy, match="is being run by"):
            asyncio.run(resume(agent, session=session))
        assert ran == [] and session.repository.info("refund-3").seq == seq
    finally:
        other.release()
    assert asyncio.run(resume(agent, session=session)).final_output == "ok: refunded 30" and ran == ["refund 30"]
    head = session.repository.load("refund-3")
    assert head.status == sp.Status.COMPLETED and head.lease is not None  # its commits carried the run's lease


def test_a_failed_model_call_leaves_a_run_that_resumes_from_its_saved_turns(tmp_path: Path) -> None:
    ran: list[str] = []

    @function_tool
    def search(query: str) -> str:
        ran.append(query)
        return f"3 results for {query}"

    class Flaky(PlannedToolsModel):
        down = True

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            if len(self.calls) == 1 and self.down:
                raise ConnectionError("the model endpoint answered 503")
            return await super().get_response(*args, **kwargs)

    model = Flaky([("search", {"query": "durable agents"})], reply="found")
    agent = Agent(name="researcher", model=model, tools=[search])
    session = SafepointSession("research-1", tmp_path / "store")
    with pytest.raises(ConnectionError):
        asyncio.run(run(agent, "Find papers", session=session))
    head = session.repository.load("research-1")
    assert head.status == sp.Status.FAILED and "503" in head.state["run"]["error"]
    assert kinds(head.state["items"]) == ["user", "function_call", "function_call_output"]
    model.down = False
    result = asyncio.run(resume(agent, session=session))
    assert result.final_output == "found: 3 results for durable agents" and ran == ["durable agents"]
    assert session.repository.load("research-1").status == sp.Status.COMPLETED


@pytest.mark.filterwarnings("ignore:Redis store.*is not durable:safepoint.errors.SafepointWarning")
def test_answering_one_of_two_approvals_runs_that_one_and_waits_again_for_the_other(store_url: str) -> None:
    """On every kind of store: the approval flow needs only the conversation's commits, the lease and `send`."""
    ran: list[str] = []

    @function_tool(needs_approval=True)
    def refund(amount: int) -> str:
        ran.append(f"refund {amount}")
        return f"refunded {amount}"

    model = PlannedToolsModel([[("refund", {"amount": 10}), ("refund", {"amount": 20})]], reply="ok")
    agent = Agent(name="billing", model=model, tools=[refund])
    store = store_url

    async def scenario() -> None:
        first = await run(agent, "Refund both", session=SafepointSession("two", store))
        assert sorted(item.call_id for item in first.interruptions) == ["call-1-1", "call-1-1b"]
        shown = sp.open(store).load("two").state["run"]["approvals"]  # what `safepoint show two` prints
        assert shown["call-1-1b"] == {"tool": "refund", "arguments": '{"amount": 20}', "agent": "billing"}
        approve(SafepointSession("two", store), "call-1-1b", True)
        second = await resume(agent, session=SafepointSession("two", store))
        assert [item.call_id for item in second.interruptions] == ["call-1-1"] and ran == ["refund 20"]
        assert list(pending_approvals(SafepointSession("two", store))) == ["call-1-1"]
        approve(SafepointSession("two", store), "call-1-1", True, always=True)
        third = await resume(agent, session=SafepointSession("two", store))
        assert (
            third.final_output == "ok: refunded 20; refunded 10" or third.final_output == "ok: refunded 10; refunded 20"
        )
        assert sorted(ran) == ["refund 10", "refund 20"]
        # The session's usage is the run's, counted once across its two pauses (the RunState carries it): 2 model calls.
        spent = third.context_wrapper.usage
        repo = sp.open(store)
        usage = repo.load("two").runtime["usage"]
        assert spent.requests == 2 and usage["model_calls"] == 2 and usage["tokens"] == spent.total_tokens > 0
        assert repo.summary("two").tokens == spent.total_tokens  # what `safepoint ls --stuck --json` reports

    asyncio.run(scenario())
