"""A session's chain of checkpoints in a store: key layout, commit records, commit and load.

Layout (all keys under the store root):

    sessions/<sid>                 who the session is (id, agent, tags, parent), written once
    heads/<sid>                    hint: the latest seq; may lag after a crash, readers probe past it (only on
                                   stores with `head_hints`; the others find the last commit key in their index)
    commits/<sid>/<seq:012d>       one commit record per checkpoint; creating it IS the commit
    objects/<xx>/<sha256>          content-addressed tree nodes shared by every checkpoint and fork
    packs/<sid>/<first>-<last>     (stores with `pack_records`) the records of one finished keyframe cycle
    packed/<sid>                   the highest seq ever packed: a commit at or below it lost to a pack
    trimmed/<sid>                  the seqs deleted on purpose, unlike lost ones (see core.chain_marks)

A commit record is either a *keyframe* (the state's tree root, whose big parts are shared objects) or a
*delta* (the operations since its parent). At most `KEYFRAME_EVERY - 1` deltas follow a keyframe, and
together they stay smaller than the state, so loading any checkpoint reads one tree plus a bounded chain:
O(state size), whatever the length of the history.

On stores where every key costs a disk block (`Store.pack_records`: the directory store), a small record
would take 4 KiB. So when a keyframe commits, the records of the cycle it closes are copied into one pack
(written and made durable first), the `packed/<sid>` floor is raised, and only then are the loose records
discarded. Readers look in the packs for any seq. A writer so stale that it re-creates a discarded record
finds the floor above its seq and gets ConflictError, as it would have without packing.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import (
    CheckpointNotFound,
    ConflictError,
    CorruptCheckpoint,
    SafepointError,
    SafepointWarning,
    SchemaTooNew,
    StorageError,
)
from ..model import FORMAT, Checkpoint, SessionInfo, Status
from ..stores.base import Fence, Store, floor_value
from . import artifacts, chain_marks, codec, delta, gc_guard, open_sessions, redact, session_index, tracing
from .chain_marks import acknowledged, range_of, seq_of
from .checkpoints import to_checkpoint
from .session_ids import MAX_ID_LENGTH, check_session_id, session_segment  # noqa: F401 - re-exported
from .tree import TreeReader, TreeWriter, size_inline

_log = tracing.logger("store")

KEYFRAME_EVERY = 32
# Deltas since the keyframe may add up to this much before a new keyframe (or the state's size, if larger).
DELTA_BUDGET = 64 * 1024


def commit_key(segment: str, seq: int) -> str:
    """The key whose creation commits checkpoint `seq` of the session stored under `segment`."""
    return f"commits/{segment}/{seq:012d}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Saved:
    """What a successful commit leaves for the writer to continue from."""

    checkpoint: Checkpoint
    _base: Any  # the state as stored, independent of the caller's live objects (see `base`)
    keyframe_seq: int
    chain: int  # deltas since the keyframe
    delta_bytes: int
    keyframe_size: int
    _snapshot: bytes | None = None  # the canonical JSON of `base`, while it is not decoded yet

    @property
    def base(self) -> Any:
        """The writer's private copy of the state as stored, decoded from the keyframe's bytes when first
        needed: a session that never saves again never pays for it."""
        if self._snapshot is not None:
            self._base, self._snapshot = codec.loads(self._snapshot), None
        return self._base


class Chain:
    """The checkpoints of one session."""

    def __init__(self, store: Store, session_id: str) -> None:
        self.store = store
        self.id = check_session_id(session_id)
        self.segment = session_segment(self.id)
        self.info_key = f"sessions/{self.segment}"
        self.head_key = f"heads/{self.segment}"
        self.prefix = f"commits/{self.segment}/"
        self.pack_prefix = f"packs/{self.segment}/"
        self.floor_key = f"packed/{self.segment}"
        self.trim_key = f"trimmed/{self.segment}"
        self.known: set[str] = set()  # object hashes known to exist in the store
        self.verified_refs: set[str] = set()  # artifacts known stored, with their chunks, since the last gc
        self.gc_watch = gc_guard.GcWatch(store)
        self.redactor = redact.policy(store)
        self.last_attempt: str | None = None  # checksum of the record the last commit() tried to write
        self.last_written = 0  # bytes the last commit() wrote: its record and new objects
        self.kind = tracing.store_kind(store)
        self._floor: int | None = None  # the packed floor as last read (None: read it before trusting it)
        self._pack: tuple[str, dict[int, bytes]] | None = None  # the last pack read: key, seq -> record JSON
        self._written: dict[int, bytes] = {}  # records (their JSON) this writer committed since its keyframe
        self.summary = session_index.Tracker(store, self.segment, self.info_key)  # its summary index entry

    def commit_key(self, seq: int) -> str:
        return commit_key(self.segment, seq)

    def pack_key(self, first: int, last: int) -> str:
        return f"{self.pack_prefix}{first:012d}-{last:012d}"

    # --- session identity ---------------------------------------------------------------------
    def info(self) -> SessionInfo | None:
        blob = self.store.get(self.info_key)
        if blob is None:
            return None
        doc = codec.load_sealed(blob, self.info_key)
        if doc.get("id") != self.id:
            raise CorruptCheckpoint(self.info_key, f"names session {doc.get('id')!r}, expected {self.id!r}")
        return SessionInfo(
            id=doc["id"],
            agent=doc.get("agent"),
            tags=list(doc.get("tags", [])),
            parent=doc.get("parent"),
            created_at=datetime.fromisoformat(doc["created_at"]),
        )

    def create(self, agent: str | None, tags: list[str], parent: dict[str, Any] | None) -> bool:
        """Write the session record unless it exists; True when this call created it."""
        if self.exists():
            return False
        doc = {
            "format": FORMAT,
            "id": self.id,
            "agent": agent,
            "tags": list(tags),
            "parent": parent,
            "created_at": _now().isoformat(),
        }
        if self.redactor.suspect(codec.dumps([agent, tags, parent], root="the session's agent, tags and parent")):
            redacted = self.redactor.secrets_in([agent, tags, parent], self.store)
            doc.update(zip(("agent", "tags", "parent"), redacted, strict=True))
        created = self.store.put_if_absent(self.info_key, codec.seal(codec.dumps(doc)))
        if created:
            self.summary.created(doc)
            self.store.prepare(self.prefix)  # the first checkpoint then costs what every later one does
        return created

    def exists(self) -> bool:
        return self.store.exists(self.info_key)

    def mark_open(self) -> None:
        """List this session among the open ones, where workers look for work (see safepoint.core.open_sessions)."""
        open_sessions.mark(self.store, self.segment, self.id)

    # --- reading --------------------------------------------------------------------------------
    def head_seq(self) -> int:
        """The latest committed seq (0 when there is none): the hint, then probe forward."""
        if not self.store.head_hints:
            last = self.store.last(self.prefix)
            if last is not None and (seq := seq_of(last)) is not None:
                return seq
            seqs = self.seqs()  # no loose record, or a stray key sorts last: look at them all
            return seqs[-1] if seqs else 0
        seq = None
        blob = self.store.get(self.head_key)
        if blob is not None:
            try:
                seq = int(blob.decode())
            except (UnicodeDecodeError, ValueError):
                seq = None  # a torn hint is only a hint
        if seq is None or seq < 0 or (seq > 0 and not self.store.exists(self.commit_key(seq))):
            seqs = self.seqs()
            seq = seqs[-1] if seqs else 0
        while self.store.exists(self.commit_key(seq + 1)):
            seq += 1
        return seq

    def seqs(self) -> list[int]:
        """Every seq with a record, loose or packed (keys that are no seq, strays, are left out: fsck names them)."""
        loose = {seq for seq in map(seq_of, self.store.list(self.prefix)) if seq is not None}
        packed = {seq for first, last, _ in self.packs() for seq in range(first, last + 1)}
        return sorted(loose | packed)

    def packs(self) -> list[tuple[int, int, str]]:
        """(first, last, key) of every pack of this session, oldest first."""
        found: list[tuple[int, int, str]] = []
        if not self.store.pack_records:
            return found  # never packed: spare the fleet stores a round trip
        for key in self.store.list(self.pack_prefix):
            if (span := range_of(key)) is not None:
                found.append((*span, key))
        self._floor = None  # the caller is about to read records: let them see the floor as it is now
        return found

    def pack_holding(self, seq: int) -> tuple[int, int, str] | None:
        """(first, last, key) of the pack holding `seq`, or None."""
        return next(((first, last, key) for first, last, key in self.packs() if first <= seq <= last), None)

    def record_key(self, seq: int) -> str:
        """Where the record of `seq` lives: the pack holding it, or its own key."""
        holder = self.pack_holding(seq)
        return holder[2] if holder else self.commit_key(seq)

    def record(self, seq: int) -> dict[str, Any]:
        key, payload, checksum = self.record_payload(seq)
        doc = codec.parse(payload, key)
        if doc.get("format", 0) > FORMAT:
            raise SchemaTooNew(
                f"checkpoint {key} uses storage format {doc['format']}, this safepoint reads format {FORMAT}; "
                "upgrade safepoint to load it"
            )
        if doc.get("seq") != seq or doc.get("session") != self.id:
            raise CorruptCheckpoint(key, "record names another session or seq")
        doc["_checksum"] = checksum
        return doc

    def record_payload(self, seq: int) -> tuple[str, bytes, str]:
        """(where it was found, its verified canonical JSON, its checksum): the record of `seq`, loose or packed."""
        if self._floor is None or seq <= self._floor:
            self._floor = self._read_floor()
        if seq > self._floor:
            found = self._loose(seq)
            if found is not None:
                return found
            self._floor = self._read_floor()  # packed while we looked?
        # Packs are searched even above the floor: a floor lowered by damage must not hide packed records.
        found = self._packed(seq) or self._loose(seq)
        if found is None:
            self._missing(seq)
        return found  # type: ignore[return-value]

    def _missing(self, seq: int) -> None:
        """Raise for a seq with no record: CorruptCheckpoint when it was committed (at or below the high-water mark,
        the floor or a later record) and not deleted on purpose, else CheckpointNotFound."""
        seqs = self.seqs()
        if 0 < seq <= max(acknowledged(self.store, self.segment), self._read_floor(), *seqs[-1:]):
            if seq not in self.trimmed():
                why = "was committed but its record is missing (a deleted pack or record): the store is damaged"
                raise CorruptCheckpoint(self.commit_key(seq), f"checkpoint {seq} {why}")
        raise CheckpointNotFound(f"session {self.id!r} has no checkpoint seq {seq}; see `safepoint history`")

    def trimmed(self) -> set[int]:
        """The seqs deleted on purpose (so fsck does not report them lost); empty when none were."""
        return chain_marks.trimmed(self.store, self.trim_key)

    def note_trimmed(self, seqs: set[int], head: int) -> None:
        """Remember `seqs` as deleted on purpose (those below the new `head`)."""
        chain_marks.note_trimmed(self.store, self.trim_key, seqs, head)

    def record_blob(self, seq: int) -> bytes:
        """The record of `seq` sealed as a loose record (what an export carries)."""
        return codec.seal(self.record_payload(seq)[1])

    def _loose(self, seq: int) -> tuple[str, bytes, str] | None:
        key = self.commit_key(seq)
        blob = self.store.get(key)
        return None if blob is None else (key, codec.unseal(blob, key), codec.payload_digest(blob))

    def _read_floor(self) -> int:
        if not self.store.pack_records:
            return 0
        return floor_value(self.store.get(self.floor_key), self.floor_key)

    def _packed(self, seq: int) -> tuple[str, bytes, str] | None:
        """The record of `seq` from the pack holding it, or None when no pack does."""
        if self._pack is None or seq not in self._pack[1]:
            holder = self.pack_holding(seq)
            if holder is None:
                return None
            first, last, key = holder
            blob = self.store.get(key)
            if blob is None:
                return None  # removed since it was listed (a deletion, or an unpack)
            doc = codec.load_sealed(blob, key)
            if doc.get("session") != self.id or [r.get("seq") for r in doc["records"]] != list(range(first, last + 1)):
                raise CorruptCheckpoint(key, "pack names another session or does not hold its seqs")
            self._pack = (key, {r["seq"]: codec.dumps(r) for r in doc["records"]})
        payload = self._pack[1][seq]
        return self._pack[0], payload, codec.sha256(payload)

    def checkpoint(self, seq: int) -> Checkpoint:
        return to_checkpoint(self.record(seq))

    def history(self) -> Iterator[Checkpoint]:
        for seq in self.seqs():
            yield self.checkpoint(seq)

    def load(self, seq: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The record of `seq` and its document ({"state", "runtime"}), rebuilt from keyframe and deltas."""
        top = self.record(seq)
        records = [self.record(s) for s in range(top["base"], seq)] + [top]
        if "root" not in records[0]:
            raise CorruptCheckpoint(self.commit_key(records[0]["seq"]), "keyframe has no state root")
        # Start from the newest keyframe: `rebase` may have turned a record inside the chain into one.
        records = records[max(i for i, rec in enumerate(records) if "root" in rec) :]
        doc = TreeReader(self.store.get, self.known).read(records[0]["root"])
        for rec in records[1:]:
            doc = delta.apply(doc, rec["delta"])
        if not isinstance(doc, dict) or "state" not in doc:
            raise CorruptCheckpoint(self.commit_key(seq), "checkpoint document has no state")
        return top, doc

    # --- writing --------------------------------------------------------------------------------
    def commit(self, doc: dict[str, Any], **fields: Any) -> Saved:
        """Commit `doc` as checkpoint `seq` (see `_commit`), traced as span `safepoint.save` and logged."""
        if tracing.idle() and not _log.isEnabledFor(logging.DEBUG):
            return self._commit(doc, **fields)  # nobody listens: what to tell them is not even worked out
        attributes = {"safepoint.session.id": self.id, "safepoint.seq": fields["seq"], "safepoint.store": self.kind}
        with tracing.span("safepoint.save", attributes) as span:
            saved = self._commit(doc, **fields)
            checkpoint, size, status = saved.checkpoint, self.last_written, str(saved.checkpoint.status)
            span.set_attributes(
                {"safepoint.save.bytes": size, "safepoint.status": status, "safepoint.save.delta": saved.chain > 0}
            )
        event = {"session": self.id, "seq": checkpoint.seq, "step": checkpoint.step, "status": status, "bytes": size}
        _log.debug("session %r: saved seq %d (%d bytes)", self.id, checkpoint.seq, size, extra=event)
        return saved

    def _commit(
        self,
        doc: dict[str, Any],
        *,
        seq: int,
        parent: int | None,
        step: str | None,
        status: Status,
        schema_version: int,
        meta: dict[str, Any],
        previous: Saved | None,
        lease: int | None = None,
        fence: Fence | None = None,
    ) -> Saved:
        """Commit `doc` as checkpoint `seq`; a delta against `previous` when that is cheap, else a keyframe.

        `doc` is plain JSON: {"state": the user's state, "runtime": safepoint's records of steps, effects,
        inputs and usage}. `lease` is the fencing token of the writer's lease (recorded), `fence` its lease record
        (the commit lands only while the store still holds it). ConflictError if `seq` exists.
        """
        created_at = _now()
        record: dict[str, Any] = {
            "format": FORMAT,
            "session": self.id,
            "seq": seq,
            "parent": parent,
            "created_at": created_at.isoformat(),
            "step": step,
            "status": str(Status(status)),
            "schema_version": schema_version,
            "meta": meta,
            "lease": lease,
        }
        self.last_attempt = None
        ops_bytes = ops = snapshot = decoded = None
        as_delta = False
        redactor = self.redactor
        if redactor.active:
            doc = redactor.paths(doc, self.store)
            if redactor.suspect(codec.dumps([step, meta], root="the checkpoint's step and metadata")):
                step, meta = redactor.secrets_in([step, meta], self.store)
                record.update(step=step, meta=meta)
        redacted = False  # whether credentials were found in what changed (then the keyframe must not have them)
        if previous is not None:
            # Also before a keyframe: the ops move the writer's copy on for less than decoding the snapshot.
            # Encoded and decoded once: a private copy, sharing nothing with the caller's live objects.
            raw_ops = delta.diff(previous.base, doc)
            ops_bytes, ops = delta.encode_ops(raw_ops)
            if redactor.suspect(ops_bytes):  # only what changed: the base was redacted when it was written
                redacted = True
                ops_bytes, ops = delta.encode_ops(redactor.ops(raw_ops, previous.base, self.store))
            as_delta = previous.chain + 1 < KEYFRAME_EVERY and previous.delta_bytes + len(ops_bytes) <= max(
                DELTA_BUDGET, previous.keyframe_size
            )
        if as_delta:
            assert previous is not None and ops_bytes is not None
            keyframe_seq, size = previous.keyframe_seq, previous.keyframe_size
            chain, spent = previous.chain + 1, previous.delta_bytes + len(ops_bytes)
            record.update(base=keyframe_seq, delta=orjson.Fragment(ops_bytes))  # canonical already: not again
        else:
            if redacted:
                doc = redactor.secrets_in(doc, self.store)
            snapshot = codec.dumps(doc, root="")
            if previous is None:
                # Nothing stored vouches for any of it: check it loads back as the same value (NaN, tuples...).
                # The decoded copy is the writer's base, which a second save would otherwise decode.
                decoded = codec.faithful(doc, snapshot, root="")
                if redactor.suspect(snapshot):
                    doc = redactor.secrets_in(doc, self.store)
                    snapshot = codec.dumps(doc, root="")
                    decoded = codec.loads(snapshot)
            keyframe_seq, chain, spent, size = seq, 0, 0, len(snapshot)
            record["base"] = seq
        refs = artifacts.artifact_refs(doc.get("state"))
        record.update(since=spent, size=size, artifacts=refs)
        self._check_gc(refs)  # what the commit relies on is chosen after a gc check, committed within its window
        while True:  # after a slow encode look again: unless a gc ran meanwhile, what was chosen still stands
            payload, objects = (
                (codec.dumps(record), {}) if snapshot is None else self._keyframe_payload(record, snapshot, decoded)
            )
            if not self.gc_watch.expired() or not self._check_gc(refs):
                break
        # Stores that pack records compress them in the pack, off the save path.
        sealed = codec.seal(payload, compress=not self.store.pack_records)
        self.last_written = len(sealed) + sum(len(blob) for blob in objects.values())
        self.last_attempt = codec.payload_digest(sealed)
        hints = [(self.head_key, f"{seq:012d}".encode())] if self.store.head_hints else []  # fixed width: no tail
        hints.append(self.summary.hint({**record, "_checksum": self.last_attempt}, doc.get("runtime"), created_at))
        # The floor: a writer far behind must not re-create a record that a pack has taken over.
        floor = (self.floor_key, seq) if self.store.pack_records else None
        landed = self.store.commit(objects.items(), self.commit_key(seq), sealed, hints, fence, floor)
        if not landed and not (floor is not None and self._packed_by_another(seq, payload)):
            raise ConflictError(
                f"session {self.id!r}: checkpoint seq {seq} was committed by another writer first; "
                "reopen the session to continue from the new head"
            )
        self.known.update(key.rsplit("/", 1)[1] for key in objects)
        self.summary.committed(self.id)
        if self.store.pack_records:
            if not as_delta:
                if previous is not None and previous.keyframe_seq < seq:
                    self._pack_cycle(previous.keyframe_seq, seq - 1)
                self._written = {}
            self._written[seq] = payload
        base = decoded
        if ops is not None:
            # Only now that the commit stands may the writer's copy move on.
            base = delta.apply(previous.base, ops)  # type: ignore[union-attr]
            snapshot = None
        elif decoded is not None:
            snapshot = None
        if status in open_sessions.CLOSED:
            try:
                open_sessions.unmark(self.store, self.segment)
            except StorageError:
                pass  # the commit stands; a worker that finds the entry removes it (see safepoint.core.open_sessions)
        record["_checksum"] = self.last_attempt
        return Saved(to_checkpoint(record, created_at=created_at), base, keyframe_seq, chain, spent, size, snapshot)

    def _check_gc(self, refs: list[str]) -> bool:
        """Wait out a deleting gc; after one (True), forget which objects were known stored. Verify new artifacts."""
        if ran := self.gc_watch.check():
            self.known, self.verified_refs = set(), set()
        artifacts.require(self.store, f"session {self.id!r}", [ref for ref in refs if ref not in self.verified_refs])
        self.verified_refs.update(refs)
        return ran

    def _keyframe_payload(
        self, record: dict[str, Any], snapshot: bytes, decoded: Any = None
    ) -> tuple[bytes, dict[str, bytes]]:
        """The keyframe record's canonical JSON (with `root` set in `record`) and the new objects it needs.

        A state small enough to stay inline goes into the record as the bytes already encoded (an
        `orjson.Fragment`), instead of being decoded and encoded again: the same canonical bytes, for half the
        work.
        """
        if size_inline(len(snapshot)):
            record["root"] = {"k": "v", "v": orjson.Fragment(snapshot)}
            payload = codec.dumps(record)
            record["root"] = {"k": "v", "v": None}  # readers of `record` only ask whether it has a root
            return payload, {}
        writer = TreeWriter(None if self.store.cheap_create else self.store.exists, self.known)
        record["root"] = writer.root(codec.loads(snapshot) if decoded is None else decoded, len(snapshot))
        return codec.dumps(record), writer.new_objects

    # --- packing (stores with pack_records) ---------------------------------------------------------------
    def _packed_by_another(self, seq: int, payload: bytes) -> bool:
        """After a commit refused by the floor: whether it had landed, and another writer packed this very record.

        A store that checks the floor only after creating the key (`Store.commit`) cannot tell a floor raised by
        packing the record it just created from one that was higher already; the pack can: it holds our bytes.
        """
        self._floor, self._pack = None, None
        try:
            found = self._packed(seq) if self._read_floor() >= seq else None
        except (StorageError, CorruptCheckpoint):
            return False
        return found is not None and found[1] == payload

    def _pack_cycle(self, first: int, last: int) -> None:
        """Copy the records `first`..`last` (a finished cycle) into one pack, raise the floor, drop the copies.

        Best effort: the checkpoint that closed the cycle is committed already, and loose records are as good
        as packed ones, so a failure here only warns.
        """
        try:
            records = []
            for seq in range(first, last + 1):
                payload = self._written.get(seq) or self.record_payload(seq)[1]
                record = codec.loads(payload)
                if codec.dumps(record) != payload:
                    return  # not canonical JSON (an old writer?): a pack could not give back the same bytes
                records.append(record)
            pack = {"format": FORMAT, "session": self.id, "first": first, "last": last, "records": records}
            self.store.put_if_absent(self.pack_key(first, last), codec.seal(codec.dumps(pack)))
            self.finish_pack(first, last)
        except (StorageError, CheckpointNotFound, CorruptCheckpoint) as exc:
            warnings.warn(
                f"session {self.id!r}: could not pack checkpoints {first}-{last} ({exc}); they stay as they are",
                SafepointWarning,
                stacklevel=4,
            )

    def finish_pack(self, first: int, last: int) -> None:
        """Raise the floor to `last` and discard the loose copies of a pack's records (again, after a crash)."""
        self._move_floor(lambda floor: max(floor, last))
        self.store.discard([self.commit_key(seq) for seq in range(first, last + 1)])

    def _move_floor(self, to: Callable[[int], int]) -> None:
        """Set the floor to `to(current floor)` by compare-and-set (packers of other writers may race)."""
        for _ in range(100):
            blob = self.store.get(self.floor_key)
            current = floor_value(blob, self.floor_key)
            target = to(current)
            if target == current or self.store.put(self.floor_key, f"{target:012d}".encode(), expect=blob):
                break
        else:
            raise StorageError(f"session {self.id!r}: the packed floor {self.floor_key} keeps changing")
        self._floor = None

    def delete_records(self, seqs: Iterable[int]) -> None:
        """Delete the records of `seqs`, loose or packed."""
        if not (doomed := set(seqs)):
            return
        seqs = self.seqs()
        before, head = max(seqs, default=0), max(set(seqs) - doomed, default=0)
        self.note_trimmed(doomed, head)  # first: a reader meanwhile finds them gone on purpose, not lost
        self._unpack(doomed, keep=False)
        for seq in sorted(doomed, reverse=True):  # newest first: what a crash leaves still loads
            self.store.delete(self.commit_key(seq))
        head = self.head_seq()
        if self.store.pack_records:
            # With the newest records gone their seqs will be written again: the floor comes down to the head.
            self._move_floor(lambda floor: min(floor, head))
        if head < before:  # on purpose: the high-water mark (the index entry) comes down with the head
            try:
                self.summary.rebuild(self)
            except SafepointError:
                self.store.delete(session_index.key(self.segment))

    def _unpack(self, seqs: set[int], *, keep: bool = True) -> None:
        """Turn the packs holding any of `seqs` back into loose records (all of them, or with `keep=False` all
        but `seqs`), then delete those packs. Loose records at or below the floor are read when no pack has them.
        """
        for first, last, key in self.packs():
            inside = set(range(first, last + 1))
            if not inside & seqs:
                continue
            for seq in sorted(inside if keep else inside - seqs):  # the loose copies first, then the pack goes
                self.store.put(self.commit_key(seq), self.record_blob(seq))
            self.store.delete(key)
            self._pack = None

    def forget_written(self) -> None:
        """Drop the copies of records kept for packing (a pack then reads them back from the store)."""
        self._written = {}

    def delete_all(self) -> None:
        """Delete every record, pack and the floor of this session (the session record stays)."""
        self.delete_records(self.seqs())
        self.store.delete(self.floor_key)
        self.store.delete(self.trim_key)

    def resume_point(self, record: dict[str, Any], doc: dict[str, Any]) -> Saved:
        """The writer state for continuing after `record` (just loaded), so the next save can be a delta."""
        chain = record["seq"] - record["base"]
        return Saved(to_checkpoint(record), doc, record["base"], chain, record["since"], record["size"])

    def rebase(self, seq: int) -> None:
        """Rewrite checkpoint `seq` as a keyframe of the same content, so the records before it may be deleted.

        Its new objects are written first, then the record is replaced in one atomic put: a crash leaves the old
        record or the new one, and either loads the same checkpoint.
        """
        record, doc = self.load(seq)
        if record["base"] == seq:
            return
        snapshot = codec.dumps(doc, root="")
        writer = TreeWriter(None if self.store.cheap_create else self.store.exists, self.known)
        record = {key: value for key, value in record.items() if key not in ("_checksum", "delta")}
        record.update(base=seq, root=writer.root(codec.loads(snapshot), len(snapshot)), since=0, size=len(snapshot))
        for key, blob in writer.new_objects.items():
            self.store.put_if_absent(key, blob)
        self._unpack({seq})  # a packed record is replaced as a loose one
        self.store.put(self.commit_key(seq), codec.seal(codec.dumps(record)))
        self.known.update(key.rsplit("/", 1)[1] for key in writer.new_objects)
