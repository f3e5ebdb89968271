"""Keeping a store healthy: verifying objects (for fsck, see core.fsck), retention, gc and deleting sessions."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from ..errors import CheckpointNotFound, CorruptCheckpoint, SafepointError
from ..stores.base import Store
from . import codec, gc_guard, open_sessions, session_index
from .artifacts import check_manifest, manifest_key, verify_artifact
from .checkpoints import to_checkpoint
from .history import Chain
from .tree import TreeReader, child_digests, object_key

Progress = Callable[[str], None]


@dataclass
class GcReport:
    deleted_checkpoints: int
    deleted_objects: int
    freed_bytes: int
    kept_objects: int
    dry_run: bool


def session_ids(store: Store, skip: Collection[str] = ()) -> Iterator[tuple[str, str | None]]:
    """(info key, session id) for every session but those whose info key is in `skip`; id None when the info
    record itself is damaged."""
    for key in store.list("sessions/"):
        if key in skip:
            continue
        blob = store.get(key)
        if blob is None:
            continue  # deleted since the listing
        try:
            yield key, codec.load_sealed(blob, key)["id"]
        except (CorruptCheckpoint, KeyError, TypeError):
            yield key, None


class _Verifier:
    """Reads objects once each, remembering which are damaged and why."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reader = TreeReader(store.get)
        self.bad: dict[str, str] = {}  # key -> reason
        self.seen: set[str] = set()
        self.artifacts: dict[str, list[str]] = {}
        self.damage: dict[str, list[str]] = {}  # object digest -> damaged keys beneath it

    def tree(self, root: dict) -> list[str]:
        """Verify every object under a root node; return the keys of damaged ones."""
        return sorted({key for digest in child_digests(root) for key in self._subtree(digest)})

    def _subtree(self, digest: str) -> list[str]:
        # Memoised per object: keyframes share most of their objects, each is read once.
        if digest not in self.damage:
            key = object_key(digest)
            self.seen.add(key)
            try:
                node = self.reader.fetch(digest)
            except CorruptCheckpoint as exc:
                self.bad[key] = exc.reason
                self.damage[digest] = [key]
            else:
                self.damage[digest] = [k for child in child_digests(node) for k in self._subtree(child)]
        return self.damage[digest]

    def artifact(self, ref: str) -> list[str]:
        """Verify an artifact's manifest and chunks; return the keys of damaged ones."""
        if ref not in self.artifacts:
            self.artifacts[ref] = self._artifact(ref)
        return self.artifacts[ref]

    def _artifact(self, ref: str) -> list[str]:
        try:
            key = manifest_key(ref)
        except SafepointError as exc:
            self.bad[f"artifacts/{ref}"] = str(exc)
            return [f"artifacts/{ref}"]
        self.seen.add(key)
        blob = self.store.get(key)
        try:
            if blob is None:
                raise CorruptCheckpoint(key, "artifact manifest is missing")
            manifest = check_manifest(key, codec.load_sealed(blob, key))  # the name, not the manifest, says what
        except CorruptCheckpoint as exc:
            self.bad[key] = exc.reason
            return [key]
        damaged = []
        for digest, _size in manifest["chunks"]:
            reason = self._chunk(digest)
            if reason:
                damaged.append(object_key(digest))
        if not damaged and len(manifest["chunks"]) > 1:  # sound chunks may still be another file's
            try:
                verify_artifact(self.store, ref)
            except CorruptCheckpoint as exc:
                self.bad[key] = exc.reason
                damaged.append(key)
        return damaged

    def _chunk(self, digest: str) -> str | None:
        key = object_key(digest)
        if key not in self.seen:
            self.seen.add(key)
            blob = self.store.get(key)
            try:
                if blob is None:
                    raise CorruptCheckpoint(key, "object is missing")
                if codec.payload_digest(blob) != digest:
                    raise CorruptCheckpoint(key, "object content does not match its name")
                codec.unseal(blob, key)
            except CorruptCheckpoint as exc:
                self.bad[key] = exc.reason
        return self.bad.get(key)

    def orphan(self, key: str) -> None:
        self._chunk(key.rsplit("/", 1)[1])


def last_good(store: Store, session_id: str) -> int | None:
    """The newest checkpoint of a session that loads cleanly with every artifact it references, or None."""
    chain = Chain(store, session_id)
    check = _Verifier(store)
    for seq in reversed(chain.seqs()):
        try:
            record, _doc = chain.load(seq)
        except CorruptCheckpoint:
            continue
        if not any(check.artifact(ref) for ref in record.get("artifacts", [])):
            return seq
    return None


def delete_session(store: Store, session_id: str, extra_keys: Iterable[str] = ()) -> int:
    """Delete a session: its checkpoints, packs, hints, index entries and pins (and `extra_keys`), its record
    last, so an interrupted delete leaves a session that is still listed and can be deleted again. Its objects
    and artifacts are left for gc, which removes those no other session references. Returns the checkpoints
    deleted."""
    chain = Chain(store, session_id)
    seqs = chain.seqs()
    # The high-water marks first (the index entry, the floor): they must not outlive the checkpoints they vouch
    # for, or a reader meanwhile would take a record deleted here for a lost one.
    store.delete(session_index.key(chain.segment))
    store.delete(chain.floor_key)
    for key in sorted(store.list(chain.prefix), reverse=True) + store.list(chain.pack_prefix):
        store.delete(key)
    keys = [chain.head_key, chain.floor_key, chain.trim_key, open_sessions.key(chain.segment)]
    for key in [*keys, gc_guard.pin_key(chain.segment)]:
        store.delete(key)
    for key in extra_keys:
        store.delete(key)
    store.delete(chain.info_key)
    return len(seqs)


def gc(
    store: Store,
    *,
    keep_last: int | None = None,
    newer_than: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    settle: float = gc_guard.SETTLE,
) -> GcReport:
    """Apply retention (if asked), then delete objects and artifacts nothing references. Safe beside live writers.

    Retention keeps, per session, the last `keep_last` checkpoints and/or those created at or after
    `newer_than` (a checkpoint is kept if either rule keeps it), the head always, and any older checkpoints
    their deltas are built on. Writers go on saving meanwhile: objects younger than gc's listing, objects of
    commits made while it ran, and artifacts pinned by sessions that have not saved them yet are kept (see
    safepoint.core.gc_guard). `settle` is how long gc waits after announcing that it deletes.
    """
    if keep_last is not None and keep_last < 1:
        raise SafepointError(f"keep_last must be at least 1, got {keep_last}")
    if settle < gc_guard.WINDOW * 2:
        raise SafepointError(f"settle must be at least {gc_guard.WINDOW * 2} s (writers trust a check that long)")
    # Listed first: an object written after this is younger than the run, and never deleted by it.
    candidates = store.list("artifacts/") + store.list("objects/")
    live: set[str] = set()
    heads: dict[str, int] = {}
    deleted_checkpoints, freed = 0, 0
    for info_key, session_id in session_ids(store):
        if session_id is None:
            raise CorruptCheckpoint(info_key, "session record is damaged; run `safepoint fsck` before gc")
        if progress:
            progress(session_id)
        chain = Chain(store, session_id)
        if not dry_run:
            for first, last, _ in chain.packs():
                chain.finish_pack(first, last)  # after a crash in the middle of packing
        records = _records(chain)
        drop = _retention(records, keep_last, newer_than)
        freed += sum(records[seq]["_size"] for seq in drop)
        if not dry_run:
            chain.delete_records(drop)
        deleted_checkpoints += len(drop)
        heads[session_id] = max(records, default=0)
        for seq, record in records.items():
            if seq not in drop:
                mark_live(store, record, live)
    garbage = [key for key in candidates if key not in live]
    if dry_run or not garbage:
        freed += sum(len(store.get(key) or b"") for key in garbage)
        return GcReport(deleted_checkpoints, len(garbage), freed, len(candidates) - len(garbage), dry_run)
    mark, blob = gc_guard.begin_deleting(store)
    try:
        time.sleep(settle)  # commits of writers that checked before the announcement land meanwhile
        _mark_changes(store, heads, live)
        for ref in gc_guard.pinned(store):
            mark_artifact(store, ref, live)
        deleted = 0
        # Manifests before chunks: a manifest that is still there always has all its chunks.
        kept = len(candidates) - len(garbage)
        for key in garbage:
            if key in live:
                kept += 1
                continue
            size = len(store.get(key) or b"")
            if store.delete(key):
                freed += size
                deleted += 1
    finally:
        gc_guard.end_deleting(store, mark, blob)
    return GcReport(deleted_checkpoints, deleted, freed, kept, dry_run)


def _records(chain: Chain) -> dict[int, dict]:
    """Every record of a session by seq, each with `_size`: the bytes it takes (a packed record: its share)."""
    records = {}
    for seq in chain.seqs():
        try:
            key, payload, _ = chain.record_payload(seq)
        except CheckpointNotFound:
            continue  # deleted since the listing (retention or a session delete): it keeps nothing alive
        record = codec.parse(payload, key)
        record["_size"] = len(payload)
        records[seq] = record
    return records


def _mark_changes(store: Store, heads: dict[str, int], live: set[str]) -> None:
    """Mark what sessions committed since the first pass (new sessions, heads that moved)."""
    for info_key, session_id in session_ids(store):
        if session_id is None:
            raise CorruptCheckpoint(info_key, "session record is damaged; run `safepoint fsck` before gc")
        chain = Chain(store, session_id)
        before = heads.get(session_id)
        head = chain.head_seq()
        if head == before:
            continue
        seqs = chain.seqs()
        fresh = [s for s in seqs if s > before] if before is not None and head > before else seqs
        for seq in fresh:
            try:
                mark_live(store, chain.record(seq), live)
            except CheckpointNotFound:
                continue  # deleted meanwhile (retention or a session delete): it keeps nothing alive


def _retention(records: dict[int, dict], keep_last: int | None, newer_than: datetime | None) -> set[int]:
    if not records or (keep_last is None and newer_than is None):
        return set()
    seqs = sorted(records)
    keep = {seqs[-1]}
    if keep_last is not None:
        keep.update(seqs[-keep_last:])
    if newer_than is not None:
        keep.update(s for s in seqs if to_checkpoint(records[s]).created_at >= newer_than)
    oldest_needed = min(records[s]["base"] for s in keep)
    return {s for s in seqs if s < oldest_needed}


def mark_live(store: Store, record: dict, live: set[str]) -> None:
    """Add every object and manifest key a commit record keeps alive to `live` (shared parts once)."""
    if "root" in record:
        reader = TreeReader(store.get)
        pending = list(child_digests(record["root"]))
        while pending:
            digest = pending.pop()
            key = object_key(digest)
            if key not in live:
                live.add(key)
                pending.extend(child_digests(reader.fetch(digest)))
    for ref in record.get("artifacts", []):
        mark_artifact(store, ref, live)


def mark_artifact(store: Store, ref: str, live: set[str]) -> None:
    """Add an artifact's manifest and chunk keys to `live`."""
    try:
        key = manifest_key(ref)
    except SafepointError:
        return  # not a reference: nothing to keep
    blob = store.get(key)
    if key in live or blob is None:
        return
    live.add(key)
    live.update(object_key(digest) for digest, _ in codec.load_sealed(blob, key)["chunks"])
