"""Canonical JSON, checksums and the sealed envelope every stored blob travels in.

Envelope: b"SP" | version (1 byte) | codec (b"j" raw, b"z" zstd) | sha256 of the decoded payload (32 bytes) | body.
The checksum covers the decoded bytes, so a flipped bit anywhere (header, body, compression frame) is caught,
or, for the few frame bits zstd ignores, is harmless: unseal never returns bytes other than those sealed.
"""

from __future__ import annotations

import hashlib
import math
import threading
from typing import Any

import orjson
import zstandard

from ..errors import CorruptCheckpoint, EncryptionKeyError, NotSerializable
from ..stores.base import ENCRYPTED_MAGIC

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


#: How deep a state may nest (dicts and lists inside each other). Up to this many levels always saves; deeper
#: raises NotSerializable (JSON's encoder stops at 254 levels, and safepoint's records wrap the state in 4).
MAX_DEPTH = 250
# Datetimes and dataclasses would be written as strings and dicts and load back as such: refuse them instead.
_DUMPS_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what JSON readers take as an exact integer (orjson's own range)


def dumps(value: Any, *, root: str = "state") -> bytes:
    """Canonical JSON bytes (sorted keys, UTF-8). Raises NotSerializable naming the offending path."""
    try:
        return orjson.dumps(value, default=_default, option=_DUMPS_OPTIONS)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        raise unfaithful(value, root) from None


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def faithful(value: Any, payload: bytes, *, root: str = "state", tuples: bool = False) -> Any:
    """`payload` (the canonical JSON of `value`) decoded, after checking it is `value` again: NaN, infinity,
    tuples, UUIDs or enums would otherwise come back as something else. NotSerializable names the path.

    `tuples=True` lets tuples become lists (a step's output: its caller gets the JSON form on the first run as
    on every replay, so nothing differs between the two).
    """
    decoded = orjson.loads(payload)
    if decoded != value:
        found = _find(value, root, 0, set(), tuples)
        if found is not None or not tuples:
            raise unfaithful(value, root)
    return decoded


def copy(value: Any, *, root: str = "state", tuples: bool = False) -> Any:
    """A private JSON copy of `value` that equals it, or NotSerializable naming the path of what would change."""
    return faithful(value, dumps(value, root=root), root=root, tuples=tuples)


def _default(value: Any) -> Any:
    # pydantic models nested inside plain state serialise through their JSON mode (their own declared coercions).
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError


def unfaithful(value: Any, root: str) -> NotSerializable:
    """The NotSerializable for the first part of `value` that has no faithful JSON form (only runs after a
    failure, so its cost is no concern)."""
    found = _find(value, root, 0, set())
    if found is None:  # nothing found to blame: the value as a whole
        return NotSerializable(root, value, "it would not load back as the same value")
    return NotSerializable(*found)


def _path(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{key!r}]"


def _find(value: Any, path: str, depth: int, ancestors: set[int], tuples: bool = False) -> tuple[str, Any, str] | None:
    """(path, value, advice) of the first part of `value` that JSON cannot carry exactly, or None."""
    kind = type(value)
    if value is None or kind is bool or isinstance(value, str):
        return None
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return None
        return path, value, f"the integer {value} does not fit in 64 bits; store it as a string"
    if isinstance(value, float):
        if value == value and value not in (math.inf, -math.inf):
            return None
        return path, value, f"the float {value!r} has no JSON form; store None or a string instead"
    if (
        isinstance(value, dict | list)
        or (tuples and isinstance(value, tuple))
        or callable(getattr(value, "model_dump", None))
    ):
        if depth >= MAX_DEPTH:
            return (
                path,
                value,
                f"the {type(value).__name__} nests deeper than {MAX_DEPTH} levels, the limit; flatten it or store "
                "it as an artifact",
            )
        if id(value) in ancestors:
            return (
                path,
                value,
                f"the {type(value).__name__} contains itself (a cycle); store a copy without the back-reference",
            )
        if not isinstance(value, dict | list | tuple):
            try:
                value = value.model_dump(mode="json")
            except (ValueError, TypeError):
                value = dict(value.__dict__)  # a cycle or a value pydantic cannot dump: look inside
        ancestors.add(id(value))
        try:
            if isinstance(value, dict):
                for key in value:
                    if not isinstance(key, str):
                        return (
                            f"{path}[{key!r}]",
                            key,
                            f"dict keys must be strings, this one is a {type(key).__name__} (JSON would turn it into "
                            "a string); convert the keys with str() or store a list of [key, value] pairs",
                        )
                items: Any = value.items()
            else:
                items = enumerate(value)
            for key, child in items:
                found = _find(child, _path(path, key), depth + 1, ancestors, tuples)
                if found is not None:
                    return found
        finally:
            ancestors.discard(id(value))
        return None
    if isinstance(value, tuple):
        return path, value, "a tuple would load back as a list; store a list"
    if isinstance(value, set | frozenset):
        return path, value, f"a {type(value).__name__} has no JSON form; store a sorted list"
    if isinstance(value, bytes | bytearray | memoryview):
        return (
            path,
            value,
            f"{type(value).__name__} have no JSON form; store them as an artifact (put_artifact) or as base64 text",
        )
    return path, value, ""


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
        if blob.startswith(ENCRYPTED_MAGIC):
            raise EncryptionKeyError(
                f"{key} is encrypted: open the store with its key (SAFEPOINT_KEY, SAFEPOINT_KEY_FILE or key=)"
            )
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
