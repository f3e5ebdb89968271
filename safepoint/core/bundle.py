"""Export a session to one portable file, and import it into any store.

A bundle is a plain tar archive: `bundle.json` first (what it holds), then one member per store record,
named by its key and holding its sealed bytes (already checksummed and compressed). Import verifies every
member before it writes anything, so a damaged bundle changes nothing.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import CorruptCheckpoint, SafepointError
from ..model import FORMAT
from ..stores.base import Store, check_key
from . import codec
from .history import Chain
from .maintenance import mark_live

BUNDLE_FORMAT = 1
_MANIFEST = "bundle.json"


class BundleError(SafepointError, ValueError):
    """A file that is not a safepoint bundle, or one that cannot go into this store."""


def export_session(store: Store, session_id: str, path: str | os.PathLike[str]) -> Path:
    """Write session `session_id` (every checkpoint, the objects and artifacts they use) to `path`."""
    chain = Chain(store, session_id)
    if chain.info() is None:
        raise BundleError(f"no session {session_id!r} in {store.url} to export")
    records = {seq: chain.record(seq) for seq in chain.seqs()}
    live: set[str] = set()
    for record in records.values():
        mark_live(store, record, live)
    keys = [chain.info_key] + sorted(live)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.partial")
    # An encrypted store's bundle is encrypted under its key too: it imports only where that key is given.
    seal = getattr(store, "seal_member", None) or (lambda _name, data: data)
    head: dict[str, Any] = {"bundle": BUNDLE_FORMAT, "format": FORMAT, "session": session_id}
    if getattr(store, "key_id", None) is not None:
        head["encrypted"] = store.key_id.hex()  # type: ignore[attr-defined]
    try:
        with tarfile.open(tmp, "w") as archive:
            _add(archive, _MANIFEST, codec.dumps(head))
            for seq in records:  # as loose records, wherever this store keeps them
                _add(archive, chain.commit_key(seq), seal(chain.commit_key(seq), chain.record_blob(seq)))
            for key in keys:
                blob = store.get(key)
                if blob is None:
                    raise CorruptCheckpoint(key, "missing while exporting; run `safepoint fsck`")
                _add(archive, key, seal(key, blob))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    member.mtime = int(time.time())
    archive.addfile(member, io.BytesIO(data))


def import_session(store: Store, path: str | os.PathLike[str], *, as_id: str | None = None) -> str:
    """Read a bundle into `store`, optionally under a new session id; return the id it was imported as."""
    try:
        archive = tarfile.open(path, "r")
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{path} is not a readable safepoint bundle ({exc})") from None
    with archive:
        members = {m.name: m for m in archive.getmembers() if m.isfile()}
        if _MANIFEST not in members:
            raise BundleError(f"{path} has no {_MANIFEST}; it is not a safepoint bundle")
        manifest = codec.loads(_read(archive, members[_MANIFEST]))
        if manifest.get("bundle", 0) > BUNDLE_FORMAT or manifest.get("format", 0) > FORMAT:
            raise BundleError(f"{path} was written by a newer safepoint (bundle {manifest.get('bundle')}); upgrade")
        opener = _opener(store, manifest.get("encrypted"), path)
        source = Chain(store, manifest["session"])
        target = Chain(store, as_id or manifest["session"])
        if target.exists():
            raise BundleError(f"session {target.id!r} already exists in {store.url}; import it with --as NEW_ID")
        writes = _verified(archive, members, source, target, opener)
    objects = [(k, v) for k, v in writes if k.startswith(("objects/", "artifacts/"))]
    for key, blob in objects:
        if not store.exists(key):
            store.put_if_absent(key, blob)
    commits = [(k, v) for k, v in writes if k.startswith("commits/")]
    for key, blob in commits:
        if not store.put_if_absent(key, blob):
            raise BundleError(f"checkpoint {key} appeared in {store.url} while importing; nothing else was changed")
    if commits:
        if store.head_hints:
            store.put_hint(target.head_key, commits[-1][0].rsplit("/", 1)[1].encode())
    # The session record last: until it exists, the import is invisible to `ls`.
    store.put_if_absent(target.info_key, dict(writes)[target.info_key])
    return target.id


def _read(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = archive.extractfile(member)
    if handle is None:
        raise BundleError(f"bundle member {member.name} cannot be read")
    return handle.read()


def _opener(store: Store, key_id: Any, path: str | os.PathLike[str]) -> Callable[[str, bytes], bytes]:
    """How to read the members of a bundle: as they are, or decrypted with the store's key."""
    if key_id is None:
        return lambda _name, data: data
    ids = [key.id.hex() for key in getattr(store, "keys", ())]
    if key_id not in ids:
        raise BundleError(
            f"{path} is encrypted under key id {key_id}; import it into a store opened with that key "
            f"(this store {'has key id ' + ', '.join(ids) if ids else 'is not encrypted'})"
        )
    return store.open_member  # type: ignore[attr-defined,no-any-return]


def _verified(
    archive: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    source: Chain,
    target: Chain,
    opener: Callable[[str, bytes], bytes],
) -> list[tuple[str, bytes]]:
    """Every record of the bundle, checked and (for a new id) rewritten, in key order."""
    writes: list[tuple[str, bytes]] = []
    for name in sorted(members):
        if name == _MANIFEST:
            continue
        try:
            check_key(name)
        except SafepointError:
            raise BundleError(f"bundle member {name!r} is not a store key; the bundle is damaged") from None
        blob = opener(name, _read(archive, members[name]))
        payload = codec.unseal(blob, f"{archive.name}:{name}")
        if name.startswith(("objects/", "artifacts/")):
            if name.startswith("objects/") and codec.payload_digest(blob) != name.rsplit("/", 1)[1]:
                raise CorruptCheckpoint(f"{archive.name}:{name}", "object content does not match its name")
            writes.append((name, blob))
        elif name == source.info_key:
            writes.append((target.info_key, _renamed(payload, "id", target.id)))
        elif name.startswith(source.prefix):
            seq = int(name.rsplit("/", 1)[1])
            writes.append((target.commit_key(seq), _renamed(payload, "session", target.id)))
        else:
            raise BundleError(f"bundle member {name!r} does not belong to session {source.id!r}")
    if not any(key == target.info_key for key, _ in writes):
        raise BundleError(f"bundle has no session record for {source.id!r}; it is damaged")
    return writes


def _renamed(payload: bytes, field: str, value: Any) -> bytes:
    doc = codec.loads(payload)
    if doc.get(field) == value:
        return codec.seal(payload)
    doc[field] = value
    return codec.seal(codec.dumps(doc))
