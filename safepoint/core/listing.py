"""Finding sessions in the summary index: filter, sort by last activity, paginate, and the attention list.

Works on the index entries (`core.session_index`) as plain dicts, so filtering 10,000 sessions builds no
objects; only the page shown becomes `SessionSummary`s. The CLI, the dashboard and the MCP server share it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from . import session_index
from .summary import SessionSummary

#: What a filter's `status` may name besides a checkpoint status: sessions with no checkpoint yet.
NEW = "new"


@dataclass(frozen=True)
class SessionFilter:
    """Which sessions to list: by status ("running", ..., "new"), agent, tag, and text in the id, agent, step,
    tags or error (case-insensitive). Empty fields match everything."""

    status: str | None = None
    agent: str | None = None
    tag: str | None = None
    text: str | None = None

    def matches(self, doc: dict[str, Any]) -> bool:
        if self.status and session_index.status_of(doc) != self.status:
            return False
        if self.agent and (doc.get("agent") or "") != self.agent:
            return False
        if self.tag and self.tag not in (doc.get("tags") or ()):
            return False
        if self.text:
            needle = self.text.casefold()
            head = doc.get("head") or {}
            hay = " ".join(
                str(part or "") for part in (doc["id"], doc.get("agent"), head.get("step"), doc.get("error"))
            )
            hay += " " + " ".join(doc.get("tags") or ())
            if needle not in hay.casefold():
                return False
        return True


@dataclass(frozen=True)
class Page:
    """One page of matching sessions, newest activity first, and how many matched in all."""

    items: list[dict[str, Any]]
    total: int
    offset: int
    limit: int

    @property
    def has_next(self) -> bool:
        return self.offset + self.limit < self.total


def page(docs: list[dict[str, Any]], where: SessionFilter, *, offset: int = 0, limit: int = 50) -> Page:
    """The entries matching `where`, newest activity first, from `offset`, at most `limit`."""
    found = [doc for doc in docs if where.matches(doc)] if where != SessionFilter() else list(docs)
    found.sort(key=session_index.updated_at, reverse=True)
    offset = max(0, offset)
    return Page(found[offset : offset + limit], len(found), offset, limit)


@dataclass(frozen=True)
class Overview:
    """The whole store at a glance: counts by status and agent, usage, and who needs a person."""

    sessions: int
    by_status: dict[str, int]
    by_agent: dict[str, int]
    tokens: float
    cost: float
    kept_tokens: float
    stuck: list[SessionSummary] = field(default_factory=list)
    waiting: list[SessionSummary] = field(default_factory=list)
    failed: list[SessionSummary] = field(default_factory=list)
    in_doubt: list[SessionSummary] = field(default_factory=list)
    #: how many sessions each list has in all (the lists above stop at a limit)
    totals: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "by_status": self.by_status,
            "by_agent": self.by_agent,
            "tokens": self.tokens,
            "cost": self.cost,
            "kept_tokens": self.kept_tokens,
            "totals": self.totals,
            **{name: [s.to_dict() for s in getattr(self, name)] for name in ("stuck", "waiting", "failed", "in_doubt")},
        }


def counts(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status and agent and usage sums over `docs` (the figures of an Overview)."""
    return {
        "sessions": len(docs),
        "by_status": dict(Counter(session_index.status_of(d) for d in docs)),
        "by_agent": dict(Counter(d.get("agent") or "" for d in docs)),
        "tokens": sum(d.get("tokens", 0) for d in docs),
        "cost": round(sum(d.get("cost", 0) for d in docs), 9),
        "kept_tokens": sum(d.get("kept_tokens", 0) for d in docs),
    }


def needs_look(doc: dict[str, Any]) -> bool:
    """Whether an entry may belong on the attention list (then its stuck reason is worth computing)."""
    return session_index.status_of(doc) in ("running", "waiting", "failed") or bool(doc.get("in_doubt"))
