"""Export a session to one portable file, and import it into any store.

A bundle is a plain tar archive: `bundle.json` first (what it holds), then one member per store record,
named by its key and holding its sealed bytes (already checksummed and compressed). Import is all or
nothing: the bundle is read within limits into a private staging file (safepoint.core.bundle_read), verified
completely (safepoint.core.bundle_check), and only then written, so a refused bundle changes nothing.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from ..errors import CorruptCheckpoint
from ..model import FORMAT
from ..stores.base import Store
from . import codec
from .bundle_check import Plan, member_check, verify
from .bundle_read import BUNDLE_FORMAT, MANIFEST, BundleError, DamagedBundle, Limits, Opener, Staged, read_bundle
from .history import Chain
from .maintenance import mark_live

__all__ = ["BundleError", "DamagedBundle", "Limits", "export_session", "import_session"]


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
            _add(archive, MANIFEST, codec.dumps(head))
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


def import_session(
    store: Store, path: str | os.PathLike[str], *, as_id: str | None = None, limits: Limits | None = None
) -> str:
    """Read a bundle into `store`, optionally under a new session id; return the id it was imported as.

    All or nothing: the whole bundle is read (within `limits`) and verified before the first key is written,
    so a refused bundle leaves the store as it was. Raises BundleError (or DamagedBundle) saying why.
    """
    limits = limits or Limits()
    chains: list[Chain] = []

    def accept(manifest: dict[str, Any]) -> Opener:
        source = Chain(store, manifest["session"])
        target = Chain(store, as_id or manifest["session"])
        if target.exists():
            raise BundleError(f"session {target.id!r} already exists in {store.url}; import it with --as NEW_ID")
        chains.extend((source, target))
        return _opener(store, manifest.get("encrypted"), path)

    staged = read_bundle(path, limits, accept, member_check(str(path), limits))
    with contextlib.closing(staged):
        source, target = chains
        plan = verify(staged, source, limits)
        _write(store, staged, plan, source, target)
    return target.id


def _write(store: Store, staged: Staged, plan: Plan, source: Chain, target: Chain) -> None:
    """Write a verified bundle: objects first (chunks before the manifests naming them), then the records,
    the session record last: until it exists, the import is invisible to `ls`."""
    for key in plan.objects + plan.manifests:
        if not store.exists(key):
            store.put_if_absent(key, _member(staged, key))
    for seq in plan.seqs:
        payload = codec.unseal(_member(staged, source.commit_key(seq)), source.commit_key(seq))
        if not store.put_if_absent(target.commit_key(seq), _renamed(payload, "session", target.id)):
            raise BundleError(
                f"checkpoint {target.commit_key(seq)} appeared in {store.url} while importing; "
                "earlier checkpoints of the import were written, the session record was not"
            )
    if store.head_hints and plan.seqs:
        store.put_hint(target.head_key, f"{plan.seqs[-1]:012d}".encode())
    info = codec.unseal(_member(staged, source.info_key), source.info_key)
    store.put_if_absent(target.info_key, _renamed(info, "id", target.id))


def _member(staged: Staged, key: str) -> bytes:
    blob = staged.get(key)
    if blob is None:  # verified present a moment ago: the staging file is private
        raise BundleError(f"bundle member {key} vanished from the staging file while importing")
    return blob


def _opener(store: Store, key_id: Any, path: str | os.PathLike[str]) -> Opener:
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


def _renamed(payload: bytes, field: str, value: Any) -> bytes:
    doc = codec.loads(payload)
    if doc.get(field) == value:
        return codec.seal(payload)
    doc[field] = value
    return codec.seal(codec.dumps(doc))
