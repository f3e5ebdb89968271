"""Durable OpenAI Agents SDK runs: a run that stops for tool approvals waits as a safepoint session.

`run(agent, input, session=...)` is `Runner.run` with the session's conversation, plus:

- the run is marked in the conversation's state (`state.run`) with its first commit, so a process that dies
  between turns leaves a run that `resume` continues from the saved conversation (every turn's items are saved as
  the SDK adds them, each one checkpoint);
- when the run stops for approvals (`result.interruptions`), the SDK's own `RunState` (`result.to_state()`,
  `to_json()`) is saved in `state.run.state`, each pending approval becomes a question of the safepoint session
  (named by the tool call's id, answered `true`, `false` or `{"approve": false, "message": "...", "always":
  true}`), and the session's status is `waiting`: `safepoint ls`, `safepoint send`, a dashboard and the other
  front ends see and answer it like any waiting session;
- `resume(agent, session=...)`, in any process, rebuilds the `RunState` with `RunState.from_json`, applies the
  answers with `state.approve` / `state.reject` and runs on with `Runner.run(agent, state, session=...)`, the
  SDK's own resume path. Its first saved turn drops the stored `RunState` (the conversation holds the approved
  calls' results from then on).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from agents import Agent, Runner, RunResult, RunState
from agents.items import ToolApprovalItem

from ..errors import SafepointError
from ..model import Status
from ..repository import Repository
from ..runtime.leases import Lease
from ._openai_agents_conversation import Change, Runtime, State, private
from ._openai_agents_session import SafepointSession

#: What an approval accepts: true / false, or an object with a rejection message and a sticky decision.
ANSWER_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "boolean"},
        {
            "type": "object",
            "properties": {
                "approve": {"type": "boolean"},
                "message": {"type": "string"},
                "always": {"type": "boolean"},
            },
            "required": ["approve"],
            "additionalProperties": False,
        },
    ]
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def approval_name(item: ToolApprovalItem, index: int) -> str:
    """The question's name for one pending approval: the tool call's id (what `safepoint send` is given)."""
    return item.call_id or f"{item.tool_name or 'tool'}-{index + 1}"


async def run(
    agent: Agent[Any],
    input: str | list[Any],  # noqa: A002 - the SDK's name
    *,
    session: SafepointSession,
    context_serializer: Any = None,
    **runner_kwargs: Any,
) -> RunResult:
    """`Runner.run(agent, input, session=session, ...)`, saved as a durable run (see the module docstring).

    A run that stops for approvals returns as the SDK returns it (`result.interruptions`), after the session was
    saved as waiting. Starting a run while another waits for approvals is refused: resume or clear that one first.
    A durable run holds the session's lease: a second one at the same time, in any process, gets SessionBusy.
    """
    async with _leased(session):
        return await _run(agent, input, session, context_serializer, runner_kwargs)


async def _run(
    agent: Agent[Any], input: Any, session: SafepointSession, context_serializer: Any, runner_kwargs: dict[str, Any]
) -> RunResult:
    state = (await asyncio.to_thread(session._conversation.head))[0]
    if (state.get("run") or {}).get("state") is not None:
        waiting = ", ".join(sorted(pending_approvals(session)))
        raise SafepointError(
            f"session {session.session_id!r} has a run waiting for approvals ({waiting}); "
            f"answer them (`safepoint send {session.session_id} NAME true`) and call resume(), or clear_session() "
            "to drop it; nothing was run"
        )
    session._run_marker = {"status": "running", "agent": agent.name, "started_at": _now(), "state": None}
    return await _run_and_settle(agent, input, session, context_serializer, runner_kwargs, new_usage=True)


async def resume(
    agent: Agent[Any],
    *,
    session: SafepointSession,
    context_serializer: Any = None,
    context_deserializer: Any = None,
    context_override: Any = None,
    **runner_kwargs: Any,
) -> RunResult:
    """Continue the session's durable run in this process: a run waiting for approvals with the answers sent
    (`safepoint send`, `approve()`), or a run whose process stopped between turns, from its saved conversation.

    `agent` is the run's top-level agent, as for the SDK's `Runner.run(agent, state)`. It holds the session's lease
    while it runs: a second `resume` (or `run`) at the same time, in any process, gets SessionBusy and runs nothing,
    so an approved tool is not run twice by two resumers."""
    async with _leased(session):
        return await _resume(agent, session, context_serializer, context_deserializer, context_override, runner_kwargs)


async def _resume(
    agent: Agent[Any],
    session: SafepointSession,
    context_serializer: Any,
    context_deserializer: Any,
    context_override: Any,
    runner_kwargs: dict[str, Any],
) -> RunResult:
    state, runtime, _status, _seq = await asyncio.to_thread(session._conversation.head)
    stored = state.get("run") or {}
    if stored.get("state") is not None:
        run_state = await RunState.from_json(
            agent,
            private(stored["state"], "state.run.state"),
            context_deserializer=context_deserializer,
            context_override=context_override,
        )
        requests = runtime.get("inputs") or {}
        decided = []
        for index, item in enumerate(run_state.get_interruptions()):
            request = requests.get(approval_name(item, index)) or {}
            if "answer" not in request:
                continue
            approved, message, always = _decision(request["answer"])
            if approved:
                run_state.approve(item, always_approve=always)
            else:
                run_state.reject(item, always_reject=always, rejection_message=message)
            decided.append(approval_name(item, index))
        if not decided:
            waiting = ", ".join(sorted(pending_approvals(session))) or "nothing"
            raise SafepointError(
                f"session {session.session_id!r} waits for approval of {waiting}: answer first "
                f"(`safepoint send {session.session_id} NAME true`, or false); nothing was run"
            )
        session._run_marker = {
            "status": "running",
            "state": None,
            "approvals": None,
            "resumed_at": _now(),
            "approved": decided,
        }
        # The RunState carries the run's usage so far: only what it adds is counted again.
        return await _run_and_settle(agent, run_state, session, context_serializer, runner_kwargs, new_usage=False)
    if stored.get("status") in ("running", "failed"):
        # Stopped between turns: every finished turn is in the conversation; the model goes on from there.
        session._run_marker = {"status": "running", "resumed_at": _now()}
        return await _run_and_settle(agent, [], session, context_serializer, runner_kwargs, new_usage=True)
    raise SafepointError(
        f"session {session.session_id!r} has no run to resume (none was started with "
        "safepoint.integrations.openai_agents.run, or it completed)"
    )


def pending_approvals(session: SafepointSession) -> dict[str, dict[str, Any]]:
    """The approvals the session's run waits for, by name: tool, arguments, agent, prompt, asked_at."""
    runtime = session._conversation.head()[1]
    return {name: dict(r) for name, r in (runtime.get("inputs") or {}).items() if "answer" not in r}


def approve(
    session: SafepointSession, name: str, approved: bool = True, *, message: str | None = None, always: bool = False
) -> None:
    """Answer one pending approval, as `safepoint send ID NAME true` does (then `resume`)."""
    answer: Any = approved if message is None and not always else {"approve": approved, "always": always}
    if message is not None:
        answer["message"] = message
    Repository(session.store).send(session.session_id, name, answer, by="api")


@asynccontextmanager
async def _leased(session: SafepointSession) -> AsyncIterator[None]:
    """Hold the session's lease for a durable run (SessionBusy when a live holder has it)."""
    if session._lease is not None:
        raise SafepointError(f"session {session.session_id!r}: this SafepointSession is already running a durable run")
    lease = Lease(session.store, session.session_id, session._conversation.chain.segment)
    session._lease = await asyncio.to_thread(lease.acquire)
    try:
        yield
    finally:
        session._lease = None
        await asyncio.to_thread(lease.release)


def _decision(answer: Any) -> tuple[bool, str | None, bool]:
    if isinstance(answer, dict):
        return bool(answer["approve"]), answer.get("message"), bool(answer.get("always", False))
    return bool(answer), None, False


async def _run_and_settle(
    agent: Agent[Any],
    input: Any,
    session: SafepointSession,
    context_serializer: Any,
    kwargs: dict[str, Any],
    *,
    new_usage: bool,
) -> RunResult:
    try:
        result = await Runner.run(agent, input, session=session, **kwargs)
    except Exception as exc:
        try:
            await asyncio.to_thread(_settle_failed, session, exc)
        except SafepointError:
            pass  # best effort (the lease may be lost): the caller gets the run's own error
        raise
    finally:
        session._run_marker = None
    await asyncio.to_thread(_settle, session, agent, result, context_serializer, new_usage)
    return result


def _usage(result: RunResult) -> dict[str, int]:
    usage = result.context_wrapper.usage
    return {
        "tokens": usage.total_tokens,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "model_calls": usage.requests,
    }


def _counted(runtime: Runtime, state: State, total: dict[str, int], new_usage: bool) -> Runtime:
    """`runtime` with the session's usage totals (`runtime.usage`, what `safepoint ls --stuck --json` and the
    summaries show) raised by what the run spent since it was last counted (`state.run.usage_counted`)."""
    before = {} if new_usage else ((state.get("run") or {}).get("usage_counted") or {})
    usage = dict(runtime.get("usage") or {})
    for name, amount in total.items():
        usage[name] = usage.get(name, 0) + amount - before.get(name, 0)
    return {**runtime, "usage": usage}


def _settle(
    session: SafepointSession, agent: Agent[Any], result: RunResult, context_serializer: Any, new_usage: bool
) -> None:
    """Save how the run stopped: waiting for approvals (with the SDK's RunState), or completed."""
    interruptions = result.interruptions
    spent = _usage(result)
    if not interruptions:

        def complete(state: State, runtime: Runtime, status: Status | None) -> Change:
            runtime = _counted(runtime, state, spent, new_usage)
            runtime = {key: value for key, value in runtime.items() if key not in ("inputs", "ready", "resume_hint")}
            return {**state, "run": None}, runtime, "run completed", Status.COMPLETED, {}, None

        session._conversation.change(complete, session._lease)
        return
    run_state = private(result.to_state().to_json(context_serializer=context_serializer), "state.run.state")
    asked = _now()
    requests = {}
    for index, item in enumerate(interruptions):
        tool = item.tool_name or "tool"
        requests[approval_name(item, index)] = {
            "prompt": f"Approve {tool}({item.arguments or ''}) for agent {item.agent.name!r}? "
            'true, false, or {"approve": false, "message": "why"}',
            "schema": ANSWER_SCHEMA,
            "asked_at": asked,
            "tool": tool,
            "arguments": item.arguments,
            "agent": item.agent.name,
        }
    tools = ", ".join(sorted({r["tool"] for r in requests.values()}))

    def pause(state: State, runtime: Runtime, status: Status | None) -> Change:
        approvals = {name: {key: r[key] for key in ("tool", "arguments", "agent")} for name, r in requests.items()}
        stored = {**(state.get("run") or {}), "status": "waiting", "agent": agent.name, "approvals": approvals}
        stored.update(state=run_state, usage_counted=spent)
        hint = (
            f"it is ready: resume it where its agent is defined, with "
            f"`await resume(agent, session=SafepointSession({session.session_id!r}, store))` "
            "(safepoint.integrations.openai_agents)"
        )
        runtime = _counted(runtime, state, spent, new_usage)
        runtime.update(inputs=requests, ready=False, resume_hint=hint)
        return (
            {**state, "run": stored},
            runtime,
            f"waiting for approval of {tools}",
            Status.WAITING,
            {"ready": False},
            None,
        )

    session._conversation.change(pause, session._lease)


def _settle_failed(session: SafepointSession, exc: BaseException) -> None:
    """A run that raised stays resumable (from its saved turns); the head says why it stopped."""
    why = f"{type(exc).__name__}: {exc}"[:200]

    def fail(state: State, runtime: Runtime, status: Status | None) -> Change:
        if state.get("run") is None:
            return None, runtime, "", Status.FAILED, {}, None  # it saved nothing: there is nothing to resume
        stored = {**state["run"], "status": "failed", "error": why}
        return {**state, "run": stored}, runtime, "run failed", Status.FAILED, {"error": why}, None

    session._conversation.change(fail, session._lease)
