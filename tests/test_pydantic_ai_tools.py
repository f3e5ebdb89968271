"""DurableTools in one process: recorded results replayed, identical calls told apart, in-doubt calls settled.

The crash across processes is tests/test_pydantic_ai_crash.py; here a run is stopped by an exception that is
not the tool's answer (as a cancellation is), and resumed from the snapshot the harness saved before the tools
ran (`capture_frontier=True`), which is what a new process resumes from.
"""

from __future__ import annotations

import asyncio

import pytest
from services import require_module

require_module("pydantic_ai_harness", "pydantic-ai")

from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart  # noqa: E402
from pydantic_ai.models.function import FunctionModel  # noqa: E402
from pydantic_ai_harness import StepPersistence  # noqa: E402

from safepoint.errors import SafepointError  # noqa: E402
from safepoint.integrations.pydantic_ai import DurableTools, SafepointStepStore, ToolCallInDoubt  # noqa: E402


class Crash(BaseException):
    """A stop that is not the tool's answer (like a cancellation): the call stays in doubt."""


def returns(messages) -> list:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]


def scripted(*calls: ToolCallPart):
    def model(messages, info) -> ModelResponse:
        done = returns(messages)
        if not done:
            return ModelResponse(parts=list(calls))
        return ModelResponse(parts=[TextPart(" | ".join(str(r.content) for r in done))])

    return model


def build(steps, calls, tools: DurableTools | None = None, **tool_fns) -> Agent:
    agent = Agent(
        FunctionModel(scripted(*calls)),
        capabilities=[StepPersistence(store=steps, capture_frontier=True), tools or DurableTools(steps)],
    )
    for fn in tool_fns.values():
        agent.tool_plain(fn)
    return agent


def frontier(steps, conversation: str) -> list:
    """The history a new process resumes from after a crash mid-tool: the model's calls, not yet answered."""
    run = steps.list_runs_sync(conversation_id=conversation)[0]
    snapshots = steps.list_snapshots_sync(run.run_id, include_interrupted=True)
    return next(s for s in snapshots if s.state == "interrupted").messages


def test_identical_calls_run_once_each_and_replay_from_the_record(tmp_path):
    steps = SafepointStepStore(str(tmp_path / "s"))
    ran: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        ran.append((a, b))
        return a + b

    calls = [
        ToolCallPart("add", {"a": 1, "b": 2}),
        ToolCallPart("add", {"a": 1, "b": 2}),
        ToolCallPart("add", {"a": 5, "b": 5}),
    ]
    first = asyncio.run(build(steps, calls, add=add).run("sum", conversation_id="c1"))
    assert sorted(ran) == [(1, 2), (1, 2), (5, 5)]  # two identical calls in one response are two calls
    again = asyncio.run(build(steps, calls, add=add).run(message_history=frontier(steps, "c1"), conversation_id="c1"))
    assert len(ran) == 3 and again.output == first.output  # the recorded results, nothing ran again


def test_an_in_doubt_call_is_refused_then_settled(tmp_path):
    steps = SafepointStepStore(str(tmp_path / "s"))
    sent: list[str] = []
    crash = [True]

    def send_email(to: str) -> str:
        if crash[0]:
            raise Crash("the process stopped mid-call")
        sent.append(to)
        return f"sent to {to}"

    calls = [ToolCallPart("send_email", {"to": "bob"})]
    with pytest.raises(Crash):
        asyncio.run(build(steps, calls, send_email=send_email).run("mail bob", conversation_id="c2"))
    crash[0] = False
    durable = DurableTools(steps)
    (doubt,) = durable.in_doubt("c2")
    assert doubt["tool"] == "send_email" and doubt["args"] == {"to": "bob"}

    resume = lambda: asyncio.run(  # noqa: E731
        build(steps, calls, durable, send_email=send_email).run(
            message_history=frontier(steps, "c2"), conversation_id="c2"
        )
    )
    with pytest.raises(ToolCallInDoubt) as refused:
        resume()
    assert refused.value.key == doubt["key"] and sent == []

    durable.resolve(doubt["key"], result="sent to bob (checked in the mail log)")  # it did happen
    assert resume().output == "sent to bob (checked in the mail log)" and sent == []
    assert durable.in_doubt("c2") == []


def test_a_call_resolved_as_not_done_or_allowed_to_retry_runs_again(tmp_path):
    steps = SafepointStepStore(str(tmp_path / "s"))
    ran: list[str] = []
    crash = [True]

    def lookup(q: str) -> str:
        if crash[0]:
            raise Crash("stopped")
        ran.append(q)
        return f"found {q}"

    calls = [ToolCallPart("lookup", {"q": "x"})]
    with pytest.raises(Crash):
        asyncio.run(build(steps, calls, lookup=lookup).run("look", conversation_id="c3"))
    crash[0] = False
    retrying = DurableTools(steps, retry_in_doubt=("lookup",))  # safe to run twice: it only reads
    out = asyncio.run(
        build(steps, calls, retrying, lookup=lookup).run(message_history=frontier(steps, "c3"), conversation_id="c3")
    )
    assert out.output == "found x" and ran == ["x"]

    crash[0] = True
    with pytest.raises(Crash):
        asyncio.run(build(steps, calls, lookup=lookup).run("look", conversation_id="c4"))
    crash[0] = False
    durable = DurableTools(steps)
    durable.resolve(durable.in_doubt("c4")[0]["key"])  # it did not happen: run it again
    asyncio.run(
        build(steps, calls, durable, lookup=lookup).run(message_history=frontier(steps, "c4"), conversation_id="c4")
    )
    assert ran == ["x", "x"]


def test_a_tool_that_failed_runs_again(tmp_path):
    steps = SafepointStepStore(str(tmp_path / "s"))
    attempts: list[int] = []

    def flaky(n: int) -> int:
        attempts.append(n)
        if len(attempts) == 1:
            raise ValueError("upstream timeout")
        return n * 2

    calls = [ToolCallPart("flaky", {"n": 21})]
    with pytest.raises(ValueError):
        asyncio.run(build(steps, calls, flaky=flaky).run("go", conversation_id="c5"))
    out = asyncio.run(build(steps, calls, flaky=flaky).run(message_history=frontier(steps, "c5"), conversation_id="c5"))
    assert out.output == "42" and attempts == [21, 21]


def test_needs_a_safepoint_store():
    with pytest.raises(SafepointError, match="SafepointStepStore or a safepoint Store"):
        DurableTools(object())


def test_asking_the_model_again_does_not_repeat_the_call_it_asks_for_again(tmp_path):
    """Resumed from the snapshot before the model answered (the newest `complete` one after a crash mid-tool),
    the model is asked again and asks for the same call under a new tool-call id: it is not run twice."""
    steps = SafepointStepStore(str(tmp_path / "s"))
    charged: list[int] = []
    ids: list[str] = []

    def model(messages, info) -> ModelResponse:
        if not returns(messages):
            call = ToolCallPart("charge", {"amount": 7})  # a fresh random tool-call id every time
            ids.append(call.tool_call_id)
            return ModelResponse(parts=[call])
        return ModelResponse(parts=[TextPart(str(returns(messages)[-1].content))])

    def charge(amount: int) -> str:
        charged.append(amount)
        return f"charged {amount}"

    def agent() -> Agent:
        made = Agent(
            FunctionModel(model),
            capabilities=[StepPersistence(store=steps, capture_frontier=True), DurableTools(steps)],
        )
        made.tool_plain(charge)
        return made

    first = asyncio.run(agent().run("charge it", conversation_id="c6"))
    run = steps.list_runs_sync(conversation_id="c6")[0]
    before_answer = steps.list_snapshots_sync(run.run_id)[0].messages  # the prompt only: the model not yet asked
    assert [type(m).__name__ for m in before_answer] == ["ModelRequest"]
    again = asyncio.run(agent().run(message_history=before_answer, conversation_id="c6"))
    assert len(ids) == 2 and ids[0] != ids[1]  # the model asked again, with another id
    assert charged == [7] and again.output == first.output == "charged 7"
