"""A safepoint session whose state is one JSON document, changed by commits: what the adapters build on.

The Pydantic AI and ADK adapters keep each framework record (a run, an ADK session, a memory namespace) as a
safepoint session. Every change is the next checkpoint, created only if absent, so history is kept as deltas and
shared tree objects (O(change) on disk) and two writers can never both commit the same seq: the loser gets
`ConflictError` and decides, through `update`, whether to re-apply its change on the new head (appends commute)
or to refuse (a stale writer).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.history import Chain, Saved
from ..errors import ConflictError, SafepointError
from ..model import Status
from ..stores import Store

#: How often `update` re-reads the head and re-applies a change after losing a commit race.
RETRIES = 20
_CACHED = 256


@dataclass
class Head:
    """A document as committed: its seq (0: none yet), checksum, state and runtime records, and its record."""

    seq: int
    marker: str
    state: Any
    runtime: dict[str, Any]
    record: dict[str, Any] | None


class Document:
    """One session, read at its head and changed by committing the next seq."""

    def __init__(self, store: Store, session_id: str, agent: str) -> None:
        self.store = store
        self.chain = Chain(store, session_id)
        self.agent = agent
        self.lock = threading.RLock()
        self._tip: Saved | None = None

    @property
    def id(self) -> str:
        return self.chain.id

    def exists(self) -> bool:
        info = self.chain.info()
        if info is not None and info.agent != self.agent:
            raise SafepointError(
                f"session {self.id!r} exists and belongs to agent {info.agent!r}, not {self.agent!r}; "
                "use another id, or another store"
            )
        return info is not None

    def head(self) -> Head:
        """The latest committed document (seq 0 and state None when the session has no checkpoint)."""
        with self.lock:
            seq = self.chain.head_seq()
            if not seq:
                return Head(0, "", None, {}, None)
            record = self.chain.record(seq)
            tip = self._tip
            if tip is None or tip.checkpoint.seq != seq or tip.checkpoint.checksum != record.get("_checksum"):
                record, doc = self.chain.load(seq)
                tip = self._tip = self.chain.resume_point(record, doc)
            base = tip.base
            return Head(seq, f"{seq}:{record.get('_checksum')}", base["state"], base.get("runtime") or {}, record)

    def load(self, seq: int) -> tuple[dict[str, Any], Any]:
        record, doc = self.chain.load(seq)
        return record, doc["state"]

    def create(self, tags: list[str]) -> bool:
        """Write the session record unless it exists (True when this call did)."""
        with self.lock:
            if self.exists():
                return False
            created = self.chain.create(self.agent, tags, None)
            if not created:
                self.exists()  # raced by another writer: refuse if it is not ours
            return created

    def commit(
        self,
        head: Head,
        state: Any,
        runtime: dict[str, Any],
        *,
        step: str,
        status: Status = Status.RUNNING,
        meta: dict[str, Any] | None = None,
    ) -> Head:
        """Commit `state` as seq `head.seq + 1`; ConflictError when another writer committed it first."""
        with self.lock:
            previous = (
                self._tip if head.seq and self._tip is not None and self._tip.checkpoint.seq == head.seq else None
            )
            try:
                saved = self.chain.commit(
                    {"state": state, "runtime": runtime},
                    seq=head.seq + 1,
                    parent=head.seq or None,
                    step=step,
                    status=status,
                    schema_version=1,
                    meta=meta or {},
                    previous=previous,
                )
            except ConflictError:
                self._tip = None
                raise
            self._tip = saved
            return Head(head.seq + 1, f"{head.seq + 1}:{saved.checkpoint.checksum}", state, runtime, None)

    def update(
        self,
        change: Callable[[Head, Any, dict[str, Any]], tuple[str, Status, dict[str, Any]] | None],
        empty: Callable[[], Any] | None = None,
    ) -> Head:
        """Apply `change(head, state, runtime)` to copies of the head's state (`empty()` when the session has
        no checkpoint yet) and commit them; on losing the race to another writer, read the new head and apply it
        again. `change` gets shallow copies of the head's state and runtime dicts: it may set their keys, but must
        replace, never mutate, any container inside them (those are the head's own); it returns (step, status,
        meta), or None to commit nothing, and raises to refuse."""
        for _ in range(RETRIES):
            with self.lock:
                head = self.head()
                # Shallow copies: `change` replaces what it changes, so the rest stays shared with the head and
                # the commit's diff skips it by identity (O(change), not O(state)).
                state = dict(head.state) if head.state is not None else (empty() if empty is not None else None)
                runtime = dict(head.runtime)
                outcome = change(head, state, runtime)
                if outcome is None:
                    return head
                step, status, meta = outcome
                try:
                    return self.commit(head, state, runtime, step=step, status=status, meta=meta)
                except ConflictError:
                    continue
        raise ConflictError(
            f"session {self.id!r}: {RETRIES} commits in a row lost to other writers; the session is being "
            "written too fast by too many processes, try again"
        )

    def delete(self) -> None:
        """Delete the session's checkpoints and its record (unreferenced objects go at the next gc)."""
        with self.lock:
            self.chain.delete_all()
            for key in (self.chain.head_key, self.chain.info_key):
                self.store.delete(key)
            self._tip = None


class Documents:
    """The documents of one store, one object per session id (so a process has one lock per session)."""

    def __init__(self, store: Store, agent: str) -> None:
        self.store = store
        self.agent = agent
        self._open: OrderedDict[str, Document] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> Document:
        with self._lock:
            doc = self._open.get(session_id)
            if doc is None:
                doc = self._open[session_id] = Document(self.store, session_id, self.agent)
            self._open.move_to_end(session_id)
            while len(self._open) > _CACHED:
                self._open.popitem(last=False)
            return doc

    def forget(self, session_id: str) -> None:
        with self._lock:
            self._open.pop(session_id, None)
