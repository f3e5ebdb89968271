"""Durable timers: `s.sleep(seconds)` and the deadline of `wait_for(..., timeout=)`.

    s.sleep(3600)                                   # an hour, whether or not this process lives that long

A timer not yet due saves the session as `waiting` with `meta.wake_at` (its due time, ISO 8601 UTC) and raises
`Suspended`: the process may exit. A worker (any worker, started any time later) resumes the session once
`wake_at` has passed (`due`); the run replays to the same call, which now returns. Timers are keyed by name,
by default `sleep#<n>` in call order, so the same control flow finds the same timer again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import Suspended
from ..model import Checkpoint, Status
from .context import RunContext


def now() -> datetime:
    return datetime.now(UTC)


def sleep(session: RunContext, seconds: float, name: str | None = None) -> None:
    """Return once `seconds` have passed since this timer was first reached, suspending the run meanwhile."""
    if name is None:
        calls = session.call_counts
        calls["sleep"] = calls.get("sleep", 0) + 1
        name = f"sleep#{calls['sleep']}"
    timers = session.runtime.setdefault("timers", {})
    timer = timers.get(name)
    if timer is None:
        timer = timers[name] = {"until": (now() + timedelta(seconds=max(0.0, seconds))).isoformat()}
    if timer.get("fired") or datetime.fromisoformat(timer["until"]) <= now():
        if not timer.get("fired"):
            timer["fired"] = now().isoformat()
        return
    suspend(session, f"sleep {name}", f"sleeping until {timer['until']}", name)


def suspend(session: RunContext, step: str, prompt: str, name: str) -> None:
    """Save the session as waiting until its earliest timer (unless it already is, unchanged) and stop the run."""
    due = next_due(session.runtime)
    if not session.unchanged(Status.WAITING):
        session.save(step=step, status=Status.WAITING, ready=False, **({"wake_at": due} if due else {}))
    raise Suspended(session.id, name, prompt)


def next_due(runtime: dict[str, Any]) -> str | None:
    """The earliest time a pending timer or question deadline falls due, or None."""
    times = [t["until"] for t in (runtime.get("timers") or {}).values() if not t.get("fired")]
    times += [r["deadline"] for r in (runtime.get("inputs") or {}).values() if "answer" not in r and r.get("deadline")]
    return min(times, key=datetime.fromisoformat) if times else None


def overdue(request: dict[str, Any]) -> bool:
    """True when a question's deadline has passed."""
    deadline = request.get("deadline")
    return bool(deadline) and datetime.fromisoformat(deadline) <= now()


def due(head: Checkpoint, at: datetime | None = None) -> bool:
    """True when a waiting checkpoint's timer has fallen due (a worker should resume it)."""
    wake_at = head.meta.get("wake_at")
    return head.status == Status.WAITING and bool(wake_at) and datetime.fromisoformat(wake_at) <= (at or now())
