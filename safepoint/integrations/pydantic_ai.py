"""Pydantic AI on safepoint: pydantic-ai-harness's `StepStore` and `MemoryStore` over any safepoint store.

    from pydantic_ai_harness import StepPersistence
    from safepoint.integrations.pydantic_ai import DurableTools, SafepointStepStore

    steps = SafepointStepStore("sqlite:///agents.db")
    agent = Agent(model, capabilities=[StepPersistence(store=steps, capture_frontier=True), DurableTools(steps)])

How the harness's records map onto safepoint's (docs/pydantic-ai.md has the long form):

- A run (one `Agent.run`) is a safepoint session named by its run id, agent `pydantic-ai`. Every record the
  harness writes (registration, event, snapshot, tool effect) is that session's next checkpoint, whose state
  holds the run record, the latest snapshot's messages, the event trail and the tool-effect ledger. History is
  kept as deltas and shared tree objects, so a run costs what changed, not steps x history.
- `runtime.effects` mirrors the ledger (a `started` tool call is an in-doubt effect), so `safepoint ls / show /
  history / diff` read a run like a native session. `pydantic-ai/runs/<session>` indexes runs for `list_runs`.
- A record is appended by committing the next seq only if absent; a writer that loses the race reads the new
  head and appends again (the protocol's writes are appends and upserts, so they commute).
- `DurableTools` (safepoint's own capability) records each tool call's result, so a resumed run that executes
  a call again gets the recorded result instead of repeating the side effect (`_pydantic_ai_tools`).
- `SafepointMemoryStore` keeps a `Memory` namespace as one session (`_pydantic_ai_memory`).
"""

from __future__ import annotations

import hashlib
import os
from functools import partial
from typing import Any

import anyio.to_thread
from pydantic_ai_harness.step_persistence import ContinuableSnapshot, RunRecord, StepEvent, ToolEffectRecord

from ..core import codec
from ..core.history import check_session_id
from ..errors import InvalidSessionId, SafepointError
from ..model import Status
from ..repository import Repository
from ..stores import Store, open_store
from . import _pydantic_ai_records as rec
from ._documents import Documents, Head
from ._pydantic_ai_memory import SafepointMemoryStore
from ._pydantic_ai_tools import DurableTools, ToolCallInDoubt

__all__ = ["AGENT", "DurableTools", "SafepointMemoryStore", "SafepointStepStore", "ToolCallInDoubt", "session_id_for"]

#: The `agent` of every run session this store creates; other sessions are never written to.
AGENT = "pydantic-ai"
_RUNS = "pydantic-ai/runs/"


def session_id_for(run_id: str) -> str:
    """The safepoint session holding a run: the run id itself when it makes a session id, else a hash of it."""
    try:
        return check_session_id(run_id)
    except InvalidSessionId:
        return "#pydantic-ai-" + hashlib.sha256(str(run_id).encode("utf-8", "surrogatepass")).hexdigest()[:40]


def _empty() -> dict[str, Any]:
    return {"run": None, "messages": None, "snapshot": None, "events": [], "tool_effects": [], "snapshot_keys": []}


def _status(state: dict[str, Any]) -> Status:
    """Completed or failed once the run's last event says so (the harness writes nothing after it), else running."""
    last = state["events"][-1]["kind"] if state["events"] else None
    return {"run_completed": Status.COMPLETED, "run_failed": Status.FAILED}.get(last, Status.RUNNING)


def _meta(op: str, **more: Any) -> dict[str, Any]:
    return {"pydantic_ai": {"op": op, **more}}


class SafepointStepStore:
    """pydantic-ai-harness's `StepStore` on any safepoint store: each run a session, each record a checkpoint.

    `SafepointStepStore("sqlite:///agents.db")`, `SafepointStepStore("./.safepoint")`, or a `Repository` /
    `Store`. The async methods run the synchronous core in a worker thread.
    """

    def __init__(self, store: Store | Repository | str | os.PathLike[str] | None = None) -> None:
        self.store = store.store if isinstance(store, Repository) else open_store(store)
        self._docs = Documents(self.store, AGENT)

    @property
    def repository(self) -> Repository:
        """The same store seen through safepoint's own API (sessions, history, diff, fsck...)."""
        return Repository(self.store)

    def __repr__(self) -> str:
        return f"SafepointStepStore({self.store.url!r})"

    # --- the StepStore protocol -------------------------------------------------------------------------
    async def register_run(self, record: RunRecord) -> None:
        await anyio.to_thread.run_sync(self.register_run_sync, record)

    async def get_run(self, *, run_id: str) -> RunRecord | None:
        return await anyio.to_thread.run_sync(self.get_run_sync, run_id)

    async def list_runs(
        self, *, parent_run_id: str | None = None, conversation_id: str | None = None
    ) -> list[RunRecord]:
        return await anyio.to_thread.run_sync(self.list_runs_sync, parent_run_id, conversation_id)

    async def append_event(self, event: StepEvent) -> None:
        await anyio.to_thread.run_sync(self.append_event_sync, event)

    async def list_events(self, *, run_id: str) -> list[StepEvent]:
        return await anyio.to_thread.run_sync(self.list_events_sync, run_id)

    async def save_snapshot(self, snapshot: ContinuableSnapshot) -> None:
        await anyio.to_thread.run_sync(self.save_snapshot_sync, snapshot)

    async def latest_snapshot(self, *, run_id: str, include_interrupted: bool = False) -> ContinuableSnapshot | None:
        return await anyio.to_thread.run_sync(partial(self.latest_snapshot_sync, run_id, include_interrupted))

    async def list_snapshots(self, *, run_id: str, include_interrupted: bool = False) -> list[ContinuableSnapshot]:
        """Every snapshot of a run in write order (outside the protocol; `conversation_search` reads it)."""
        return await anyio.to_thread.run_sync(partial(self.list_snapshots_sync, run_id, include_interrupted))

    async def record_tool_effect(self, record: ToolEffectRecord) -> None:
        await anyio.to_thread.run_sync(self.record_tool_effect_sync, record)

    async def get_tool_effect(self, *, run_id: str, tool_call_id: str) -> ToolEffectRecord | None:
        return await anyio.to_thread.run_sync(self.get_tool_effect_sync, run_id, tool_call_id)

    async def list_unresolved_tool_effects(self, *, run_id: str) -> list[ToolEffectRecord]:
        return await anyio.to_thread.run_sync(self.list_unresolved_tool_effects_sync, run_id)

    # --- the same, synchronously ------------------------------------------------------------------------
    def register_run_sync(self, record: RunRecord) -> None:
        """Register a run; ValueError when another registration already claimed its run id."""
        run = rec.run_to_json(record)

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            prior = state["run"]
            if prior is not None:
                if prior.get("registration_id") is not None and prior.get("registration_id") == run["registration_id"]:
                    return None  # the same registration, retried
                raise ValueError(
                    f"run_id {record.run_id!r} is already registered in {self.store.url} (safepoint session "
                    f"{doc.id!r}); run ids are single-shot: pass conversation_id= to Agent.run to group turns"
                )
            state["run"] = run
            return "run registered", _status(state), _meta("register")

        doc = self._doc(record.run_id, create=True, tags=self._tags(record.agent_name, record.conversation_id))
        doc.update(change, _empty)
        index = {"run": run, "session": doc.id}
        self.store.put(_RUNS + doc.chain.segment, codec.seal(codec.dumps(index)))

    def get_run_sync(self, run_id: str) -> RunRecord | None:
        state = self._state(run_id)
        return rec.run_from_json(state["run"]) if state and state["run"] else None

    def list_runs_sync(self, parent_run_id: str | None = None, conversation_id: str | None = None) -> list[RunRecord]:
        runs = []
        for key in self.store.list(_RUNS):
            blob = self.store.get(key)
            if blob is None:
                continue
            run = codec.load_sealed(blob, key)["run"]
            if parent_run_id is not None and run.get("parent_run_id") != parent_run_id:
                continue
            if conversation_id is not None and run.get("conversation_id") != conversation_id:
                continue
            runs.append(rec.run_from_json(run))
        return sorted(runs, key=lambda r: r.started_at)

    def append_event_sync(self, event: StepEvent) -> None:
        """Append an event; one whose idempotency key is already in the trail is a retry and changes nothing."""
        entry = rec.event_to_json(event)

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            key = entry["idempotency_key"]
            if key is not None and any(e.get("idempotency_key") == key for e in state["events"]):
                return None
            state["events"] = [*state["events"], entry]
            if event.kind == "run_failed":
                runtime["error"] = {"error": event.error or "the run failed", "at": entry["timestamp"]}
            step = f"{event.kind} {event.tool_name}" if event.tool_name else event.kind
            return step, _status(state), _meta("event", kind=event.kind)

        doc = self._doc(event.run_id, create=True, tags=self._tags(event.agent_name, event.conversation_id))
        doc.update(change, _empty)

    def list_events_sync(self, run_id: str) -> list[StepEvent]:
        state = self._state(run_id)
        return [rec.event_from_json(e) for e in state["events"]] if state else []

    def save_snapshot_sync(self, snapshot: ContinuableSnapshot) -> None:
        """Save a snapshot as the run's next checkpoint; a replayed idempotency key changes nothing."""
        fields = rec.snapshot_to_json(snapshot)
        messages = rec.messages_to_json(snapshot.messages)

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            if rec.is_replayed_snapshot(snapshot.idempotency_key, state["snapshot_keys"]):
                return None
            if snapshot.idempotency_key is not None:
                state["snapshot_keys"] = [*state["snapshot_keys"], snapshot.idempotency_key]
            state["snapshot"], state["messages"] = fields, messages
            step = f"snapshot {snapshot.state} (step {snapshot.step_index})"
            return step, _status(state), _meta("snapshot", state=snapshot.state)

        doc = self._doc(snapshot.run_id, create=True, tags=self._tags(snapshot.agent_name, snapshot.conversation_id))
        doc.update(change, _empty)

    def latest_snapshot_sync(self, run_id: str, include_interrupted: bool = False) -> ContinuableSnapshot | None:
        """The newest `complete` snapshot (the newest of any state with `include_interrupted`)."""
        for snapshot in self._snapshots(run_id, include_interrupted, newest_first=True):
            return snapshot
        return None

    def list_snapshots_sync(self, run_id: str, include_interrupted: bool = False) -> list[ContinuableSnapshot]:
        return list(self._snapshots(run_id, include_interrupted, newest_first=False))

    def record_tool_effect_sync(self, record: ToolEffectRecord) -> None:
        """Upsert the ledger entry of (run id, tool call id): the latest record wins, in first-seen order."""
        entry = rec.effect_to_json(record)

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            ledger = list(state["tool_effects"])
            at = next((i for i, e in enumerate(ledger) if e["tool_call_id"] == record.tool_call_id), None)
            if at is None:
                ledger.append(entry)
            else:
                ledger[at] = entry
            state["tool_effects"] = ledger
            mirrored = {"started": "intent", "completed": "done", "failed": "failed"}[record.status]
            runtime["effects"] = dict(runtime.get("effects") or {})
            runtime["effects"][f"tool:{record.tool_call_id}"] = {
                "status": mirrored,
                "tool": record.tool_name,
                "at": entry["ended_at"] or entry["started_at"],
            }
            return f"tool {record.tool_name} {record.status}", _status(state), _meta("tool_effect")

        self._doc(record.run_id, create=True, tags=[]).update(change, _empty)

    def get_tool_effect_sync(self, run_id: str, tool_call_id: str) -> ToolEffectRecord | None:
        state = self._state(run_id)
        for entry in (state or {}).get("tool_effects", []):
            if entry["tool_call_id"] == tool_call_id:
                return rec.effect_from_json(entry)
        return None

    def list_unresolved_tool_effects_sync(self, run_id: str) -> list[ToolEffectRecord]:
        """Tool calls whose latest record is `started`: in flight when the process last wrote."""
        state = self._state(run_id)
        ledger = (state or {}).get("tool_effects", [])
        return [rec.effect_from_json(e) for e in ledger if e["status"] == "started"]

    def delete_run(self, run_id: str) -> None:
        """Delete a run's session and its index entry (safepoint's own addition; objects go at the next gc)."""
        doc = self._doc(run_id, create=False)
        if doc is not None:
            doc.delete()
            self._docs.forget(doc.id)
            self.store.delete(_RUNS + doc.chain.segment)

    # --- helpers ------------------------------------------------------------------------------------------
    def _doc(self, run_id: str, *, create: bool, tags: list[str] | None = None):
        if not isinstance(run_id, str) or not run_id:
            raise SafepointError(f"run_id must be a non-empty string, got {run_id!r}")
        doc = self._docs.get(session_id_for(run_id))
        if doc.exists():
            return doc
        if not create:
            return None
        doc.create(tags or [])
        return doc

    @staticmethod
    def _tags(agent_name: str | None, conversation_id: str | None) -> list[str]:
        return [
            t
            for t in (agent_name and f"agent={agent_name}", conversation_id and f"conversation={conversation_id}")
            if t
        ]

    def _state(self, run_id: str) -> dict[str, Any] | None:
        doc = self._doc(run_id, create=False)
        return None if doc is None else doc.head().state

    def _snapshots(self, run_id: str, include_interrupted: bool, *, newest_first: bool):
        doc = self._doc(run_id, create=False)
        if doc is None:
            return
        head = doc.head()
        seqs = doc.chain.seqs()
        for seq in reversed(seqs) if newest_first else seqs:
            meta = (doc.chain.record(seq).get("meta") or {}).get("pydantic_ai") or {}
            if meta.get("op") != "snapshot" or (meta.get("state") != "complete" and not include_interrupted):
                continue
            state = head.state if seq == head.seq else doc.load(seq)[1]
            yield rec.snapshot_from_json(state["snapshot"], state["messages"])
