"""Verifying a staged bundle completely before an import writes anything.

Every record is checked against its member name (session, seq), every checkpoint is rebuilt from its keyframe
tree and deltas (each object verified against its name as it is read), every artifact manifest is checked
against its name by hashing the chunks it lists, and every member must be used by some checkpoint. What this
returns is the list of keys to write; reading it again from the staging file gives the bytes verified here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import zstandard

from ..errors import CorruptCheckpoint, SafepointError
from ..model import FORMAT, Status
from . import codec, delta
from .artifacts import manifest_key
from .bundle_read import BundleError, DamagedBundle, Limits, Staged, refusal, size_text
from .history import Chain
from .tree import TreeReader, object_key

_SEALED_HEADER = 36  # codec's envelope: magic and version (3), codec (1), sha256 of the payload (32)
# What hostile JSON can raise from code written for well-formed records, trees and deltas.
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError)


@dataclass
class Plan:
    """What to write, in this order: objects (tree nodes and chunks), artifact manifests, records, session."""

    objects: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)


class _Check:
    def __init__(self, staged: Staged, source: Chain, limits: Limits) -> None:
        self.staged = staged
        self.label = staged.label
        self.source = source
        self.limits = limits
        self.used: set[str] = set()  # members some checkpoint needs
        self.artifacts: dict[str, int] = {}  # manifest key -> first seq referencing it

    def refuse(self, problem: str) -> BundleError:
        return BundleError(refusal(self.label, problem))

    def payload(self, name: str, blob: bytes | None = None) -> bytes:
        """The verified payload of a member, decoded within the payload limit."""
        if blob is None:
            blob = self.staged.get(name)
            if blob is None:
                raise DamagedBundle(self.label, name, "is missing from the bundle")
        return payload(self.label, name, blob, self.limits)

    def document(self, name: str) -> Any:
        try:
            return codec.parse(self.payload(name), name)
        except CorruptCheckpoint as exc:
            raise DamagedBundle(self.label, name, exc.reason) from None

    # --- the session record -------------------------------------------------------------------------------
    def info(self) -> None:
        name = self.source.info_key
        if name not in self.staged:
            raise self.refuse(f"it has no session record ({name}) for {self.source.id!r}")
        doc = self.document(name)
        problem = None
        if not isinstance(doc, dict):
            problem = "is not a JSON object"
        elif doc.get("id") != self.source.id:
            problem = f"names session {doc.get('id')!r}, not {self.source.id!r}"
        elif not _is_time(doc.get("created_at")):
            problem = "has no valid created_at time"
        elif not (isinstance(doc.get("tags", []), list) and all(isinstance(t, str) for t in doc.get("tags", []))):
            problem = "has tags that are not a list of strings"
        elif not isinstance(doc.get("agent"), str | None) or not isinstance(doc.get("parent"), dict | None):
            problem = "has an agent or parent of the wrong type"
        if problem:
            raise DamagedBundle(self.label, name, f"session record {problem}")

    # --- records and the checkpoints they make ------------------------------------------------------------
    def seqs(self) -> list[int]:
        prefix = self.source.prefix
        seqs = sorted(int(name[len(prefix) :]) for name in self.staged.names() if name.startswith(prefix))
        for before, seq in zip(seqs, seqs[1:], strict=False):
            if seq != before + 1:
                raise self.refuse(f"its checkpoints jump from seq {before} to seq {seq}; a history has no gaps")
        return seqs

    def record(self, seq: int) -> dict[str, Any]:
        name = self.source.commit_key(seq)
        doc = self.document(name)
        problem = _record_problem(doc, seq, self.source.id)
        if problem:
            raise DamagedBundle(self.label, name, problem)
        return doc  # type: ignore[no-any-return]

    def checkpoints(self, seqs: list[int]) -> None:
        """Rebuild every checkpoint in order: a keyframe from its tree, a delta on the checkpoint before it."""
        doc: Any = None
        keyframes: set[int] = set()
        size = 0  # what the document may have grown to since its keyframe: the bytes read and applied
        for seq in seqs:
            record = self.record(seq)
            name = self.source.commit_key(seq)
            base = record["base"]
            if base == seq:
                keyframes.add(seq)
                reader = _CountingReader(self, seq)
                try:
                    doc = reader.read(record["root"])
                except DamagedBundle:
                    raise
                except CorruptCheckpoint as exc:
                    raise self.refuse(f"checkpoint {seq} does not load: {exc.key}: {exc.reason}") from None
                except _MALFORMED as exc:
                    raise DamagedBundle(self.label, name, f"its state tree is malformed ({_what(exc)})") from None
                size = reader.size + len(codec.dumps(record["root"]))
            elif base not in keyframes:
                raise DamagedBundle(self.label, name, f"is a delta on seq {base}, which is not a keyframe here")
            else:
                size += len(codec.dumps(record["delta"]))
                if size > self.limits.state_bytes:
                    raise self.refuse(f"checkpoint {seq} grows beyond {size_text(self.limits.state_bytes)}, the limit")
                try:
                    doc = delta.apply(doc, record["delta"])
                except _MALFORMED as exc:
                    raise DamagedBundle(
                        self.label, name, f"its delta does not apply to checkpoint {seq - 1} ({_what(exc)})"
                    ) from None
            if not isinstance(doc, dict) or "state" not in doc:
                raise DamagedBundle(self.label, name, "rebuilds a checkpoint document with no state")
            for ref in record.get("artifacts", []):
                self.artifacts.setdefault(manifest_key(ref), seq)

    # --- artifacts ----------------------------------------------------------------------------------------
    def artifact(self, key: str, seq: int) -> None:
        """The manifest `artifacts/<sha256>` and its chunks: the chunks must hash to the name, each to its own."""
        if key not in self.staged:
            raise self.refuse(f"checkpoint {seq} references artifact {key}, which the bundle lacks")
        self.used.add(key)
        manifest = self.document(key)
        digest = key.rsplit("/", 1)[1]
        if not _is_manifest(manifest) or manifest["sha256"] != digest:
            raise DamagedBundle(self.label, key, "is not the manifest of this artifact (damaged or forged)")
        whole = hashlib.sha256()
        for chunk, length in manifest["chunks"]:
            name = object_key(chunk)
            self.used.add(name)
            blob = self.staged.get(name)
            if blob is None:
                raise self.refuse(f"artifact {key} needs chunk {name}, which the bundle lacks")
            if codec.payload_digest(blob) != chunk:
                raise DamagedBundle(self.label, name, "object content does not match its name")
            data = self.payload(name, blob)
            if len(data) != length:
                raise DamagedBundle(self.label, name, f"chunk of {key} holds {len(data)} bytes, not {length}")
            whole.update(data)
        if whole.hexdigest() != digest:
            raise DamagedBundle(self.label, key, "its chunks do not hash to its name (a poisoned or damaged artifact)")


class _CountingReader(TreeReader):
    """A tree reader over the staging file that marks what it uses and stops at the state limit."""

    def __init__(self, check: _Check, seq: int) -> None:
        super().__init__(check.staged.get)
        self.check = check
        self.seq = seq
        self.size = 0  # decoded bytes read for this checkpoint (a shared object counts each time it is used)

    def fetch(self, digest: str) -> dict[str, Any]:
        key = object_key(digest)
        blob = self.check.staged.get(key)
        if blob is None:
            raise CorruptCheckpoint(key, "object is missing from the bundle")
        if codec.payload_digest(blob) != digest:
            raise DamagedBundle(self.check.label, key, "object content does not match its name")
        payload = self.check.payload(key, blob)
        self.size += len(payload)
        if self.size > self.check.limits.state_bytes:
            raise self.check.refuse(
                f"checkpoint {self.seq} grows beyond {size_text(self.check.limits.state_bytes)}, the limit"
            )
        self.check.used.add(key)
        node = codec.parse(payload, key)
        if not isinstance(node, dict):
            raise DamagedBundle(self.check.label, key, "is not a tree node")
        return node


def payload(label: str, name: str, blob: bytes, limits: Limits) -> bytes:
    """The verified payload of bundle member `name`, decoded within the payload limit."""
    if blob[3:4] == b"z" and not _decodes_within(blob, limits.payload_bytes):
        raise DamagedBundle(label, name, f"decompresses to more than {size_text(limits.payload_bytes)}, the limit")
    try:
        return codec.unseal(blob, name)
    except CorruptCheckpoint as exc:
        raise DamagedBundle(label, name, exc.reason) from None


def member_check(label: str, limits: Limits) -> Callable[[str, bytes], None]:
    """What every member must pass as it is read: its checksum, and for an object, its name is its hash."""

    def check(name: str, blob: bytes) -> None:
        if name.startswith("objects/") and codec.payload_digest(blob) != name.rsplit("/", 1)[1]:
            raise DamagedBundle(label, name, "object content does not match its name")
        payload(label, name, blob, limits)

    return check


def verify(staged: Staged, source: Chain, limits: Limits) -> Plan:
    """Check the whole bundle; return what to write. Raises BundleError (one line) for the first problem."""
    check = _Check(staged, source, limits)
    check.info()
    seqs = check.seqs()
    check.checkpoints(seqs)
    for key, seq in sorted(check.artifacts.items()):
        check.artifact(key, seq)
    plan = Plan(seqs=seqs)
    for name in staged.names():
        if name.startswith(("objects/", "artifacts/")):
            if name not in check.used:
                raise check.refuse(f"member {name!r} is not used by any checkpoint of the bundle")
            (plan.objects if name.startswith("objects/") else plan.manifests).append(name)
    return plan


def _decodes_within(blob: bytes, limit: int) -> bool:
    """Whether a zstd-sealed blob decodes to at most `limit` bytes, decoded piece by piece (not all at once)."""
    reader = zstandard.ZstdDecompressor().stream_reader(memoryview(blob)[_SEALED_HEADER:], read_across_frames=False)
    total = 0
    try:
        while piece := reader.read(1024 * 1024):
            total += len(piece)
            if total > limit:
                return False
    except zstandard.ZstdError:
        return True  # damage: unseal names it
    return True


def _record_problem(doc: Any, seq: int, session: str) -> str | None:
    """What is wrong with a commit record (None when it is well-formed) for checkpoint `seq`."""
    if not isinstance(doc, dict):
        return "is not a checkpoint record (not a JSON object)"
    if doc.get("session") != session or doc.get("seq") != seq:
        return f"names session {doc.get('session')!r} seq {doc.get('seq')!r}, not {session!r} seq {seq}"
    if type(doc.get("format", 0)) is not int or doc.get("format", 0) > FORMAT:
        return f"uses storage format {doc.get('format')!r}; this safepoint reads format {FORMAT}"
    base = doc.get("base")
    if type(base) is not int or not 1 <= base <= seq:
        return f"has base {base!r}, not a seq at or before {seq}"
    if (base == seq) != ("root" in doc) or (base < seq) != isinstance(doc.get("delta"), list):
        return "is neither a keyframe (with a state root) nor a delta (with operations)"
    if "root" in doc and not isinstance(doc["root"], dict):
        return "has a state root that is not a tree node"
    refs = doc.get("artifacts", [])
    if not isinstance(refs, list) or not all(isinstance(ref, str) for ref in refs):
        return "has an artifacts list that is not a list of references"
    try:
        for ref in refs:
            manifest_key(ref)
    except SafepointError as exc:
        return str(exc)
    for name in ("since", "size"):
        if type(doc.get(name)) is not int:
            return f"has no {name} count"
    status = doc.get("status")
    if not _is_time(doc.get("created_at")) or not isinstance(status, str) or status not in set(Status):
        return "has no valid time or status"
    if not isinstance(doc.get("meta") or {}, dict) or not isinstance(doc.get("step"), str | None):
        return "has a step or meta of the wrong type"
    if type(doc.get("schema_version", 1)) is not int or any(
        doc.get(name) is not None and type(doc.get(name)) is not int for name in ("parent", "lease")
    ):
        return "has a schema version, parent or lease that is not a number"
    return None


def _is_manifest(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("chunks"), list) or type(doc.get("size")) is not int:
        return False
    total = 0
    for entry in doc["chunks"]:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and type(entry[1]) is int):
            return False
        if len(entry[0]) != 64 or set(entry[0]) - set("0123456789abcdef") or entry[1] < 0:
            return False
        total += entry[1]
    return total == doc["size"]


def _is_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _what(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
