"""Durable steps: each expensive call runs once; its result is recorded and replayed on every later run.

    with store.session("report-42") as s:
        plan = s.step("plan", llm.plan, topic)          # after a crash: returned from the record, not re-run

    @sp.step()                                          # or decorate: keyed by name and call order
    def read(path): ...

A step's output must have a JSON form; what the first run returns is what every replay returns (the JSON
form), so code after a step behaves the same whether the step ran or was replayed. A step is checkpointed
when it finishes (unless the session was opened with `save_steps=False`).
"""

from __future__ import annotations

import contextvars
import functools
import threading
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from ..core import codec, tracing
from ..core.loaded import loaded
from ..errors import Interrupted, NotSerializable, StepFailed
from ..model import Status
from .context import RunContext
from .retry import NO_RETRY, RetryPolicy

F = TypeVar("F", bound=Callable[..., Any])

#: The session a decorated step records into (set while a session is open in this context).
current_session: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("safepoint_session", default=None)
_current_usage: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "safepoint_usage", default=None
)

_log = tracing.logger("runtime")

#: Set by a worker on SIGTERM: no new step starts; the run stops with everything saved.
shutdown_requested = threading.Event()


def now() -> str:
    return datetime.now(UTC).isoformat()


def report_usage(tokens: int = 0, cost: float = 0.0, **counts: float) -> None:
    """Inside a step: add the tokens (and cost) this call spent. Outside one: added to the session's totals."""
    usage = _current_usage.get()
    if usage is not None:
        _add(usage, tokens=tokens, cost=cost, **counts)
        return
    session = current_session.get()
    if session is not None:
        _add(session.runtime.setdefault("usage", {}), tokens=tokens, cost=cost, **counts)


def _add(target: dict[str, Any], **amounts: float) -> None:
    for name, amount in amounts.items():
        if amount:
            target[name] = _sum(target.get(name, 0), amount)


def _sum(total: float, amount: float) -> float:
    # Costs are decimal amounts added as binary floats: round the noise away (0.1 + 0.2 gives 0.3).
    result = total + amount
    return round(result, 9) if isinstance(result, float) else result


def run_step(
    session: RunContext,
    name: str,
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    retry: RetryPolicy | None,
) -> Any:
    """Return the recorded output of step `name`, or run `fn` (with retries), record it and checkpoint."""
    session.ensure_open()  # before `fn` runs: a closed session could not record what it did
    with tracing.span("safepoint.step", {"safepoint.session.id": session.id, "safepoint.step.name": name}) as span:
        steps = session.runtime.setdefault("steps", {})
        record = steps.get(name)
        if record is not None and record.get("status") == "done":
            _count_replay(session, record)
            span.set_attributes(_outcome("replayed", record))
            _log.debug("session %r: step %r replayed", session.id, name, extra=_event(session, name, "replayed"))
            return _typed(record)
        output = _execute(session, name, fn, args, kwargs, retry, record, span)
        span.set_attributes(_outcome("executed", session.runtime["steps"][name]))
        _log.debug("session %r: step %r executed", session.id, name, extra=_event(session, name, "executed"))
        return output


def _outcome(outcome: str, record: dict[str, Any]) -> dict[str, Any]:
    usage = record.get("usage") or {}
    return {
        "safepoint.step.outcome": outcome,
        "safepoint.step.attempts": record.get("attempts"),
        "safepoint.usage.tokens": usage.get("tokens"),
        "safepoint.usage.cost": usage.get("cost"),
    }


def _event(session: RunContext, name: str, outcome: str, **fields: Any) -> dict[str, Any]:
    return {"session": session.id, "step": name, "outcome": outcome, **fields}


def _execute(
    session: RunContext,
    name: str,
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    retry: RetryPolicy | None,
    record: dict[str, Any] | None,
    span: Any,
) -> Any:
    steps = session.runtime["steps"]
    if shutdown_requested.is_set():
        raise Interrupted(f"session {session.id!r}: shutdown requested; stopped before step {name!r}, all saved")
    policy = retry or session.retry or NO_RETRY
    previous_attempts = record.get("attempts", 0) if record else 0
    usage: dict[str, float] = {}
    token = _current_usage.set(usage)

    def on_retry(attempt: int, exc: BaseException) -> None:
        steps[name] = {"status": "retrying", "attempts": previous_attempts + attempt, "error": _describe(exc)}
        error = tracing.scrub(steps[name]["error"])
        span.add_event("safepoint.retry", {"safepoint.step.attempt": attempt, "safepoint.error": error})
        _log.warning(
            "session %r: step %r attempt %d failed, retrying: %s",
            session.id,
            name,
            attempt,
            error,
            extra=_event(session, name, "retrying", attempt=attempt, error=error),
        )

    try:
        result, attempts = policy.call(fn, args, kwargs, on_retry)
    except Interrupted:
        raise
    except Exception as exc:
        attempts = steps.get(name, {}).get("attempts", previous_attempts) + 1
        steps[name] = {"status": "failed", "attempts": attempts, "error": _describe(exc), "at": now()}
        session.runtime["error"] = {"step": name, **steps[name]}
        _add(session.runtime.setdefault("usage", {}), **usage)
        session.save(step=name, status=Status.FAILED)
        error = tracing.scrub(steps[name]["error"])
        _log.error(
            "session %r: step %r failed after %d attempt(s): %s",
            session.id,
            name,
            attempts,
            error,
            extra=_event(session, name, "failed", attempts=attempts, error=error),
        )
        span.set_attributes({"safepoint.step.outcome": "failed", "safepoint.step.attempts": attempts})
        raise StepFailed(
            f"session {session.id!r}: step {name!r} failed after {attempts} attempt(s): {_describe(exc)}; "
            "the session is saved as failed and a resume retries this step, not the ones before it"
        ) from exc
    finally:
        _current_usage.reset(token)
    try:
        output = codec.copy(result, root=f"output of step {name!r}", tuples=True)
    except NotSerializable:
        steps.pop(name, None)
        raise
    steps[name] = {"status": "done", "output": output, "attempts": previous_attempts + attempts, "at": now()}
    if isinstance(result, BaseModel):  # given back as the same model on replay, not as a dict
        steps[name]["model"] = f"{type(result).__module__}:{type(result).__qualname__}"
    if usage:
        steps[name]["usage"] = usage
    totals = session.runtime.setdefault("usage", {})
    _add(totals, steps_run=1, **usage)
    session.runtime.pop("error", None)
    if session.save_steps:
        session.save(step=name)
    return _typed(steps[name])


def _typed(record: dict[str, Any]) -> Any:
    """A step's recorded output, as the pydantic model it was returned as when that class is loaded.

    Only a class of a module the process has imported (the agent's code) is used: the record is stored data,
    and importing the module it names would run code chosen by whoever wrote the store."""
    name = record.get("model")
    if isinstance(name, str) and name:
        module, _, qualname = name.partition(":")
        target = loaded(module, qualname)  # None when not loaded (or gone): the data is still there
        if isinstance(target, type) and issubclass(target, BaseModel):
            return target.model_validate(codec.loads(codec.dumps(record["output"])))  # a copy: the record stays
    return record["output"]


def _count_replay(session: RunContext, record: dict[str, Any]) -> None:
    session.replayed_steps += 1
    saved = record.get("usage", {})
    for name in ("tokens", "cost"):
        session.saved_usage[name] = _sum(session.saved_usage.get(name, 0), saved.get(name, 0))


def _describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return text[:2000]


def step(name: str | None = None, *, retry: RetryPolicy | None = None) -> Callable[[F], F]:
    """Decorator: make a function a durable step of whatever session is open in this context.

    Without a name each call is keyed `<qualname>#<n>` by its order in the run, so the same control flow
    replays the same records. Outside a session the function simply runs.
    """

    def decorate(fn: F) -> F:
        base = name or fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            session = current_session.get()
            if session is None:
                return fn(*args, **kwargs)
            calls = session.call_counts
            calls[base] = calls.get(base, 0) + 1
            return run_step(session, f"{base}#{calls[base]}", fn, args, kwargs, retry)

        return wrapper  # type: ignore[return-value]

    return decorate
