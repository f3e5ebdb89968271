"""Keeping a store healthy: fsck (find every damaged object and what it breaks), retention and gc."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import CorruptCheckpoint, SafepointError
from ..stores.base import Store
from . import codec
from .artifacts import manifest_key
from .history import Chain, to_checkpoint
from .tree import TreeReader, child_digests, object_key

Progress = Callable[[str], None]


@dataclass
class Problem:
    """One damaged or missing object and the checkpoints (session id, seq) that cannot load because of it."""

    key: str
    reason: str
    broken: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class FsckReport:
    problems: list[Problem]
    checked_checkpoints: int
    checked_objects: int
    swept: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class GcReport:
    deleted_checkpoints: int
    deleted_objects: int
    freed_bytes: int
    kept_objects: int
    dry_run: bool


def session_ids(store: Store) -> Iterator[tuple[str, str | None]]:
    """(info key, session id) for every session; id None when the info record itself is damaged."""
    for key in store.list("sessions/"):
        try:
            yield key, codec.load_sealed(store.get(key) or b"", key)["id"]
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
            manifest = codec.load_sealed(blob, key)
        except CorruptCheckpoint as exc:
            self.bad[key] = exc.reason
            return [key]
        damaged = []
        for digest, _size in manifest["chunks"]:
            reason = self._chunk(digest)
            if reason:
                damaged.append(object_key(digest))
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


def fsck(store: Store, progress: Progress | None = None) -> FsckReport:
    """Verify every record and object; report each damaged one with the checkpoints it breaks."""
    swept = store.sweep()
    check = _Verifier(store)
    broken_by: dict[str, list[tuple[str, int]]] = {}
    checkpoints = 0
    for info_key, session_id in session_ids(store):
        if session_id is None:
            check.bad[info_key] = "session record is damaged; its id is unknown"
            broken_by.setdefault(info_key, [])
            continue
        if progress:
            progress(session_id)
        chain = Chain(store, session_id)
        records: dict[int, dict | None] = {}
        for seq in chain.seqs():
            checkpoints += 1
            try:
                records[seq] = chain.record(seq)
            except CorruptCheckpoint as exc:
                records[seq] = None
                check.bad[exc.key] = exc.reason  # the record's key, or the pack holding it
        for seq, record in records.items():
            for key in _checkpoint_damage(chain, check, records, seq, record):
                broken_by.setdefault(key, []).append((session_id, seq))
    for key in store.list("objects/"):
        check.orphan(key)
    problems = [Problem(key, reason, broken_by.get(key, [])) for key, reason in sorted(check.bad.items())]
    return FsckReport(problems, checkpoints, len(check.seen), swept)


def _checkpoint_damage(
    chain: Chain, check: _Verifier, records: dict[int, dict | None], seq: int, record: dict | None
) -> list[str]:
    """Keys of damaged things that stop checkpoint `seq` from loading."""
    if record is None:
        return [chain.record_key(seq)]
    damaged: list[str] = []
    base = record["base"]
    for link in range(base, seq):
        if records.get(link) is None:
            key = chain.record_key(link)
            if link not in records:
                check.bad.setdefault(key, "checkpoint record is missing but later deltas need it")
            damaged.append(key)
    keyframe = records.get(base) if base != seq else record
    if keyframe is not None and "root" in keyframe:
        damaged += check.tree(keyframe["root"])
    for ref in record.get("artifacts", []):
        damaged += check.artifact(ref)
    return damaged


def last_good(store: Store, session_id: str) -> int | None:
    """The newest checkpoint of a session that loads cleanly, or None."""
    chain = Chain(store, session_id)
    for seq in reversed(chain.seqs()):
        try:
            chain.load(seq)
            return seq
        except CorruptCheckpoint:
            continue
    return None


def gc(
    store: Store,
    *,
    keep_last: int | None = None,
    newer_than: datetime | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> GcReport:
    """Apply retention (if asked), then delete objects and artifacts no remaining checkpoint references.

    Retention keeps, per session, the last `keep_last` checkpoints and/or those created at or after
    `newer_than` (a checkpoint is kept if either rule keeps it), the head always, and any older checkpoints
    their deltas are built on. Run it while no writer is saving: objects of a save still in flight are not
    yet referenced by any commit.
    """
    if keep_last is not None and keep_last < 1:
        raise SafepointError(f"keep_last must be at least 1, got {keep_last}")
    deleted_checkpoints = 0
    live: set[str] = set()
    for _info_key, session_id in session_ids(store):
        if session_id is None:
            raise CorruptCheckpoint(_info_key, "session record is damaged; run `safepoint fsck` before gc")
        if progress:
            progress(session_id)
        chain = Chain(store, session_id)
        if not dry_run:
            for first, last, _ in chain.packs():
                chain.finish_pack(first, last)  # after a crash in the middle of packing
        seqs = chain.seqs()
        records = {seq: chain.record(seq) for seq in seqs}
        drop = _retention(records, keep_last, newer_than)
        if not dry_run:
            chain.delete_records(drop)
        deleted_checkpoints += len(drop)
        for seq, record in records.items():
            if seq not in drop:
                mark_live(store, record, live)
    deleted, freed, kept = 0, 0, 0
    for key in store.list("objects/") + store.list("artifacts/"):
        if key in live:
            kept += 1
            continue
        blob = store.get(key)
        freed += len(blob or b"")
        deleted += 1
        if not dry_run:
            store.delete(key)
    return GcReport(deleted_checkpoints, deleted, freed, kept, dry_run)


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
        key = manifest_key(ref)
        blob = store.get(key)
        if key in live or blob is None:
            continue
        live.add(key)
        live.update(object_key(digest) for digest, _ in codec.load_sealed(blob, key)["chunks"])
