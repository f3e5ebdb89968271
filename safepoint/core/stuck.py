"""When a session needs a person: a run that stopped moving, a question left unanswered, an effect in doubt.

Defined once here so the CLI (`safepoint ls --stuck`), the dashboard's attention list and the MCP server's
`list_sessions(stuck=True)` agree. The figures come from what a session already stores: its checkpoints'
times, its lease and its runtime records; nothing is written to decide.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ..model import SessionInfo, Status


@dataclass(frozen=True)
class StuckPolicy:
    """When a session counts as stuck.

    A running session is stuck when its lease holder is gone (the lease expired or its process died) or
    when its last checkpoint is older than `factor` times the session's own median interval between recent
    checkpoints, and never sooner than `floor` seconds: an agent whose steps take an hour is not stuck after
    ten minutes, one whose steps take a second is after five. A waiting session is stuck once its question
    has waited `waiting_after` seconds. A session with an effect in doubt always needs a person.
    """

    factor: float = 5.0
    floor: float = 300.0
    waiting_after: float = 24 * 3600.0
    window: int = 20  # recent checkpoint intervals the median is taken over

    def __post_init__(self) -> None:
        for name in ("factor", "floor", "waiting_after"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"StuckPolicy.{name} must be a number >= 0, got {getattr(self, name)!r}")
        if self.window < 1:
            raise ValueError(f"StuckPolicy.window must be at least 1, got {self.window!r}")


@dataclass(frozen=True)
class LeaseView:
    """Who holds a session's lease and until when, as stuck detection needs it."""

    owner: str
    expires_at: float  # unix time
    live: bool  # held by a process that is still there and renewing


def median_interval(times: Sequence[datetime]) -> float | None:
    """The median time in seconds between consecutive checkpoints, or None with fewer than two."""
    ordered = sorted(times)
    gaps = [(b - a).total_seconds() for a, b in zip(ordered, ordered[1:], strict=False)]
    return statistics.median(gaps) if gaps else None


def stuck_reason(
    info: SessionInfo,
    *,
    in_doubt: Sequence[str],
    waiting_for: Sequence[str],
    recent_times: Sequence[datetime],
    lease: LeaseView | None,
    now: datetime,
    policy: StuckPolicy,
) -> str | None:
    """Why the session needs attention, in one line, or None when it does not."""
    if in_doubt:
        return f"effect {', '.join(in_doubt)} in doubt: started but never recorded as done"
    idle = max(0.0, (now - info.updated_at).total_seconds())
    if info.status is Status.RUNNING:
        if lease is not None and not lease.live:
            return f"running, but its lease holder {lease.owner} is gone (lease expired or process died)"
        usual = median_interval(recent_times)
        limit = max(policy.floor, policy.factor * usual) if usual is not None else policy.floor
        if idle > limit:
            usual_text = f"; its steps usually take {_duration(usual)}" if usual is not None else ""
            return f"running, but no checkpoint for {_duration(idle)}{usual_text}"
    if info.status is Status.WAITING and idle > policy.waiting_after:
        names = ", ".join(waiting_for) or "input"
        return f"waiting {_duration(idle)} for {names}"
    return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f}m"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
