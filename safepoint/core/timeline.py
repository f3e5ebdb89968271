"""A session's checkpoints as a timeline a person reads: what each step took, cost, retried and why it failed.

Figures per checkpoint come from its metadata and from the head's runtime records of the step it saved
(`runtime.steps[step]`: usage, attempts, error), so building it reads the history once and one document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..model import Checkpoint


@dataclass(frozen=True)
class TimelineRow:
    """One checkpoint as the timeline shows it."""

    checkpoint: Checkpoint
    duration: float | None  # seconds since the checkpoint before it (None for the first)
    tokens: float
    retries: int
    error: str | None
    audit: str | None  # who changed it by hand and how (manual edits, answers, resolutions), or None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.checkpoint.to_dict(),
            "duration": self.duration,
            "tokens": self.tokens,
            "retries": self.retries,
            "error": self.error,
            "audit": self.audit,
        }


def audit_note(checkpoint: Checkpoint) -> str | None:
    """How a person changed the session at this checkpoint, from its metadata; None for an agent's own save."""
    meta = checkpoint.meta
    if meta.get("manual_edit"):
        return f"{meta.get('how') or 'edit'} (by {meta.get('by') or 'cli'})"
    if "answer" in meta:
        return f"answered {meta['answer']} (by {meta.get('by') or 'cli'})"
    if "forked_from" in meta:
        origin = meta["forked_from"]
        return f"forked from {origin.get('session')} seq {origin.get('seq')}"
    return None


def timeline(history: list[Checkpoint], head_runtime: dict[str, Any]) -> list[TimelineRow]:
    """Rows for `history` (oldest first), with step figures from the head's runtime records."""
    steps = head_runtime.get("steps") or {}
    error = head_runtime.get("error") if isinstance(head_runtime.get("error"), dict) else None
    rows = []
    previous = None
    seen: set[str] = set()
    for cp in history:
        rec = steps.get(cp.step or "", {}) if cp.step else {}
        first_save = bool(rec) and cp.step not in seen  # a step's figures belong to the checkpoint it saved
        seen.add(cp.step or "")
        row_error = None
        if str(cp.status) == "failed":
            row_error = (error or {}).get("error") or rec.get("error")
        rows.append(
            TimelineRow(
                checkpoint=cp,
                duration=(cp.created_at - previous.created_at).total_seconds() if previous else None,
                tokens=float((rec.get("usage") or {}).get("tokens", 0)) if first_save else 0.0,
                retries=max(0, int(rec.get("attempts", 1)) - 1) if first_save else 0,
                error=row_error,
                audit=audit_note(cp),
            )
        )
        previous = cp
    return rows
