"""A commit record as the `Checkpoint` users see: its fields, its time parsed, its state when it was loaded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..model import FORMAT, Checkpoint, Status


def to_checkpoint(
    record: dict[str, Any], doc: dict[str, Any] | None = None, *, created_at: datetime | None = None
) -> Checkpoint:
    """The Checkpoint of a record (`created_at`: its time, when the caller has it unparsed)."""
    return Checkpoint(
        session=record["session"],
        seq=record["seq"],
        parent=record.get("parent"),
        created_at=created_at or datetime.fromisoformat(record["created_at"]),
        step=record.get("step"),
        status=Status(record["status"]),
        schema_version=record.get("schema_version", 1),
        format=record.get("format", FORMAT),
        checksum=record.get("_checksum", ""),
        meta=record.get("meta") or {},
        keyframe="root" in record,
        lease=record.get("lease"),
        state=doc["state"] if doc else None,
        runtime=doc.get("runtime", {}) if doc else {},
    )
