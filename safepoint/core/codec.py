"""Canonical JSON, checksums and the sealed envelope every stored blob travels in.

Envelope: b"SP" | version (1 byte) | codec (b"j" raw, b"z" zstd) | sha256 of the decoded payload (32 bytes) | body.
The checksum covers the decoded bytes, so a flipped bit anywhere (header, body, compression frame) is caught,
or, for the few frame bits zstd ignores, is harmless: unseal never returns bytes other than those sealed.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import orjson
import zstandard

from ..errors import CorruptCheckpoint, NotSerializable

_MAGIC = b"SP\x01"
_RAW = b"j"
_ZSTD = b"z"
_HEADER = len(_MAGIC) + 1 + 32
# Below this size compression rarely pays for its frame header.
_COMPRESS_MIN = 256

_local = threading.local()


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    # zstandard's (de)compressors are not thread-safe: one pair per thread.
    pair = getattr(_local, "zstd", None)
    if pair is None:
        # Level 1: a save is on the agent's critical path; level 3 saves ~5% more bytes for ~2x the time.
        pair = (zstandard.ZstdCompressor(level=1), zstandard.ZstdDecompressor())
        _local.zstd = pair
    return pair


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`; the name of a content-addressed object."""
    return hashlib.sha256(data).hexdigest()


def dumps(value: Any, *, root: str = "state") -> bytes:
    """Canonical JSON bytes (sorted keys, UTF-8). Raises NotSerializable naming the offending path."""
    try:
        return orjson.dumps(value, default=_default, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError) as exc:
        path, bad = _find_unserializable(value, root)
        raise NotSerializable(path, bad, _hint(exc)) from None


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def _default(value: Any) -> Any:
    # pydantic models nested inside plain state serialise through their JSON mode.
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError


def _hint(exc: Exception) -> str:
    text = str(exc)
    if "64-bit" in text:
        return "integers must fit in 64 bits; store larger ones as strings"
    if "keys must be str" in text.lower() or "dict key" in text.lower():
        return "dict keys must be strings"
    if "recursion" in text.lower():
        return "the value is nested too deeply or refers to itself"
    return ""


def _fits(value: Any) -> bool:
    try:
        orjson.dumps(value, default=_default)
        return True
    except (orjson.JSONEncodeError, TypeError):
        return False


def _find_unserializable(value: Any, path: str) -> tuple[str, Any]:
    """Walk down to the innermost value orjson refuses (only runs after a failure, so cost is no concern)."""
    seen: set[int] = set()
    while id(value) not in seen:
        seen.add(id(value))
        if isinstance(value, dict):
            bad_keys = [k for k in value if not isinstance(k, str)]
            if bad_keys:  # a list, not next(..., None): None itself may be the bad key
                return f"{path}[{bad_keys[0]!r}]", bad_keys[0]
            child = next(((k, v) for k, v in value.items() if not _fits(v)), None)
            if child is None:
                return path, value
            key, value = child
            path = (f"{path}.{key}" if path else key) if key.isidentifier() else f"{path}[{key!r}]"
        elif isinstance(value, list | tuple):
            child = next(((i, v) for i, v in enumerate(value) if not _fits(v)), None)
            if child is None:
                return path, value
            index, value = child
            path = f"{path}[{index}]"
        else:
            return path, value
    return path, value  # a container that contains itself


def seal(payload: bytes, *, compress: bool = True, digest: bytes | None = None) -> bytes:
    """Wrap payload bytes in the checksummed envelope, zstd-compressed when that makes them smaller.

    `digest` is the payload's sha256 when the caller already has it (content-addressed objects).
    """
    if digest is None:
        digest = hashlib.sha256(payload).digest()
    if compress and len(payload) >= _COMPRESS_MIN:
        packed = _zstd()[0].compress(payload)
        if len(packed) < len(payload) * 0.9:
            return b"".join((_MAGIC, _ZSTD, digest, packed))
    return b"".join((_MAGIC, _RAW, digest, payload))


def unseal(blob: bytes, key: str) -> bytes:
    """Return the payload of a sealed blob, verifying its checksum; CorruptCheckpoint names `key` otherwise."""
    if len(blob) < _HEADER or not blob.startswith(_MAGIC):
        raise CorruptCheckpoint(key, "not a safepoint object (bad header or truncated)")
    codec = blob[3:4]
    digest = blob[4:_HEADER]
    body = blob[_HEADER:]
    if codec == _RAW:
        payload = body
    elif codec == _ZSTD:
        payload = _decompress(body, key)
    else:
        raise CorruptCheckpoint(key, f"unknown codec {codec!r}")
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptCheckpoint(key, "checksum mismatch")
    return payload


def _decompress(body: bytes, key: str) -> bytes:
    # Streaming, not one-shot `decompress`: that allocates the size the frame header claims up front, and a
    # damaged header may claim exabytes (MemoryError). A stream only grows its output as real data comes out.
    stream = _zstd()[1].decompressobj()
    try:
        payload = stream.decompress(body)
    except zstandard.ZstdError as exc:
        raise CorruptCheckpoint(key, f"compressed body does not decode ({exc})") from None
    if not stream.eof:
        raise CorruptCheckpoint(key, "compressed body is truncated")
    if stream.unused_data:
        raise CorruptCheckpoint(key, f"{len(stream.unused_data)} stray bytes after the compressed body")
    return payload


def payload_digest(blob: bytes) -> str:
    """The hex checksum recorded in a sealed blob's header (no verification)."""
    return blob[4:_HEADER].hex()


def load_sealed(blob: bytes, key: str) -> Any:
    """Unseal and parse JSON; undecodable JSON is corruption too."""
    return parse(unseal(blob, key), key)


def parse(payload: bytes, key: str) -> Any:
    """Parse a verified payload; undecodable JSON is corruption too."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise CorruptCheckpoint(key, f"payload is not JSON ({exc})") from None
