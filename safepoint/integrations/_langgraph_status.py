"""Where a LangGraph thread stands, as a safepoint status; and checkpoints that safepoint itself wrote on a thread.

LangGraph tells a checkpointer only what it stores, so the status is read from that:

- `put` of a checkpoint that holds work for a next step is `running`: StateGraph schedules a node by writing its
  `branch:to:<node>` channel (the input checkpoint holds `__start__`), a `Send` by writing `__pregel_tasks`, and
  any graph by updating a channel some node has been triggered by before (the keys of `versions_seen`). A
  checkpoint with none of these is where the graph stopped for good: `completed`.
- `put_writes` of an `__interrupt__` write against the thread's head is `waiting` (a node called `interrupt()`),
  of an `__error__` write `failed` (a node raised after its retries). No new LangGraph checkpoint exists then, so
  the saver commits the head again with the new status (`restatus`): the same LangGraph checkpoint, same id,
  which listings show once.
- Static breakpoints (`interrupt_before` / `interrupt_after`) stop a run without telling the checkpointer:
  such a thread stays `running` (see docs/langgraph.md).

A checkpoint committed by safepoint rather than the saver (`safepoint set`, `edit`, `cancel`, `fail`, `retry`)
has no LangGraph id. `adopt` gives it one, derived from its time and checksum (a version 6 UUID, so it orders
after its parent's id as LangGraph's own ids do), with its parent's id and `update` metadata, as LangGraph's
`update_state` would write: `get_state` reads the edited state, and the next run continues from it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from langgraph.checkpoint.serde.types import ERROR, INTERRUPT, TASKS

from ..model import Status

START = "__start__"
BRANCH = "branch:to:"
_UUID_EPOCH = 0x01B21DD213814000  # 1582-10-15 in 100 ns steps before the Unix epoch, as in UUID versions 1 and 6


def after_put(checkpoint: dict[str, Any]) -> Status:
    """`running` while `checkpoint` holds work for a next step, else `completed` (see the module docstring)."""
    values = checkpoint.get("channel_values") or {}
    if START in values or values.get(TASKS) or any(name.startswith(BRANCH) for name in values):
        return Status.RUNNING
    triggers = {c for node, seen in (checkpoint.get("versions_seen") or {}).items() if node != INTERRUPT for c in seen}
    return Status.RUNNING if triggers & set(checkpoint.get("updated_channels") or ()) else Status.COMPLETED


def after_writes(channels: Iterable[str]) -> Status | None:
    """The status a task's writes give the thread: `failed` for an error, `waiting` for an interrupt, else None."""
    found = set(channels)
    return Status.FAILED if ERROR in found else Status.WAITING if INTERRUPT in found else None


def lg(record: dict[str, Any]) -> dict[str, Any]:
    """The LangGraph part of a commit record's metadata (the checkpoint id, its parent's, the metadata...)."""
    return (record.get("meta") or {}).get("langgraph") or {}


def adopt(record: dict[str, Any], parent: Callable[[int], dict[str, Any] | None]) -> dict[str, Any]:
    """`record` as the saver reads it: a checkpoint safepoint committed on the thread gets a LangGraph id and
    metadata (see the module docstring); `parent(seq)` is the adopted record of another seq, or None."""
    meta = record.get("meta") or {}
    if "langgraph" in meta:
        return record
    above = parent(record["parent"]) if record.get("parent") else None
    above_lg = lg(above) if above is not None else {}
    step = (above_lg.get("metadata") or {}).get("step")
    metadata = {"source": "update", "step": step + 1 if isinstance(step, int) else -1, "parents": {}}
    metadata["safepoint_edit"] = meta.get("how") or "manual edit"
    synthesized = {
        "checkpoint_id": edit_id(record["created_at"], record["_checksum"]),
        "parent_checkpoint_id": above_lg.get("checkpoint_id"),
        "ts": record["created_at"],
        "metadata": metadata,
    }
    return {**record, "meta": {**meta, "langgraph": synthesized}}


def edit_id(created_at: str, checksum: str) -> str:
    """A version 6 UUID for a checkpoint safepoint wrote: its time, then bits of its checksum (deterministic)."""
    moment = datetime.fromisoformat(created_at)
    ticks = int(moment.timestamp()) * 10_000_000 + moment.microsecond * 10 + _UUID_EPOCH
    digits = int(checksum.rpartition(":")[2][:16] or "0", 16)
    value = ((ticks >> 12) & 0xFFFFFFFFFFFF) << 80 | (ticks & 0x0FFF) << 64 | 0x6 << 76
    value |= 0x8000 << 48 | (digits >> 48 & 0x3FFF) << 48 | digits & 0xFFFFFFFFFFFF
    return str(uuid.UUID(int=value))
