"""A LangGraph checkpointer over any safepoint store: `SafepointSaver`.

    from safepoint.integrations.langgraph import SafepointSaver

    graph = builder.compile(checkpointer=SafepointSaver("sqlite:///agents.db"))

How LangGraph's records map onto safepoint's (docs/langgraph.md has the long form):

- A thread in one checkpoint namespace is a safepoint session, named by the thread id for the root namespace
  (`safepoint ls / show / history / diff` work on it like on a native session).
- A LangGraph checkpoint is a safepoint checkpoint whose state is the checkpoint as JSON: channel values go
  through LangGraph's own serializer and are kept as JSON (never pickle), so history is stored as deltas and
  shared tree objects. Its id, parent id and metadata ride in the commit record's `meta`: listing reads no state.
- Pending writes are sealed objects under `langgraph/writes/<session>/<checkpoint id>/`, one per task, until the
  thread's next checkpoint is committed: that commit record carries them from then on (`_langgraph_writes`).
- A put continues from its parent and creates the next seq only if absent. When another writer committed first,
  or the thread moved past the checkpoint this run loaded as its latest, the put raises `ConflictError` and
  saves nothing. A config that addresses an older checkpoint on purpose (from `get_state_history`) branches.
"""

from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..core import codec
from ..core.history import Chain, Saved
from ..errors import ConflictError, SafepointError
from ..model import Status
from ..repository import Repository
from ..runtime.leases import lease_key
from ..stores import Store, open_store
from ._langgraph_async import AsyncFromSync
from ._langgraph_history import History
from ._langgraph_keys import id_key, ids_prefix, session_id_for, thread_key, threads_prefix, writes_prefix
from ._langgraph_records import Thread, ThreadRecords
from ._langgraph_status import after_put, after_writes, lg
from ._langgraph_types import AllowedType, TypeGuarded
from ._langgraph_values import LazyDict, LazyList, Values, seen_messages
from ._langgraph_writes import PendingWrites

__all__ = ["AGENT", "MARK", "SafepointSaver", "session_id_for"]

#: The `agent` of every session this saver creates; other sessions are never written to.
AGENT = "langgraph"
#: Configurable key on the configs this saver hands out: [seq of the checkpoint, seq of the thread's head then].
MARK = "__safepoint_at__"
_CACHED_THREADS = 128


# --- the saver ------------------------------------------------------------------------------------------------
def _folded(record: dict[str, Any] | None, checkpoint_id: str) -> list[dict[str, Any]]:
    """The writes of checkpoint `checkpoint_id` folded into `record`, the record of the next seq."""
    found = lg(record or {})
    return found.get("parent_writes", []) if found.get("parent_checkpoint_id") == checkpoint_id else []


def _step(metadata: dict[str, Any]) -> str | None:
    source, step = metadata.get("source"), metadata.get("step")
    return None if source is None else f"{source}:{step}" if step is not None else str(source)


class SafepointSaver(ThreadRecords, AsyncFromSync, TypeGuarded, BaseCheckpointSaver[str]):
    """A LangGraph checkpointer keeping each thread as a safepoint session in any safepoint store.

    `SafepointSaver("sqlite:///agents.db")`, `SafepointSaver("./.safepoint")`, `SafepointSaver(repository)`.
    The async methods run the same code in a worker thread. A stored value is rebuilt only as one of LangGraph's
    safe types or of `allowed_types` (classes or (module, name) pairs); any other raises UntrustedType.
    """

    def __init__(
        self,
        store: Store | Repository | str | os.PathLike[str] | None = None,
        *,
        serde: SerializerProtocol | None = None,
        allowed_types: Sequence[AllowedType] = (),
    ) -> None:
        super().__init__(serde=self._guarded_serde(serde, allowed_types))
        self.store = store.store if isinstance(store, Repository) else open_store(store)
        self._threads: OrderedDict[str, Thread] = OrderedDict()
        self._threads_lock = threading.Lock()
        self._pending = PendingWrites(self.store)

    @classmethod
    def from_url(cls, url: str | os.PathLike[str] | None = None, **options: Any):
        """Open the store at `url` (a path, `sqlite:///...`, `memory://`; default `$SAFEPOINT_STORE`)."""
        return cls(url, **options)

    @property
    def repository(self) -> Repository:
        """The same store seen through safepoint's own API (sessions, history, diff, fsck...)."""
        return Repository(self.store)

    @property
    def _values(self) -> Values:
        return Values(self.serde, self._guard)  # `with_allowlist` swaps both on a copy: use the current ones

    def __repr__(self) -> str:
        return f"SafepointSaver({self.store.url!r})"

    # --- reading ------------------------------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        t = self._thread(conf["thread_id"], conf.get("checkpoint_ns", ""), create=False)
        if t is None:
            return None
        with t.lock:
            head, head_record = self._head(t)
            if not head:
                return None
            seq = head
            if conf.get("checkpoint_id"):
                found = self._find(t, conf["checkpoint_id"], conf.get(MARK), head, head_record)
                if found is None:
                    return None
                seq = found[0]
            record, doc = t.chain.load(seq)
            record = self._adopted(t, record)
            checkpoint = self._decode_state(doc["state"], record, t if seq == head else None)
            if seq == head:
                t.tip = t.chain.resume_point(record, doc)
            return self._tuple(t, seq, record, head, checkpoint)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,  # noqa: A002 - LangGraph's name
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first; each one's state is read only when its `checkpoint` is first used."""
        return self._list(config, filter, before, limit, lazy=True)

    def _list(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,  # noqa: A002
        before: RunnableConfig | None,
        limit: int | None,
        *,
        lazy: bool,
    ) -> Iterator[CheckpointTuple]:
        conf = (config or {}).get("configurable") or {}
        if conf.get("thread_id") is not None and "checkpoint_ns" in conf:
            targets = [(str(conf["thread_id"]), conf["checkpoint_ns"] or "")]
        else:
            prefix = threads_prefix(str(conf["thread_id"])) if conf.get("thread_id") else threads_prefix()
            targets = [(thread, ns) for thread, ns, _ in self._namespaces(prefix)]
        bound = (before or {}).get("configurable") or {}
        found: Iterator[tuple[Thread, int, dict[str, Any], Any, int]] | list = []
        threads = [t for thread, ns in targets if (t := self._thread(thread, ns, create=False)) is not None]
        if len(threads) == 1:
            found = islice(self._matches(threads[0], conf.get("checkpoint_id"), filter, bound), limit)
        else:
            found = [match for t in threads for match in self._matches(t, conf.get("checkpoint_id"), filter, bound)]
            found.sort(key=lambda m: lg(m[2])["checkpoint_id"], reverse=True)
            found = found[:limit] if limit is not None else found
        histories: dict[str, History] = {}  # one per thread: records, keyframes and messages read once
        for t, seq, record, metadata, head in found:
            checkpoint_id = lg(record)["checkpoint_id"]
            h = histories.setdefault(t.chain.id, History(t.chain, self._values))
            h.remember(seq, record)
            if lazy:
                checkpoint: Any = LazyDict(lambda h=h, seq=seq, r=record: self._decode_state(h.state(seq), r, h=h))
                writes: Any = LazyList(lambda t=t, seq=seq, cid=checkpoint_id, h=h: self._writes(t, seq, cid, h))
            else:
                checkpoint = self._decode_state(h.state(seq), record, h=h)
                writes = self._writes(t, seq, checkpoint_id, h)
            yield self._tuple(t, seq, record, head, checkpoint, metadata, writes)

    def _matches(
        self,
        t: Thread,
        checkpoint_id: str | None,
        filter: dict[str, Any] | None,
        bound: dict[str, Any],  # noqa: A002
    ) -> Iterator[tuple[Thread, int, dict[str, Any], Any, int]]:
        seqs = t.chain.seqs()
        head = seqs[-1] if seqs else 0
        before_seq, before_id = None, bound.get("checkpoint_id")
        if before_id:
            found = self._find(t, before_id, bound.get(MARK), 0, None)
            before_seq = found[0] if found else None
        listed: set[str] = set()
        for seq in reversed(seqs):
            if before_seq is not None and seq >= before_seq:
                continue
            record = self._record(t, seq)
            if record is None or lg(record).get("checkpoint_id") in listed:
                continue  # (the same checkpoint committed again with a new status: listed once, newest)
            listed.add(lg(record).get("checkpoint_id"))
            found_lg = lg(record)
            if checkpoint_id and found_lg.get("checkpoint_id") != checkpoint_id:
                continue
            if before_id and before_seq is None and found_lg.get("checkpoint_id", "") >= before_id:
                continue
            metadata = self._values.decode(found_lg.get("metadata"), copy=False)
            if filter and any(metadata.get(key) != value for key, value in filter.items()):
                continue
            yield t, seq, record, metadata, head

    # --- writing ------------------------------------------------------------------------------------------
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Commit `checkpoint` as the thread's next checkpoint; ConflictError if another writer got there first."""
        conf = config["configurable"]
        t = self._thread(conf["thread_id"], conf.get("checkpoint_ns", ""), create=True)
        parent_id = conf.get("checkpoint_id")
        metadata = get_checkpoint_metadata(config, metadata)
        with t.lock:
            head, head_record = self._head(t)
            if not head:
                self._create_session(t)
            found = self._find(t, parent_id, conf.get(MARK), head, head_record) if parent_id else None
            parent = found[0] if found else None
            self._refuse_race(t, parent_id, parent, conf.get(MARK), head, head_record, metadata)
            previous = self._tip(t, head, head_record)
            base = previous.base["state"] if previous is not None else {}
            state, encoded = self._values.encode_state(checkpoint, new_versions, base, t.seen)
            meta = {
                "langgraph": {
                    "checkpoint_id": checkpoint["id"],
                    "parent_checkpoint_id": parent_id,
                    "ts": checkpoint.get("ts"),
                    "metadata": self._values.encode(metadata, "metadata"),
                }
            }
            # Continuing from the head: its `.w` writes ride in this record (`_langgraph_writes`, "Folding").
            fold = self._pending.take(writes_prefix(t.chain.segment, parent_id)) if parent == head else None
            if fold is not None and fold.docs:
                meta["langgraph"]["parent_writes"] = fold.docs
            try:
                saved = t.chain.commit(
                    {"state": state, "runtime": {}},
                    seq=head + 1,
                    parent=parent,
                    step=_step(metadata),
                    status=t.early.pop(checkpoint["id"], None) or after_put(checkpoint),
                    schema_version=1,
                    meta=meta,
                    previous=previous,
                )
            except ConflictError:
                t.tip = None
                raise ConflictError(
                    self._conflict(t, parent_id, f"another writer committed seq {head + 1} first")
                ) from None
            t.tip = saved
            if fold is not None:
                self._pending.release(fold)
            stored = saved.base["state"]["channel_values"]
            for channel in encoded:
                t.seen[channel] = seen_messages(
                    checkpoint["channel_values"][channel], stored.get(channel), t.seen.get(channel)
                )
        return self._config(t, checkpoint["id"], head + 1, head + 1)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against a checkpoint: the first ones stay, unless all are special channels."""
        conf = config["configurable"]
        t = self._thread(conf["thread_id"], conf.get("checkpoint_ns", ""), create=True)
        entries = [
            [WRITES_IDX_MAP.get(channel, index), channel, self._values.encode(value, f"writes.{channel}")]
            for index, (channel, value) in enumerate(writes)
        ]
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        prefix = writes_prefix(t.chain.segment, conf["checkpoint_id"])
        self._pending.put(prefix, task_id, task_path, entries, special=special)
        if (status := after_writes(channel for channel, _ in writes)) is not None:
            self._restatus(t, conf["checkpoint_id"], status)  # an interrupt or an error: see _langgraph_status

    # --- deleting and copying -----------------------------------------------------------------------------
    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread, in all its namespaces (objects go at the next gc)."""
        for thread, ns, session_id in self._namespaces(threads_prefix(str(thread_id))):
            self._drop_session(thread, ns, session_id)

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata names one of `run_ids`."""
        runs = set(run_ids)
        if not runs:
            return
        for thread, ns, _ in self._namespaces():
            t = self._thread(thread, ns, create=False)
            if t is None:
                continue
            with t.lock:
                records = self._records(t)
                doomed = {
                    seq
                    for seq, record in records.items()
                    if (self._values.decode(lg(record).get("metadata"), copy=False) or {}).get("run_id") in runs
                }
                self._drop_checkpoints(t, records, doomed)

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: keep each namespace's latest checkpoint (and its writes); `delete`: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}; use 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            for thread, ns, _ in self._namespaces(threads_prefix(str(thread_id))):
                t = self._thread(thread, ns, create=False)
                if t is not None:
                    with t.lock:
                        records = self._records(t)
                        self._drop_checkpoints(t, records, set(records) - {max(records, default=0)})

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to a new thread (which must have no checkpoints)."""
        for _, ns, _ in self._namespaces(threads_prefix(str(source_thread_id))):
            src = self._thread(source_thread_id, ns, create=False)
            if src is None or not src.chain.seqs():
                continue
            dst = self._thread(target_thread_id, ns, create=True)
            with src.lock, dst.lock:
                if dst.chain.head_seq():
                    raise SafepointError(
                        f"cannot copy LangGraph thread {source_thread_id!r} into {target_thread_id!r}: the target "
                        f"already has checkpoints in namespace {ns!r}; delete it first or pick another thread id"
                    )
                seqs = src.chain.seqs()
                self._create_session(dst, parent={"session": src.chain.id, "seq": seqs[-1]})
                previous, renumbered = None, {}
                for seq in seqs:
                    record, doc = src.chain.load(seq)
                    record = self._adopted(src, record)
                    new_seq = len(renumbered) + 1
                    previous = dst.chain.commit(
                        doc,
                        seq=new_seq,
                        parent=renumbered.get(record.get("parent")),
                        step=record.get("step"),
                        status=Status(record["status"]),
                        schema_version=record.get("schema_version", 1),
                        meta=record["meta"],
                        previous=previous,
                    )
                    renumbered[seq] = new_seq
                    checkpoint_id = lg(record)["checkpoint_id"]
                    self._pending.copy(
                        writes_prefix(src.chain.segment, checkpoint_id), writes_prefix(dst.chain.segment, checkpoint_id)
                    )
                dst.tip, dst.seen = previous, {}

    def get_next_version(self, current: str | int | float | None, channel: None = None) -> str:
        """A channel version: a zero-padded counter (string order is number order), then random hex digits so two
        branches never give one version to different values. It also orders after LangGraph's 32-digit versions."""
        if current is None:
            number = 0
        elif isinstance(current, int | float):
            number = int(current)
        else:
            number = int(str(current).split(".", 1)[0])
        return f"{number + 1:012d}.{random.getrandbits(32):08x}"

    # --- helpers: sessions --------------------------------------------------------------------------------
    def _thread(self, thread_id: Any, ns: str, *, create: bool) -> Thread | None:
        session_id = session_id_for(thread_id, ns)
        with self._threads_lock:
            t = self._threads.get(session_id)
            if t is not None:
                self._threads.move_to_end(session_id)
                return t
        chain = Chain(self.store, session_id)
        info = chain.info()
        if info is None and not create:
            return None
        if info is not None and info.agent != AGENT:
            raise SafepointError(
                f"session {session_id!r} exists and is not a LangGraph thread (agent {info.agent!r}); "
                "use another thread id, or another store for LangGraph"
            )
        with self._threads_lock:
            t = self._threads.setdefault(session_id, Thread(str(thread_id), ns, chain))
            while len(self._threads) > _CACHED_THREADS:
                self._threads.popitem(last=False)
        return t

    def _create_session(self, t: Thread, parent: dict[str, Any] | None = None) -> None:
        index = {"thread_id": t.thread_id, "checkpoint_ns": t.ns, "session": t.chain.id}
        self.store.put_if_absent(thread_key(t.thread_id, t.ns), codec.seal(codec.dumps(index)))
        if not t.chain.create(AGENT, [], parent):
            info = t.chain.info()
            if info is not None and info.agent != AGENT:
                raise SafepointError(f"session {t.chain.id!r} exists and is not a LangGraph thread")

    def _namespaces(self, prefix: str = "") -> list[tuple[str, str, str]]:
        """(thread id, namespace, session id) of the threads under an index prefix (default: all of them)."""
        found = []
        for key in self.store.list(prefix or threads_prefix()):
            blob = self.store.get(key)
            if blob is not None:
                doc = codec.load_sealed(blob, key)
                found.append((doc["thread_id"], doc["checkpoint_ns"], doc["session"]))
        return found

    def _drop_session(self, thread_id: str, ns: str, session_id: str) -> None:
        with self._threads_lock:
            self._threads.pop(session_id, None)
        chain = Chain(self.store, session_id)
        chain.delete_all()
        self._pending.delete(writes_prefix(chain.segment))
        for key in self.store.list(ids_prefix(chain.segment)):
            self.store.delete(key)
        for key in (chain.head_key, lease_key(chain.segment), chain.info_key, thread_key(thread_id, ns)):
            self.store.delete(key)

    def _drop_checkpoints(self, t: Thread, records: dict[int, dict[str, Any]], doomed: set[int]) -> None:
        """Delete some checkpoints of a session; those kept whose deltas build on one become keyframes first, and
        the writes of a kept checkpoint folded into a doomed record go back to objects first."""
        if not doomed:
            return
        if doomed >= set(records):
            return self._drop_session(t.thread_id, t.ns, t.chain.id)
        for seq in sorted(doomed):
            kept = lg(records[seq - 1])["checkpoint_id"] if seq - 1 in records and seq - 1 not in doomed else None
            if kept is not None and (folded := _folded(records[seq], kept)):
                self._pending.restore(writes_prefix(t.chain.segment, kept), folded)
        for seq in sorted(set(records) - doomed, reverse=True):
            if any(link in doomed for link in range(records[seq]["base"], seq)):
                t.chain.rebase(seq)
        for seq in sorted(doomed, reverse=True):
            checkpoint_id = lg(records[seq]).get("checkpoint_id") or ""
            self._pending.delete(writes_prefix(t.chain.segment, checkpoint_id))
            self.store.delete(id_key(t.chain.segment, checkpoint_id))
        t.chain.delete_records(doomed)
        t.tip, t.seen = None, {}

    # --- helpers: the chain -------------------------------------------------------------------------------
    def _tip(self, t: Thread, head: int, head_record: dict[str, Any] | None) -> Saved | None:
        """The writer state of the head, so the next commit can be a delta against it."""
        if not head or head_record is None:
            return None
        tip = t.tip
        if tip is None or tip.checkpoint.seq != head or tip.checkpoint.checksum != head_record["_checksum"]:
            record, doc = t.chain.load(head)
            t.tip, t.seen = t.chain.resume_point(record, doc), {}
        return t.tip

    def _decode_state(
        self, state: dict[str, Any], record: dict[str, Any], seen_by: Thread | None = None, h: History | None = None
    ) -> dict[str, Any]:
        """A stored state back as a LangGraph checkpoint; `seen_by` (the head's thread) learns its messages; `h`,
        the listing it belongs to, shares the messages it rebuilt."""
        found = lg(record)
        ts = found.get("ts") or record["created_at"]
        decode = h.decode if h is not None else None
        checkpoint, seen = self._values.decode_state(
            state, found["checkpoint_id"], ts, seen=seen_by is not None, decode_channel=decode
        )
        if seen_by is not None:
            seen_by.seen = seen
        return checkpoint

    def _tuple(
        self,
        t: Thread,
        seq: int,
        record: dict[str, Any],
        head: int,
        checkpoint: Any,
        metadata: Any = None,
        writes: Any = None,
    ) -> CheckpointTuple:
        found = lg(record)
        parent_id = found.get("parent_checkpoint_id")
        return CheckpointTuple(
            config=self._config(t, found["checkpoint_id"], seq, head),
            checkpoint=checkpoint,
            metadata=self._values.decode(found.get("metadata"), copy=False) if metadata is None else metadata,
            parent_config=self._config(t, parent_id, record.get("parent"), head) if parent_id else None,
            pending_writes=self._writes(t, seq, found["checkpoint_id"]) if writes is None else writes,
        )

    def _config(self, t: Thread, checkpoint_id: str, seq: int | None, head: int) -> RunnableConfig:
        configurable: dict[str, Any] = {"thread_id": t.thread_id, "checkpoint_ns": t.ns, "checkpoint_id": checkpoint_id}
        if seq is not None:
            configurable[MARK] = [seq, head]
        return {"configurable": configurable}

    def _writes(self, t: Thread, seq: int, checkpoint_id: str, h: History | None = None) -> list[tuple[str, str, Any]]:
        """A checkpoint's pending writes in LangGraph's order: its objects, and those folded into the next record."""
        prefix = writes_prefix(t.chain.segment, checkpoint_id)
        found = self._pending.read(prefix, lambda: _folded(self._record(t, seq + 1, h), checkpoint_id))
        return [(task_id, channel, self._values.decode(value)) for task_id, channel, value in found]
