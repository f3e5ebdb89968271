"""Large files stored apart from the state, by content hash, streamed in fixed-size chunks.

An artifact is a manifest `artifacts/<sha256>` listing its chunks, each a content-addressed object. Memory
use is one chunk whatever the file size; identical chunks (two versions of a draft) are stored once.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from collections.abc import Iterator
from typing import IO, Any

from ..errors import ArtifactNotFound, CorruptCheckpoint
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
    if not store.exists(key):
        store.put_if_absent(key, codec.seal(codec.dumps(manifest)))
    return ArtifactRef(name=name, ref=ref, size=size, media_type=media_type)


def missing_parts(store: Store, ref: str) -> list[str]:
    """Keys of an artifact's manifest or chunks that are not in the store ([] when it is whole)."""
    key = manifest_key(ref)
    blob = store.get(key)
    if blob is None:
        return [key]
    return [object_key(d) for d, _ in codec.load_sealed(blob, key)["chunks"] if not store.exists(object_key(d))]


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
    return codec.load_sealed(blob, key)


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
                if self._whole.hexdigest() != self.manifest["sha256"]:
                    raise CorruptCheckpoint(manifest_key(self.ref), "artifact content does not match its hash")
                return 0
            self._buffer = memoryview(self._fetch(entry[0]))
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
