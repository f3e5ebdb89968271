"""The saver's view of a thread's commit records: reading them, finding a LangGraph checkpoint id, refusing a put
that lost a race, and committing the head again with a new status (see `_langgraph_status`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..core.history import Chain, Saved
from ..errors import CheckpointNotFound, ConflictError
from ..model import Status
from ..stores import Store
from ._langgraph_history import History
from ._langgraph_keys import id_key
from ._langgraph_status import adopt, lg
from ._langgraph_values import Seen


@dataclass
class Thread:
    """What the saver keeps between calls about one thread in one namespace (one safepoint session)."""

    thread_id: str
    ns: str
    chain: Chain
    lock: threading.RLock = field(default_factory=threading.RLock)
    tip: Saved | None = None  # writer state of the head as this process last wrote or loaded it
    seen: dict[str, Seen | None] = field(default_factory=dict)  # per list channel: messages as last saved
    # The status an interrupt or error written against a checkpoint not yet put gives it (writes may come first).
    early: dict[str, Status] = field(default_factory=dict)


class ThreadRecords:
    """Mixed into the saver: reading and checking a thread's records."""

    store: Store

    def _head(self, t: Thread) -> tuple[int, dict[str, Any] | None]:
        seq = t.chain.head_seq()
        return seq, (self._adopted(t, t.chain.record(seq)) if seq else None)

    def _adopted(self, t: Thread, record: dict[str, Any], h: History | None = None) -> dict[str, Any]:
        """`record` as the saver reads it: one safepoint committed gets a LangGraph id (see `adopt`)."""
        return adopt(record, lambda seq: self._record(t, seq, h))

    def _record(self, t: Thread, seq: int, h: History | None = None) -> dict[str, Any] | None:
        """The commit record of `seq` as the saver reads it (see `adopt`), or None when it is gone."""
        try:
            record = t.chain.record(seq) if h is None else h.record(seq)
        except CheckpointNotFound:
            return None
        return self._adopted(t, record, h)

    def _records(self, t: Thread) -> dict[int, dict[str, Any]]:
        return {seq: record for seq in t.chain.seqs() if (record := self._record(t, seq)) is not None}

    def _find(
        self, t: Thread, checkpoint_id: str, mark: Any, head: int, head_record: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any]] | None:
        """(seq, record) of a LangGraph checkpoint id: the head, the config's mark, the id index, then a scan."""
        if head_record is not None and lg(head_record).get("checkpoint_id") == checkpoint_id:
            return head, head_record
        guesses = [mark[0]] if isinstance(mark, list) and mark and isinstance(mark[0], int) else []
        hint = self.store.get(id_key(t.chain.segment, checkpoint_id))
        if hint is not None and hint.isdigit():
            guesses.append(int(hint))
        for seq in guesses:
            record = self._record(t, seq)
            if record is not None and lg(record).get("checkpoint_id") == checkpoint_id:
                # The checkpoint committed again with a new status since this mark was handed out: the newest one.
                while seq < head and (later := self._record(t, seq + 1)) is not None:
                    if lg(later).get("checkpoint_id") != checkpoint_id:
                        break
                    seq, record = seq + 1, later
                return seq, record
        for seq in reversed(t.chain.seqs()):
            record = self._record(t, seq)
            if record is not None and lg(record).get("checkpoint_id") == checkpoint_id:
                self.store.put_hint(id_key(t.chain.segment, checkpoint_id), str(seq).encode())
                return seq, record
        return None

    def _refuse_race(
        self,
        t: Thread,
        parent_id: str | None,
        parent: int | None,
        mark: Any,
        head: int,
        head_record: dict[str, Any] | None,
        metadata: dict[str, Any],
    ) -> None:
        """ConflictError when this put continues from a checkpoint another writer already moved past.

        A put continues from the checkpoint its run loaded as the thread's latest (the config's mark says which
        seq was the head then), so a parent older than the head is a race unless the config addressed an older
        checkpoint than the head it saw: that is a branch (update_state or a replay from get_state_history).
        """
        if parent_id is None:
            if head and metadata.get("step") == -1 and metadata.get("source") == "input":
                raise ConflictError(self._conflict(t, None, "another writer started this thread first"))
            return
        if parent is None or parent == head:
            return
        valid = isinstance(mark, list) and len(mark) == 2 and mark[0] == parent and isinstance(mark[1], int)
        seen = mark[1] if valid else parent
        if parent >= seen:
            head_id = lg(head_record or {}).get("checkpoint_id")
            raise ConflictError(
                self._conflict(t, parent_id, f"the thread has moved on to checkpoint {head_id} (seq {head})")
            )

    def _conflict(self, t: Thread, parent_id: str | None, why: str) -> str:
        start = f"checkpoint {parent_id}" if parent_id else "an empty thread"
        return (
            f"LangGraph thread {t.thread_id!r} (checkpoint_ns {t.ns!r}, safepoint session {t.chain.id!r}): this run "
            f"continued from {start}, but {why}; nothing was saved. Another process is running this "
            "thread: reload it (invoke or get_state without a checkpoint_id) and run again; to branch from an "
            "older checkpoint on purpose, address it with a config from get_state_history"
        )

    def _restatus(self, t: Thread, checkpoint_id: str, status: Status) -> None:
        """Commit the head again with `status` when it is LangGraph checkpoint `checkpoint_id` and has another one:
        the same checkpoint (id, metadata, state), so listings show it once. Another writer moving the thread on
        first makes it moot: nothing is written then."""
        with t.lock:
            head, head_record = self._head(t)
            if head_record is not None and head_record["status"] == status:
                return
            if head_record is None or lg(head_record).get("checkpoint_id") != checkpoint_id:
                t.early[checkpoint_id] = status  # (LangGraph's async durability: the put follows)
                while len(t.early) > 16:
                    t.early.pop(next(iter(t.early)))
                return
            previous = t.tip
            if (
                previous is None
                or previous.checkpoint.seq != head
                or previous.checkpoint.checksum != head_record["_checksum"]
            ):
                previous = t.chain.resume_point(*t.chain.load(head))
            meta = {
                **head_record["meta"],
                "langgraph": {k: v for k, v in lg(head_record).items() if k != "parent_writes"},
            }
            try:
                t.tip = t.chain.commit(
                    previous.base,
                    seq=head + 1,
                    parent=head,
                    step=head_record.get("step"),
                    status=status,
                    schema_version=head_record.get("schema_version", 1),
                    meta=meta,
                    previous=previous,
                )
            except ConflictError:
                t.tip = None
