"""Questions to a human: the session saves the request, stops, and resumes when the answer is delivered.

    approved = s.wait_for("approve", prompt="Approve this outline?", schema=bool)

The first run saves the request (status `waiting`) and raises `Suspended`: the process may exit, holding
nothing open, for seconds or for weeks. `safepoint send ID approve true` (or `Repository.send`) checks the
answer against the schema, records it and marks the session ready; the next run returns the answer here.
On a store with notifications (PostgreSQL's LISTEN/NOTIFY) the answer also wakes the listening workers at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, TypeAdapter

from ..core import codec, tracing
from ..core.history import Chain
from ..errors import InvalidAnswer, SafepointError
from ..model import Status
from . import timers
from .context import RunContext
from .steps import now
from .wake import wake


def json_schema(schema: Any) -> dict[str, Any] | None:
    """A JSON Schema for what `schema` names: a JSON Schema dict, a pydantic model or a Python type."""
    if schema is None or isinstance(schema, dict):
        return schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return TypeAdapter(schema).json_schema()


def wait_for(
    session: RunContext, name: str, prompt: str, schema: Any = None, timeout: float | None = None, default: Any = None
) -> Any:
    with tracing.span("safepoint.wait_for", {"safepoint.session.id": session.id, "safepoint.input.name": name}) as span:
        inputs = session.runtime.setdefault("inputs", {})
        request = inputs.get(name)
        if request is not None and "answer" not in request and timers.overdue(request):
            request.update(answer=default, answered_at=now(), by="timeout")  # nobody answered in time
        if request is not None and "answer" in request:
            span.set_attribute("safepoint.input.outcome", "timed_out" if request.get("by") == "timeout" else "answered")
            answer = request["answer"]
            if isinstance(schema, type) and issubclass(schema, BaseModel) and request.get("by") != "timeout":
                return schema.model_validate(answer)
            return answer
        if request is None:  # asked again by a resume that found no answer: the same request, nothing new to save
            request = inputs[name] = {"prompt": prompt, "schema": json_schema(schema), "asked_at": now()}
            if timeout is not None:
                request["deadline"] = (timers.now() + timedelta(seconds=max(0.0, timeout))).isoformat()
        session.runtime["ready"] = False
        span.set_attributes(
            {"safepoint.input.outcome": "suspended", "safepoint.input.deadline": request.get("deadline")}
        )
        timers.suspend(session, f"waiting for {name}", prompt, name)


def pending(runtime: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Requests still waiting for an answer."""
    return {name: r for name, r in runtime.get("inputs", {}).items() if "answer" not in r}


def deliver(chain: Chain, name: str, value: Any, *, by: str = "cli") -> int:
    """Record the answer to request `name` of the session's head; returns the new checkpoint's seq."""
    head = chain.head_seq()
    if head == 0:
        raise SafepointError(f"session {chain.id!r} has no checkpoints, so it asked nothing")
    record, doc = chain.load(head)
    runtime = doc.setdefault("runtime", {})
    waiting = pending(runtime)
    if name not in waiting:
        asked = ", ".join(sorted(waiting)) or "nothing"
        raise InvalidAnswer(
            f"session {chain.id!r} is not waiting for {name!r} (it waits for: {asked}); nothing was changed"
        )
    schema = waiting[name].get("schema")
    if schema is not None:
        import jsonschema  # here, not at the top: importing it is a tenth of every CLI command's start

        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            raise InvalidAnswer(
                f"answer to {name!r} for session {chain.id!r} refused: {exc.message}"
                + (f" at {where}" if where else "")
                + "; nothing was changed"
            ) from None
    codec.dumps(value, root=f"answer to {name!r}")
    waiting[name].update(answer=value, answered_at=now(), by=by)
    runtime["ready"] = not pending(runtime)
    chain.mark_open()  # an answered session is work for a worker (see safepoint.core.open_sessions)
    saved = chain.commit(
        doc,
        seq=head + 1,
        parent=head,
        step=f"answered {name}",
        status=Status(record["status"]),
        schema_version=record.get("schema_version", 1),
        meta={
            "answer": name,
            "by": by,
            "ready": runtime["ready"],
            "schema": record.get("meta", {}).get("schema"),
            **({"wake_at": record["meta"]["wake_at"]} if record.get("meta", {}).get("wake_at") else {}),
        },
        previous=None,
    )
    if runtime["ready"]:
        wake(chain.store, chain.id)
    return saved.checkpoint.seq
