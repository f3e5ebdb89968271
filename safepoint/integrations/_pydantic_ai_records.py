"""pydantic-ai-harness's step records as plain JSON and back (runs, events, snapshots, tool effects).

Messages go through Pydantic AI's own `ModelMessagesTypeAdapter` in JSON mode: never pickle, and a snapshot
read back validates exactly as the harness's own stores validate theirs.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from datetime import datetime
from typing import Any

import orjson
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai_harness.step_persistence import ContinuableSnapshot, RunRecord, StepEvent, ToolEffectRecord

_TIMES = ("timestamp", "started_at", "ended_at")


def _plain(record: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out = {}
    for f in fields(record):
        if f.name in skip:
            continue
        value = getattr(record, f.name)
        out[f.name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _typed(cls: type, doc: dict[str, Any]) -> Any:
    doc = copy.deepcopy(doc)  # the caller gets its own objects, never the store's copy of the head
    known = {f.name for f in fields(cls)}
    values = {k: (datetime.fromisoformat(v) if k in _TIMES and v is not None else v) for k, v in doc.items()}
    return cls(**{k: v for k, v in values.items() if k in known})


def run_to_json(record: RunRecord) -> dict[str, Any]:
    doc = _plain(record)
    doc["metadata"] = dict(record.metadata)
    return doc


def run_from_json(doc: dict[str, Any]) -> RunRecord:
    return _typed(RunRecord, doc)


def event_to_json(event: StepEvent) -> dict[str, Any]:
    doc = _plain(event)
    doc["metadata"] = dict(event.metadata)
    return doc


def event_from_json(doc: dict[str, Any]) -> StepEvent:
    return _typed(StepEvent, doc)


def effect_to_json(record: ToolEffectRecord) -> dict[str, Any]:
    return _plain(record)


def effect_from_json(doc: dict[str, Any]) -> ToolEffectRecord:
    return _typed(ToolEffectRecord, doc)


def messages_to_json(messages: list[ModelMessage]) -> list[Any]:
    # To JSON bytes in pydantic-core, then parsed by orjson: about 5x faster than dump_python(mode="json").
    return orjson.loads(ModelMessagesTypeAdapter.dump_json(messages))


def snapshot_to_json(snapshot: ContinuableSnapshot) -> dict[str, Any]:
    """The snapshot's fields without its messages (those are kept beside it, see `snapshot_from_json`)."""
    return _plain(snapshot, skip=("messages",))


def snapshot_from_json(doc: dict[str, Any], messages: list[Any]) -> ContinuableSnapshot:
    snapshot = _typed(ContinuableSnapshot, {**doc, "messages": []})
    snapshot.messages = ModelMessagesTypeAdapter.validate_python(messages)
    return snapshot


def is_replayed_snapshot(key: str | None, recorded: list[str]) -> bool:
    """Whether a snapshot with idempotency `key` was already applied: the same key again (as the harness's file
    and SQLite stores decide; every key is kept, so a replayed older operation is always recognised)."""
    return key is not None and key in recorded


__all__ = [
    "effect_from_json",
    "effect_to_json",
    "event_from_json",
    "event_to_json",
    "is_replayed_snapshot",
    "messages_to_json",
    "run_from_json",
    "run_to_json",
    "snapshot_from_json",
    "snapshot_to_json",
]
