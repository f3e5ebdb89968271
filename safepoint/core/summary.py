"""What front ends show of a session, computed once here: usage, progress, open questions, in-doubt effects.

The CLI, the dashboard and the MCP server all read these; none of them digs into `runtime` records itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..model import SessionInfo


def usage_totals(runtime: dict[str, Any]) -> dict[str, float]:
    """The session's usage so far (tokens, cost, steps_run and any counter an agent reported)."""
    return dict(runtime.get("usage") or {})


def done_steps(runtime: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records of the steps that finished, by name."""
    return {name: rec for name, rec in (runtime.get("steps") or {}).items() if rec.get("status") == "done"}


def kept_tokens(runtime: dict[str, Any]) -> int:
    """Tokens spent by the finished steps: what a resume replays from the record instead of spending again."""
    return sum(int(rec.get("usage", {}).get("tokens", 0)) for rec in done_steps(runtime).values())


def retries(runtime: dict[str, Any]) -> int:
    """Attempts beyond the first, over the finished steps (transient errors retried with back-off)."""
    return sum(max(0, int(rec.get("attempts", 1)) - 1) for rec in done_steps(runtime).values())


def waiting_for(runtime: dict[str, Any]) -> list[str]:
    """Names of the questions still waiting for an answer."""
    return sorted(name for name, r in (runtime.get("inputs") or {}).items() if "answer" not in r)


def questions(runtime: dict[str, Any]) -> dict[str, str]:
    """The prompt of each question still waiting for an answer, by name."""
    return {name: str(r.get("prompt", "")) for name, r in (runtime.get("inputs") or {}).items() if "answer" not in r}


def failure(runtime: dict[str, Any]) -> dict[str, Any] | None:
    """How the run failed, when it did: {"step", "error", "attempts", "at"} (step and attempts when a step failed)."""
    error = runtime.get("error")
    return dict(error) if isinstance(error, dict) else None


def in_doubt(runtime: dict[str, Any]) -> list[str]:
    """Keys of effects started but never recorded as done: the process stopped mid-call."""
    return sorted(key for key, r in (runtime.get("effects") or {}).items() if r.get("status") == "intent")


@dataclass(frozen=True)
class SessionSummary:
    """A session's identity, head and the figures a person scanning many sessions wants."""

    info: SessionInfo
    tokens: float = 0
    cost: float = 0
    steps_done: int = 0
    retries: int = 0
    waiting_for: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    error: str | None = None
    stuck: str | None = None  # why it needs a person (core.stuck), or None
    kept_tokens: float = 0  # tokens of finished steps: what a resume replays instead of spending again

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info.to_dict(),
            "tokens": self.tokens,
            "cost": self.cost,
            "steps_done": self.steps_done,
            "retries": self.retries,
            "waiting_for": self.waiting_for,
            "in_doubt": self.in_doubt,
            "error": self.error,
            "stuck": self.stuck,
            "kept_tokens": self.kept_tokens,
        }


def summarize(info: SessionInfo, runtime: dict[str, Any]) -> SessionSummary:
    """The summary of a session from its info and its head's runtime records."""
    usage = usage_totals(runtime)
    error = runtime.get("error")
    return SessionSummary(
        info=info,
        tokens=usage.get("tokens", 0),
        cost=usage.get("cost", 0),
        steps_done=len(done_steps(runtime)),
        retries=retries(runtime),
        waiting_for=waiting_for(runtime),
        in_doubt=in_doubt(runtime),
        error=error.get("error") if isinstance(error, dict) else None,
        kept_tokens=kept_tokens(runtime),
    )


@dataclass(frozen=True)
class Totals:
    """Sums over many sessions: how many by status and by agent, and the tokens and cost they spent."""

    sessions: int
    by_status: dict[str, int]
    by_agent: dict[str, int]
    tokens: float
    cost: float
    kept_tokens: float = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "by_status": self.by_status,
            "by_agent": self.by_agent,
            "tokens": self.tokens,
            "cost": self.cost,
            "kept_tokens": self.kept_tokens,
        }


def totals(summaries: Iterable[SessionSummary]) -> Totals:
    items = list(summaries)
    return Totals(
        sessions=len(items),
        by_status=dict(Counter(str(s.info.status) if s.info.status else "new" for s in items)),
        by_agent=dict(Counter(s.info.agent or "" for s in items)),
        tokens=sum(s.tokens for s in items),
        cost=round(sum(s.cost for s in items), 9),
        kept_tokens=sum(s.kept_tokens for s in items),
    )
