"""Large files stored apart from the state, by content hash, streamed in fixed-size chunks.

An artifact is a manifest `artifacts/<sha256>` listing its chunks, each a content-addressed object. Memory
use is one chunk whatever the file size; identical chunks (two versions of a draft) are stored once.

Nothing inside a manifest is trusted: its name is the only claim. Every read checks the manifest against the
name (`check_manifest`), every chunk against its own name, and the whole content against the name once it has
been streamed (`check_content` does both for bytes from elsewhere, such as a bundle being imported). A store
whose `artifacts/<sha of C>` holds the manifest of D (damage, or a hostile bundle) raises ArtifactMismatch
rather than handing out D.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import warnings
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..errors import ArtifactMismatch, ArtifactNotFound, CorruptCheckpoint, SafepointWarning
from ..model import ArtifactRef
from ..stores.base import Store
from . import codec
from .tree import object_key

CHUNK_SIZE = 4 * 1024 * 1024

Source = bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes]


def manifest_key(ref: str) -> str:
    digest = ref.removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ArtifactNotFound(f"{ref!r} is not an artifact reference; they look like 'sha256:<64 hex digits>'")
    return f"artifacts/{digest}"


def _chunks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        for start in range(0, len(data), CHUNK_SIZE):
            yield data[start : start + CHUNK_SIZE]
        return
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as handle:
            yield from _chunks(handle)
        return
    while chunk := source.read(CHUNK_SIZE):
        yield chunk


def put_artifact(store: Store, name: str, source: Source, media_type: str | None = None) -> ArtifactRef:
    """Stream `source` (bytes, a path or a binary file object) into the store; return its reference."""
    if media_type is None:
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    whole = hashlib.sha256()
    chunks: list[list[Any]] = []
    size = 0
    for chunk in _chunks(source):
        whole.update(chunk)
        size += len(chunk)
        digest = codec.sha256(chunk)
        key = object_key(digest)
        if not store.exists(key):
            store.put_if_absent(key, codec.seal(chunk))
        chunks.append([digest, len(chunk)])
    ref = "sha256:" + whole.hexdigest()
    manifest = {"kind": "artifact", "sha256": whole.hexdigest(), "size": size, "chunks": chunks}
    key = manifest_key(ref)
    payload = codec.dumps(manifest)
    existing = store.get(key)
    if existing is None:
        store.put_if_absent(key, codec.seal(payload))
    elif not _same_manifest(existing, payload, key):
        # This process has just hashed the content, so its manifest is right and the stored one is not (or is
        # chunked otherwise): replace it, only if it is still the one read (another writer may fix it first).
        store.put(key, codec.seal(payload), expect=existing)
    return ArtifactRef(name=name, ref=ref, size=size, media_type=media_type)


def _same_manifest(blob: bytes, payload: bytes, key: str) -> bool:
    try:
        stored = codec.unseal(blob, key)
        if stored == payload:
            return True
        check_manifest(key, codec.parse(stored, key))
    except CorruptCheckpoint as exc:
        warnings.warn(f"{exc.key}: {exc.reason}; replaced by the manifest of the file just stored", SafepointWarning,
                      stacklevel=3)  # fmt: skip
    return False


def check_manifest(key: str, manifest: Any) -> dict[str, Any]:
    """`manifest` as read from `key` (`artifacts/<sha256>`), if it can be that artifact's; ArtifactMismatch if not.

    What can be checked without the content: the recorded hash is the name, the sizes add up, the chunks are
    named by hashes, and a one-chunk artifact's chunk is named by the artifact's own hash (so for any artifact
    up to CHUNK_SIZE the check is complete here). Larger ones are checked as a whole once read."""
    digest = key.rsplit("/", 1)[-1]
    if type(manifest) is not dict or manifest.get("kind") != "artifact":
        raise ArtifactMismatch(key, "the value stored there is not an artifact manifest")
    chunks, size = manifest.get("chunks"), manifest.get("size")
    if manifest.get("sha256") != digest:
        raise ArtifactMismatch(key, f"its manifest describes the content sha256:{str(manifest.get('sha256'))[:64]}")
    if type(chunks) is not list or not all(_chunk_entry(entry) for entry in chunks):
        raise ArtifactMismatch(key, "its manifest's chunk list is malformed")
    if type(size) is not int or size != sum(entry[1] for entry in chunks):
        raise ArtifactMismatch(key, f"its manifest's size {size!r} is not the sum of its chunks' sizes")
    if len(chunks) == 1 and chunks[0][0] != digest or not chunks and digest != codec.sha256(b""):
        raise ArtifactMismatch(key, "its chunks are another file's content")
    return manifest


def _chunk_entry(entry: Any) -> bool:
    return (
        type(entry) is list
        and len(entry) == 2
        and type(entry[0]) is str
        and len(entry[0]) == 64
        and all(c in "0123456789abcdef" for c in entry[0])
        and type(entry[1]) is int
        and entry[1] >= 0
    )


def check_content(key: str, manifest: dict[str, Any], payloads: Iterable[bytes]) -> None:
    """Check an artifact's chunk payloads, in manifest order, against their names and the artifact's name.

    For bytes that come from anywhere but the store (a bundle's members); reads from the store are checked by
    ArtifactReader as they stream."""
    manifest = check_manifest(key, manifest)
    whole = hashlib.sha256()
    entries = iter(manifest["chunks"])
    for payload in payloads:
        entry = next(entries, None)
        if entry is None:
            raise ArtifactMismatch(key, "more chunks than its manifest lists")
        _check_chunk(key, entry, payload)
        whole.update(payload)
    if next(entries, None) is not None:
        raise ArtifactMismatch(key, "fewer chunks than its manifest lists")
    _check_whole(key, whole)


def _check_chunk(key: str, entry: list[Any], payload: bytes) -> None:
    if len(payload) != entry[1] or codec.sha256(payload) != entry[0]:
        raise ArtifactMismatch(key, f"chunk {object_key(entry[0])} does not hold what the manifest lists")


def _check_whole(key: str, whole: Any) -> None:
    if whole.hexdigest() != key.rsplit("/", 1)[-1]:
        raise ArtifactMismatch(key, f"its content hashes to sha256:{whole.hexdigest()}")


def verify_artifact(store: Store, ref: str) -> None:
    """Read a whole artifact from the store, verifying it (for fsck); raises CorruptCheckpoint or a subclass."""
    with open_artifact(store, ref) as stream:
        while stream.read(CHUNK_SIZE):
            pass


def missing_parts(store: Store, ref: str) -> list[str]:
    """Keys of an artifact's manifest or chunks that are not in the store ([] when it is whole)."""
    key = manifest_key(ref)
    blob = store.get(key)
    if blob is None:
        return [key]
    manifest = check_manifest(key, codec.load_sealed(blob, key))
    return [object_key(d) for d, _ in manifest["chunks"] if not store.exists(object_key(d))]


def require(store: Store, where: str, refs: list[str]) -> None:
    """Raise ArtifactNotFound unless every artifact in `refs` is stored whole (a save must not reference a gap)."""
    for ref in refs:
        missing = missing_parts(store, ref)
        if missing:
            raise ArtifactNotFound(
                f"{where}: state.artifacts references {ref}, but {missing[0]} is not in store {store.url} "
                "(garbage collected, or never uploaded here); upload the file again with put_artifact, or "
                "remove it from state.artifacts, then save"
            )


def read_manifest(store: Store, ref: str) -> dict[str, Any]:
    key = manifest_key(ref)
    blob = store.get(key)
    if blob is None:
        raise ArtifactNotFound(f"artifact {ref} is not in store {store.url}; it may have been garbage collected")
    return check_manifest(key, codec.load_sealed(blob, key))


class ArtifactReader(io.RawIOBase):
    """A read-only binary stream over an artifact's chunks; each chunk is verified as it is read."""

    def __init__(self, store: Store, ref: str) -> None:
        self._store = store
        self.ref = ref
        self.manifest = read_manifest(store, ref)
        self.size = self.manifest["size"]
        self._pending = iter(self.manifest["chunks"])
        self._buffer = memoryview(b"")
        self._whole = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            entry = next(self._pending, None)
            if entry is None:
                _check_whole(manifest_key(self.ref), self._whole)  # against the name, not the manifest
                return 0
            payload = self._fetch(entry[0])
            if len(payload) != entry[1]:
                raise ArtifactMismatch(manifest_key(self.ref), f"chunk {object_key(entry[0])} has another size")
            self._buffer = memoryview(payload)
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._whole.update(self._buffer[:count])
        self._buffer = self._buffer[count:]
        return count

    def _fetch(self, digest: str) -> bytes:
        key = object_key(digest)
        blob = self._store.get(key)
        if blob is None:
            raise CorruptCheckpoint(key, f"chunk of artifact {self.ref} is missing")
        if codec.payload_digest(blob) != digest:
            raise CorruptCheckpoint(key, "object content does not match its name")
        return codec.unseal(blob, key)


def open_artifact(store: Store, ref: str) -> io.BufferedReader:
    """Open an artifact for streaming reads (`with open_artifact(...) as f: f.read(65536)`)."""
    return io.BufferedReader(ArtifactReader(store, ref), buffer_size=1024 * 1024)


def artifact_refs(state: Any) -> list[str]:
    """Artifact references in the state's `artifacts` list (what keeps artifacts alive through gc)."""
    found = []
    items = state.get("artifacts") if isinstance(state, dict) else None
    if isinstance(items, dict):
        items = list(items.values())
    for item in items or ():
        if isinstance(item, dict) and isinstance(item.get("ref"), str):
            found.append(item["ref"])
    return sorted(set(found))
