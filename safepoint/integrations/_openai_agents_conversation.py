"""One OpenAI Agents SDK session as a safepoint session: its items in the state, every change one conditional commit.

The state of each checkpoint is `{"items": [...], "run": ...}`: the conversation items in order, and the durable
run in progress, if any (see `_openai_agents_runs`). A change (add, pop, clear, a run pausing or finishing) reads
the head, builds the new state and commits it as the next seq, only if that seq is still free: the store's
conditional create, the commit point of every safepoint save. A writer that loses the race (another process, or
another `SafepointSession` on the same id) reads the new head and applies its change to it again: each operation
is defined on the conversation as it is when it lands (append these items, remove the last one), so retrying
loses nothing and forks nothing, as SQLite's row inserts behave for `SQLiteSession`.

Each commit is a delta against the writer's copy of the head (only the added items, or a splice for a pop), with a
keyframe of shared, content-addressed pages every 32 checkpoints: a long conversation costs O(change) on disk.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from ..core import codec
from ..core.history import Chain, Saved
from ..errors import ConflictError, FenceMismatch, SafepointError
from ..model import Status
from ..runtime.leases import Lease
from ..stores import Store

AGENT = "openai-agents"
ATTEMPTS = 200  # commits lost to other writers before giving up (each retry waits a little longer, up to 50 ms)

State = dict[str, Any]
Runtime = dict[str, Any]
#: What a change returns: the new state and runtime (or None: nothing to commit), the step name, the status,
#: extra commit meta, and the value handed back to the caller.
Change = tuple[State | None, Runtime, str, Status, dict[str, Any], Any]


class Conversation:
    """The items of one SDK session (a safepoint session of agent `openai-agents`). Thread-safe."""

    def __init__(self, store: Store, session_id: str) -> None:
        self.store = store
        self.chain = Chain(store, session_id)
        self._tip: Saved | None = None  # the head as this writer last read or wrote it
        self._checked = False  # the session record was found to be one of ours
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.chain.id

    def head(self) -> tuple[State, Runtime, Status | None, int]:
        """The head's state, runtime, status and seq (an empty conversation before the first commit). The
        containers are the writer's own: callers copy what they hand out."""
        with self._lock:
            return _parts(self._current())

    def change(self, fn: Callable[[State, Runtime, Status | None], Change], lease: Lease | None = None) -> Any:
        """Apply `fn` to the head and commit what it returns; on a lost race, to the new head again. With the
        `lease` of a durable run, the commit carries its fence (LeaseLost once another holder took it over)."""
        for attempt in range(ATTEMPTS):
            with self._lock:
                tip = self._current()
                state, runtime, status, seq = _parts(tip)
                new_state, new_runtime, step, new_status, meta, value = fn(state, runtime, status)
                if new_state is None:
                    return value
                if seq == 0:
                    self._create()
                try:
                    with lease.fence() if lease is not None else nullcontext() as fence:
                        self._tip = self.chain.commit(
                            {"state": new_state, "runtime": new_runtime},
                            seq=seq + 1,
                            parent=seq or None,
                            step=step,
                            status=new_status,
                            schema_version=1,
                            meta={"schema": "dict", **meta},
                            previous=tip,
                            lease=lease.token if lease is not None else None,
                            fence=fence,
                        )
                    return value
                except ConflictError:
                    self._tip = None  # another writer moved the head: read it again
                except FenceMismatch:
                    raise lease.lost() from None  # type: ignore[union-attr]
            time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise ConflictError(
            f"session {self.id!r}: {ATTEMPTS} commits in a row lost to other writers; nothing of this change was "
            "saved: try again"
        )

    def _current(self) -> Saved | None:
        """The head as a writer state (read again only when another writer has moved it)."""
        self._check_ours()
        seq = self.chain.head_seq()
        if seq == 0:
            self._tip = None
            return None
        tip = self._tip
        if (
            tip is not None
            and tip.checkpoint.seq == seq
            and tip.checkpoint.checksum == self.chain.record(seq)["_checksum"]
        ):
            return tip
        record, doc = self.chain.load(seq)
        self._tip = self.chain.resume_point(record, doc)
        return self._tip

    def _checksum(self, seq: int) -> str:
        return self.chain.record(seq)["_checksum"]

    def _check_ours(self) -> None:
        if self._checked:
            return
        info = self.chain.info()
        if info is not None and info.agent != AGENT:
            raise SafepointError(
                f"session {self.id!r} is a safepoint session of agent {info.agent!r}, not an OpenAI Agents SDK "
                "conversation; SafepointSession never writes into a session it did not create: use another id"
            )
        self._checked = info is not None

    def _create(self) -> None:
        self.chain.create(AGENT, [], None)
        self._checked = False
        self._check_ours()  # another writer may have created it meanwhile, as something else


def _parts(tip: Saved | None) -> tuple[State, Runtime, Status | None, int]:
    if tip is None:
        return {"items": [], "run": None}, {}, None, 0
    doc = tip.base
    return doc["state"], doc.get("runtime") or {}, tip.checkpoint.status, tip.checkpoint.seq


def private(value: Any, root: str) -> Any:
    """A copy of JSON data that shares nothing with the caller's (NotSerializable names a path under `root`)."""
    return codec.loads(codec.dumps(value, root=root))
