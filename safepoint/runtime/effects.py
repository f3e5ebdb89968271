"""Side effects under an idempotency key: the intent is saved before the call, the result after it.

    receipt = s.effect("email:report-42", send_email, to, body, reconcile=lambda key: mailer.lookup(key))

- done (result recorded): the recorded result is returned; `fn` never runs again.
- intent recorded, no result: the process stopped mid-call, so nobody knows whether it happened. It is
  *in doubt* and never silently re-run. With `reconcile`, safepoint asks the outside system: reconcile(key)
  returns `NOT_DONE` (run it now) or the effect's result (it happened; record it). Without one, the session
  waits for a human: `safepoint send ID effect:<key> done` (it happened) or `... retry` (run it again).
  `resolve` (Repository.resolve_effect, `safepoint resolve`, the dashboard) settles it from outside, also with
  the result the call had.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core import codec, tracing
from ..core.history import Chain
from ..errors import InvalidAnswer
from ..model import Status
from .context import RunContext
from .inputs import pending
from .steps import now
from .wake import wake

_log = tracing.logger("runtime")


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
    with tracing.span("safepoint.effect", {"safepoint.session.id": session.id, "safepoint.effect.key": key}) as span:
        effects = session.runtime.setdefault("effects", {})
        record = effects.get(key)
        if record is not None and record["status"] == "done":
            span.set_attribute("safepoint.effect.outcome", "replayed")
            return record["result"]
        if record is not None and record["status"] == "intent":
            span.set_attribute("safepoint.effect.outcome", "in_doubt")  # until it is settled, below
            _log.warning(
                "session %r: effect %r is in doubt (started, result never recorded)",
                session.id,
                key,
                extra={"session": session.id, "effect": key, "outcome": "in_doubt", "reconcile": reconcile is not None},
            )
            outcome = _resolve_in_doubt(session, key, record, reconcile)
            if outcome is not NOT_DONE:
                span.set_attribute("safepoint.effect.outcome", "resolved")
                return _record_done(session, key, outcome, resolved=True)
        effects[key] = intent_record(record)
        span.set_attribute("safepoint.effect.attempt", effects[key]["attempt"])
        session.save(step=f"effect {key}: intent")  # durable before the world is touched
        result = fn(*args, **kwargs)
        span.set_attribute("safepoint.effect.outcome", "executed")
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


def resolve(chain: Chain, key: str, outcome: str, result: Any = None, *, by: str = "api") -> int:
    """Settle effect `key` of the session's head, in doubt: "done" records `result` as its result, "retry" lets
    the next run call it again. The question the session may be waiting on for it is withdrawn. Returns the new
    checkpoint's seq; InvalidAnswer (nothing changed) when the effect is not in doubt or the outcome is unknown."""
    if outcome not in IN_DOUBT_ANSWERS["enum"]:
        raise InvalidAnswer(
            f"outcome {outcome!r} for effect {key!r} refused: say 'done' or 'retry'; nothing was changed"
        )
    head = chain.head_seq()
    record, doc = chain.load(head) if head else ({}, {})
    runtime = doc.setdefault("runtime", {}) if doc else {}
    found = (runtime.get("effects") or {}).get(key)
    if found is None or found.get("status") != "intent":
        doubt = ", ".join(sorted(k for k, r in (runtime.get("effects") or {}).items() if r.get("status") == "intent"))
        raise InvalidAnswer(
            f"effect {key!r} of session {chain.id!r} is not in doubt (in doubt: {doubt or 'none'}); nothing was changed"
        )
    if outcome == "done":
        plain = codec.loads(codec.dumps(result, root=f"result of effect {key!r}"))
        runtime["effects"][key] = {"status": "done", "result": plain, "at": now(), "resolved_in_doubt": True, "by": by}
    else:
        runtime["effects"][key] = {**found, "status": "retry", "resolved_by": by, "resolved_at": now()}
    # An answer left behind would settle the next doubt of this key without asking: withdraw the question.
    (runtime.get("inputs") or {}).pop(f"effect:{key}", None)
    status = Status(record["status"])
    meta = {
        "manual_edit": True,
        "how": f"resolve effect {key}: {outcome}",
        "by": by,
        "schema": record["meta"].get("schema"),
    }
    if status is Status.WAITING:
        runtime["ready"] = meta["ready"] = not pending(runtime)
    chain.mark_open()  # work for a worker again (see safepoint.core.open_sessions)
    saved = chain.commit(
        doc,
        seq=head + 1,
        parent=head,
        step=f"resolved effect {key}: {outcome}",
        status=status,
        schema_version=record.get("schema_version", 1),
        meta=meta,
        previous=None,
    )
    if status is not Status.WAITING or runtime["ready"]:
        wake(chain.store, chain.id)
    return saved.checkpoint.seq
