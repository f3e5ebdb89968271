"""Reading a session bundle without trusting it: one streaming pass over the tar, within fixed limits.

Each member's kind, name and declared size are checked from its header before any of its data is read; the
data is then copied, in bounded pieces, into a private temporary file (the staging file), from which the
import verifies everything and only then writes. Nothing here holds more than one piece of a member, or one
tar header, in memory; a compressed bundle (gzip, bz2, xz) is decompressed as a stream, and its decompressed
bytes count against the same limits.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import lzma
import os
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import orjson

from ..errors import CorruptCheckpoint, SafepointError
from ..model import FORMAT
from ..stores.base import ENCRYPTED_MAGIC
from .session_ids import check_session_id, session_segment

MANIFEST = "bundle.json"
_SEALED = b"SP\x01"  # how every sealed value starts (safepoint.core.codec)
BUNDLE_FORMAT = 1
_PIECE = 1024 * 1024  # the largest single read from the tar stream: a piece of member data, or one tar header
_BLOCK = 512
_HEX = frozenset("0123456789abcdef")


#: How to open a member's bytes for this store: as they are, or decrypted with its key.
Opener = Callable[[str, bytes], bytes]


class BundleError(SafepointError, ValueError):
    """A file that is not a safepoint bundle, or one that cannot go into this store."""


class DamagedBundle(BundleError, CorruptCheckpoint):
    """A member of a bundle is damaged, or what it names is missing from the bundle."""

    def __init__(self, bundle: str, key: str, reason: str) -> None:
        self.key = f"{bundle}:{key}"
        self.reason = reason
        SafepointError.__init__(self, refusal(bundle, f"{key}: {reason}"))


def refusal(bundle: str, problem: str) -> str:
    """The one-line message of every refused import."""
    return f"cannot import {bundle}: {problem} (nothing was written)"


@dataclass(frozen=True)
class Limits:
    """What a bundle may hold; anything beyond is refused before it is read."""

    members: int = 1_000_000  # tar members
    member_bytes: int = 256 * 1024 * 1024  # one member as stored (its declared size)
    payload_bytes: int = 256 * 1024 * 1024  # one member decoded (a compressed record or object)
    total_bytes: int = 64 * 1024**3  # the whole tar stream, decompressed
    state_bytes: int = 1024**3  # one checkpoint's document as rebuilt from its tree and deltas
    manifest_bytes: int = 1024 * 1024  # bundle.json


def size_text(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


class Staged:
    """The members of a bundle as read, in a private temporary file (mode 0600, deleted when closed)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.manifest: dict[str, Any] = {}
        self.opener: Opener = lambda _name, data: data
        self._file = tempfile.TemporaryFile(prefix="safepoint-import-")
        self._where: dict[str, tuple[int, int]] = {}
        self._end = 0

    def names(self) -> list[str]:
        return sorted(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def add(self, name: str, first: bytes, more: Callable[[], bytes]) -> None:
        """Copy a member's data (its first piece, then piece by piece up to b"") to the end of the staging file."""
        start = self._end
        self._file.seek(start)
        piece = first
        while piece:
            self._file.write(piece)
            self._end += len(piece)
            piece = more()
        self._where[name] = (start, self._end - start)

    def get(self, name: str) -> bytes | None:
        """A member's bytes, opened (decrypted) for this store, or None when the bundle has no such member."""
        place = self._where.get(name)
        if place is None:
            return None
        self._file.seek(place[0])
        return self.opener(name, self._file.read(place[1]))

    def close(self) -> None:
        self._file.close()


class _Stream:
    """The tar stream as tarfile reads it: decompressed if need be, every read bounded, every byte counted."""

    def __init__(self, raw: IO[bytes], label: str, limits: Limits) -> None:
        self.name = label
        self._label = label
        self._limit = limits.total_bytes
        magic = raw.read(6)
        raw.seek(0)
        self._inner: Any = raw
        if magic.startswith(b"\x1f\x8b"):
            self._inner = gzip.GzipFile(fileobj=raw, mode="rb")
        elif magic.startswith(b"BZh"):
            self._inner = bz2.BZ2File(raw)
        elif magic.startswith(b"\xfd7zXZ\x00"):
            self._inner = lzma.LZMAFile(raw)
        self._position = 0
        self.last_header: tuple[int, bytes] = (-1, b"")  # (where, what) of the last block-sized read

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > _PIECE:
            # tarfile reads a whole extended (pax, GNU long name) header at once: refuse a giant one unread.
            shown = "all the rest" if size is None or size < 0 else size_text(size)
            raise BundleError(refusal(self._label, f"a tar header asks to read {shown} at once; it is damaged"))
        if self._position + size > self._limit:
            raise BundleError(
                refusal(self._label, f"it holds more than {size_text(self._limit)} (decompressed), the limit")
            )
        try:
            data = self._inner.read(size)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise BundleError(refusal(self._label, f"the compressed bundle is damaged or truncated ({exc})")) from None
        if size == _BLOCK:
            self.last_header = (self._position, data)
        self._position += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self._position + offset
        if target > self._limit:
            raise BundleError(
                refusal(self._label, f"it holds more than {size_text(self._limit)} (decompressed), the limit")
            )
        try:
            self._position = self._inner.seek(target)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise BundleError(refusal(self._label, f"the compressed bundle is damaged or truncated ({exc})")) from None
        return self._position

    def tell(self) -> int:
        return self._position


def read_bundle(
    path: str | os.PathLike[str],
    limits: Limits,
    accept: Callable[[dict[str, Any]], Opener],
    check: Callable[[str, bytes], None],
) -> Staged:
    """Check and stage every member of the bundle at `path`.

    `accept(manifest)` is called with the checked manifest before any other member is read: it may refuse the
    bundle by raising, and returns how to open (decrypt) its members. `check(name, blob)` is called with each
    member, opened, as soon as it is staged: a damaged member stops the read there.
    """
    label = str(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below, after the tar stream over it
    except OSError as exc:
        raise BundleError(f"{path} is not a readable safepoint bundle ({exc.strerror or exc})") from None
    staged = Staged(label)
    try:
        with raw:
            stream = _Stream(raw, label, limits)
            try:
                archive = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]
            except tarfile.TarError as exc:
                raise BundleError(f"{path} is not a readable safepoint bundle ({exc})") from None
            _read_members(archive, stream, staged, limits, accept, check)
    except BaseException:
        staged.close()
        raise
    return staged


def _read_members(
    archive: tarfile.TarFile,
    stream: _Stream,
    staged: Staged,
    limits: Limits,
    accept: Callable[[dict[str, Any]], Opener],
    check: Callable[[str, bytes], None],
) -> None:
    label = staged.label
    segment = None
    count = 0
    previous = "the start"
    while True:
        try:
            member = archive.next()
        except tarfile.TarError as exc:
            raise BundleError(refusal(label, f"the tar header after {previous} is damaged ({exc})")) from None
        del archive.members[:]  # tarfile keeps every header it read: a million members would pile up
        if member is None:
            break
        count += 1
        if count > limits.members:
            raise BundleError(refusal(label, f"it has more than {limits.members} members, the limit"))
        name = member.name
        _check_member(member, label, limits.manifest_bytes if count == 1 else limits.member_bytes)
        if count == 1:
            if name != MANIFEST:
                raise BundleError(refusal(label, f"its first member is {name!r}, not {MANIFEST}"))
            staged.manifest = check_manifest(_data(archive, member, label), label)
            segment = session_segment(staged.manifest["session"])
            staged.opener = accept(staged.manifest)
            magic = ENCRYPTED_MAGIC if staged.manifest.get("encrypted") else _SEALED
        else:
            if name in staged or name == MANIFEST:
                raise BundleError(refusal(label, f"member {name!r} appears twice"))
            check_member_name(name, segment or "", staged.manifest["session"], label)
            reader = archive.extractfile(member)
            assert reader is not None  # a regular file, checked above
            first = _piece(reader, name, label)
            if not first.startswith(magic):  # a bomb of zeros stops here, before the rest is staged
                raise DamagedBundle(label, name, "is not a safepoint object (bad header)")
            staged.add(name, first, functools.partial(_piece, reader, name, label))
            blob = staged.get(name)
            assert blob is not None
            check(name, blob)
        previous = f"member {name!r}"
    if count == 0:
        raise BundleError(f"{label} is not a readable safepoint bundle (no members)")
    # tarfile ends quietly on a damaged or missing header too; only a block of zeros is a proper end.
    where, block = stream.last_header
    if where != archive.offset or block != bytes(_BLOCK):
        raise BundleError(refusal(label, f"it is truncated or damaged after {previous}"))


def _piece(reader: IO[bytes], name: str, label: str) -> bytes:
    try:
        return reader.read(_PIECE)
    except tarfile.TarError as exc:
        raise BundleError(refusal(label, f"it is truncated inside member {name!r} ({exc})")) from None


def _data(archive: tarfile.TarFile, member: tarfile.TarInfo, label: str) -> bytes:
    reader = archive.extractfile(member)
    assert reader is not None
    pieces = []
    while piece := _piece(reader, member.name, label):
        pieces.append(piece)
    return b"".join(pieces)


def _check_member(member: tarfile.TarInfo, label: str, limit: int) -> None:
    """Refuse a member that is not a plain file of a plain relative name, or that declares too many bytes."""
    name = member.name
    if name.startswith("/"):
        raise BundleError(refusal(label, f"member {name!r} has an absolute path"))
    if ".." in name.split("/"):
        raise BundleError(refusal(label, f"member {name!r} climbs out with '..'"))
    kind = None
    if member.issym():
        kind = f"a symbolic link (to {member.linkname!r})"
    elif member.islnk():
        kind = f"a hard link (to {member.linkname!r})"
    elif member.ischr() or member.isblk():
        kind = "a device"
    elif member.isfifo():
        kind = "a FIFO"
    elif member.isdir():
        kind = "a directory"
    elif member.issparse():
        kind = "a sparse file"
    elif not member.isreg() or member.type not in tarfile.REGULAR_TYPES:
        kind = f"of tar type {member.type!r}"
    if kind:
        raise BundleError(refusal(label, f"member {name!r} is {kind}; a bundle holds only regular files"))
    if member.size > limit:
        raise BundleError(
            refusal(label, f"member {name!r} declares {size_text(member.size)}, more than the {size_text(limit)} limit")
        )


def check_manifest(data: bytes, label: str) -> dict[str, Any]:
    """bundle.json parsed and checked: an object naming a valid session, formats as numbers."""
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BundleError(refusal(label, f"{MANIFEST} is not JSON ({exc})")) from None
    if not isinstance(manifest, dict):
        raise BundleError(refusal(label, f"{MANIFEST} is a JSON {type(manifest).__name__}, not an object"))
    for field, newest in (("bundle", BUNDLE_FORMAT), ("format", FORMAT)):
        value = manifest.get(field)
        if type(value) is not int or value < 1:
            raise BundleError(refusal(label, f"{MANIFEST} field {field!r} is {value!r}, not a format number"))
        if value > newest:
            raise BundleError(
                f"{label} was written by a newer safepoint ({field} {value}, this one reads {newest}); upgrade"
            )
    session = manifest.get("session")
    try:
        check_session_id(session)
    except SafepointError as exc:
        raise BundleError(refusal(label, f"{MANIFEST} names no valid session ({exc})")) from None
    encrypted = manifest.get("encrypted")
    if encrypted is not None and not (isinstance(encrypted, str) and encrypted and set(encrypted) <= _HEX):
        raise BundleError(refusal(label, f"{MANIFEST} field 'encrypted' is {encrypted!r}, not a key id"))
    return manifest


def check_member_name(name: str, segment: str, session: str, label: str) -> None:
    """Refuse a member that is not a record of the bundle's session, an object or an artifact manifest."""
    parts = name.split("/")
    head = parts[0]
    problem = None
    if head == "sessions" and len(parts) == 2:
        problem = None if parts[1] == segment else f"belongs to another session than {session!r}"
    elif head == "commits" and len(parts) == 3:
        if parts[1] != segment:
            problem = f"belongs to another session than {session!r}"
        elif not (parts[2].isascii() and parts[2].isdigit()) or parts[2] != f"{int(parts[2]):012d}":
            problem = "is not a checkpoint number (twelve digits or more)"
        elif int(parts[2]) < 1:
            problem = "is checkpoint 0; checkpoints count from 1"
    elif head == "objects" and len(parts) == 3:
        if not (_is_digest(parts[2]) and parts[1] == parts[2][:2]):
            problem = "is not an object name (objects/<2 hex>/<sha256 hex>)"
    elif head == "artifacts" and len(parts) == 2:
        if not _is_digest(parts[1]):
            problem = "is not an artifact name (artifacts/<sha256 hex>)"
    else:
        problem = "is not part of a session bundle"
    if problem:
        raise BundleError(refusal(label, f"member {name!r} {problem}"))


def _is_digest(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX
