"""Side effects under an idempotency key: the intent is saved before the call, the result after it.

    receipt = s.effect("email:report-42", send_email, to, body, reconcile=lambda key: mailer.lookup(key))

- done (result recorded): the recorded result is returned; `fn` never runs again.
- intent recorded, no result: the process stopped mid-call, so nobody knows whether it happened. It is
  *in doubt* and never silently re-run. With `reconcile`, safepoint asks the outside system: reconcile(key)
  returns `NOT_DONE` (run it now) or the effect's result (it happened; record it). Without one, the session
  waits for a human: `safepoint send ID effect:<key> done` (it happened) or `... retry` (run it again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core import codec
from .context import RunContext
from .steps import now


class _NotDone:
    def __repr__(self) -> str:
        return "NOT_DONE"


#: What a reconcile function returns when the effect did not happen and may safely run.
NOT_DONE: Any = _NotDone()

IN_DOUBT_ANSWERS = {"type": "string", "enum": ["done", "retry"]}


def run_effect(
    session: RunContext,
    key: str,
    fn: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    reconcile: Callable[[str], Any] | None,
) -> Any:
    session.ensure_open()  # before the effect runs: a closed session could not record it
    effects = session.runtime.setdefault("effects", {})
    record = effects.get(key)
    if record is not None and record["status"] == "done":
        return record["result"]
    if record is not None and record["status"] == "intent":
        outcome = _resolve_in_doubt(session, key, record, reconcile)
        if outcome is not NOT_DONE:
            return _record_done(session, key, outcome, resolved=True)
    effects[key] = intent_record(record)
    session.save(step=f"effect {key}: intent")  # durable before the world is touched
    result = fn(*args, **kwargs)
    return _record_done(session, key, result)


def _resolve_in_doubt(
    session: RunContext, key: str, record: dict[str, Any], reconcile: Callable[[str], Any] | None
) -> Any:
    if reconcile is not None:
        outcome = reconcile(key)
        record["reconciled"] = "not done" if outcome is NOT_DONE else "done"
        return outcome
    question = f"effect:{key}"
    answer = session.wait_for(
        question,
        prompt=(
            f"effect {key!r} was started at {record['at']} but its result was never recorded (the process "
            "stopped mid-call). Did it happen? Answer 'done' if it did, 'retry' to run it again."
        ),
        schema=IN_DOUBT_ANSWERS,
    )
    # An answer covers this one doubt: if the retried call is interrupted too, a human is asked again.
    session.runtime["inputs"].pop(question, None)
    record["resolved_by"] = answer
    return None if answer == "done" else NOT_DONE


def intent_record(previous: dict[str, Any] | None) -> dict[str, Any]:
    """The record saved before an effect runs (`previous`: the key's earlier record, if any)."""
    return {"status": "intent", "at": now(), "attempt": (previous or {}).get("attempt", 0) + 1}


def done_record(key: str, result: Any, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record saved after an effect ran: its result as plain JSON (NotSerializable names the effect)."""
    plain = codec.copy(result, root=f"result of effect {key!r}", tuples=True)
    entry = {"status": "done", "result": plain, "at": now()}
    if previous is not None and "attempt" in previous:
        entry["attempt"] = previous["attempt"]
    return entry


def _record_done(session: RunContext, key: str, result: Any, *, resolved: bool = False) -> Any:
    entry = done_record(key, result)
    if resolved:
        entry["resolved_in_doubt"] = True
    session.runtime["effects"][key] = entry
    session.save(step=f"effect {key}")
    return entry["result"]
