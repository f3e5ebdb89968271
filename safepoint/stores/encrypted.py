"""Encryption at rest: a store wrapped so that every value is AES-256-GCM encrypted and object names are keyed.

`EncryptedStore(inner, keys)` is a Store over any other store, so every backend gets it from one
implementation. Above it safepoint sees plaintext keys and values; below it the backend holds only:

    value = b"SPX\\x01" | key id (8 bytes) | nonce (12 bytes) | AES-256-GCM(value) with its 16-byte tag

The associated data is the header plus the key's name (`commits/<session>/<seq>`, `objects/..`, `leases/..`):
a value copied under another name (a record onto another session or checkpoint, one object over another)
fails to decrypt, and so does a changed byte or a value written under a key id not given. A value without the
header (plaintext) is refused: CorruptCheckpoint, which fsck reports.

Content-addressed names would tell which content a store holds (anyone can hash a guessed document and look
for it). So `objects/<xx>/<sha256>` and `artifacts/<sha256>` are stored under the AES encryption of the
digest with a names key (a keyed permutation: without the key a name says nothing about the content, and
with it the store maps names back, which gc and fsck need to list objects). The names key and the redaction
fingerprint key are random, kept in `meta/encryption` encrypted under the data key, so rotating the data key
(`rekey`) rewrites values in place and renames nothing.

Left in plaintext, on purpose: key names (session ids in them, seqs), values that are a bare decimal number
(the head hints `heads/<sid>` and packed floors `packed/<sid>`: seq numbers the names already show, and the
backends compare floors inside their commit transactions), and value sizes and times. See docs/security.md.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import CorruptCheckpoint, EncryptionKeyError, FenceMismatch, StorageError
from .base import ANY, ENCRYPTED_MAGIC, Fence, Floor, Listener, Store, check_commit, check_key
from .keys import Key

MAGIC = ENCRYPTED_MAGIC
_HEADER = len(MAGIC) + 8 + 12
META_KEY = "meta/encryption"
_NAMED_KINDS = ("objects/", "artifacts/")
_NAMED = re.compile(r"(objects/[0-9a-f]{2}/|artifacts/)([0-9a-f]{64})")
_ENCRYPTED_OBJECT = re.compile(r"objects/[0-9a-f]{2}/([0-9a-f]{64})")
_ENCRYPTED_ARTIFACT = re.compile(r"artifacts/([0-9a-f]{64})")


def is_number(data: bytes) -> bool:
    """A seq number (a head hint, a packed floor): stored as it is, since the backends compare floors inside
    their commits and the key names show the seqs anyway."""
    return len(data) <= 20 and data.isdigit()


def is_encrypted(blob: bytes | None) -> bool:
    return blob is not None and blob.startswith(MAGIC)


def key_id_of(blob: bytes) -> str:
    return blob[len(MAGIC) : len(MAGIC) + 8].hex()


class EncryptedStore(Store):
    """Any store, with every value encrypted (AES-256-GCM) and content-addressed names keyed."""

    def __init__(self, inner: Store, keys: list[Key]) -> None:
        if not keys:
            raise EncryptionKeyError("an encrypted store needs at least one key")
        self.inner = inner
        self.url = inner.url
        self.durable = inner.durable
        self.cheap_create = inner.cheap_create
        self.pack_records = inner.pack_records
        self.head_hints = inner.head_hints
        self.keys = keys
        self.key_id = keys[0].id
        self._aead = {key.id: AESGCM(key.derive(b"safepoint data v1")) for key in keys}
        self._header_prefix = MAGIC + self.key_id
        # The last ciphertext written or read of each lease record: a fence or a compare-and-set names the
        # plaintext the caller expects, the backend compares ciphertext.
        self._seen: dict[str, tuple[bytes, bytes]] = {}
        self._seen_lock = threading.Lock()
        names, self.fingerprint_key = self._open_meta()
        self._names = Cipher(algorithms.AES(names), modes.ECB())  # noqa: S305 - a permutation of random digests

    # --- the store's own secrets ------------------------------------------------------------------------
    def _open_meta(self) -> tuple[bytes, bytes]:
        blob = self.inner.get(META_KEY)
        if blob is None:
            held = self.inner.list("sessions/") or self.inner.list("objects/")
            if held and is_encrypted(self.inner.get(held[0])):
                raise CorruptCheckpoint(
                    META_KEY,
                    "the store's encryption record is missing, though its values are encrypted: restore it from a "
                    "backup (without it no object name can be found)",
                )
            if held:
                raise EncryptionKeyError(
                    f"store {self.url} holds unencrypted sessions; a key can only be given to a new store or one "
                    "encrypted from the start: export the sessions (`safepoint export`) and import them into a "
                    "new store opened with the key"
                )
            doc = {"format": 1, "names": os.urandom(32).hex(), "fingerprints": os.urandom(32).hex()}
            self.inner.put_if_absent(META_KEY, self.seal(META_KEY, orjson.dumps(doc)))
            blob = self.inner.get(META_KEY)
        if not is_encrypted(blob):
            raise CorruptCheckpoint(META_KEY, "the store's encryption record is not encrypted")
        assert blob is not None
        if blob[len(MAGIC) : len(MAGIC) + 8] not in self._aead:
            given = ", ".join(key.id_text for key in self.keys)
            raise EncryptionKeyError(
                f"store {self.url} is encrypted under key id {key_id_of(blob)}, and the key given has id {given}: "
                "open it with the key it was written with (SAFEPOINT_KEY, SAFEPOINT_KEY_FILE or key=)"
            )
        try:
            doc = orjson.loads(self.unseal(META_KEY, blob))
            return bytes.fromhex(doc["names"]), bytes.fromhex(doc["fingerprints"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise CorruptCheckpoint(META_KEY, "the store's encryption record is damaged") from None

    # --- values --------------------------------------------------------------------------------------------
    def seal(self, key: str, data: bytes) -> bytes:
        """`data` encrypted for the name `key` (the plaintext name safepoint uses)."""
        header = self._header_prefix + os.urandom(12)
        return header + self._aead[self.key_id].encrypt(header[len(MAGIC) + 8 :], data, header + key.encode())

    def unseal(self, key: str, blob: bytes) -> bytes:
        """The plaintext of a value stored under `key`; CorruptCheckpoint when it is not what was written there."""
        if not blob.startswith(MAGIC) or len(blob) < _HEADER + 16:
            raise CorruptCheckpoint(
                key, "is not encrypted, but this store is: it was not written through this store's key"
            )
        aead = self._aead.get(blob[len(MAGIC) : len(MAGIC) + 8])
        if aead is None:
            raise CorruptCheckpoint(
                key,
                f"is encrypted under key id {key_id_of(blob)}, which was not given: open the store with that key "
                "too (a rekey left unfinished?)",
            )
        header = blob[:_HEADER]
        try:
            return aead.decrypt(header[len(MAGIC) + 8 :], blob[_HEADER:], header + key.encode())
        except InvalidTag:
            raise CorruptCheckpoint(
                key, "does not decrypt: it was changed, or copied here from another key, session or checkpoint"
            ) from None

    def _out(self, key: str, data: bytes) -> bytes:
        return data if is_number(data) else self.seal(key, data)

    def _in(self, key: str, blob: bytes | None) -> bytes | None:
        if blob is None or is_number(blob):
            return blob
        return self.unseal(key, blob)

    # --- names ---------------------------------------------------------------------------------------------
    def name(self, key: str) -> str:
        """Where the backend keeps `key`: content-addressed names keyed, every other name as it is."""
        match = _NAMED.fullmatch(key)
        if match is None:
            return key
        encryptor = self._names.encryptor()
        hidden = (encryptor.update(bytes.fromhex(match[2])) + encryptor.finalize()).hex()
        return f"objects/{hidden[:2]}/{hidden}" if match[1] != "artifacts/" else f"artifacts/{hidden}"

    def _plain_name(self, stored: str) -> str:
        for pattern, kind in ((_ENCRYPTED_OBJECT, "objects"), (_ENCRYPTED_ARTIFACT, "artifacts")):
            match = pattern.fullmatch(stored)
            if match:
                decryptor = self._names.decryptor()
                digest = (decryptor.update(bytes.fromhex(match[1])) + decryptor.finalize()).hex()
                return f"objects/{digest[:2]}/{digest}" if kind == "objects" else f"artifacts/{digest}"
        return stored

    # --- the primitives ------------------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        blob = self.inner.get(self.name(key))
        if blob is not None and not is_number(blob):
            plain = self.unseal(key, blob)
            self._remember(key, plain, blob)
            return plain
        return blob

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        blob = self._out(key, data)
        if self.inner.put_if_absent(self.name(key), blob):
            self._remember(key, data, blob)
            return True
        return False

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        blob = self._out(key, data)
        name = self.name(key)
        if expect is ANY or expect is None or is_number(expect):  # type: ignore[arg-type]
            done = self.inner.put(name, blob, expect=expect)
        else:
            done = False
            raw = self._raw_for(key, expect)  # type: ignore[arg-type]
            if raw is not None:
                done = self.inner.put(name, blob, expect=raw)
                if not done:  # the cached ciphertext may be stale though the plaintext is the same (a rekey)
                    raw = self._raw_for(key, expect, fresh=True)  # type: ignore[arg-type]
                    done = raw is not None and self.inner.put(name, blob, expect=raw)
        if done:
            self._remember(key, data, blob)
        return done

    def _list(self, prefix: str) -> list[str]:
        if not (prefix.startswith(_NAMED_KINDS) or any(kind.startswith(prefix) for kind in _NAMED_KINDS)):
            keys = self.inner.list(prefix)
            return [k for k in keys if k != META_KEY] if META_KEY.startswith(prefix) else keys
        # Keyed names sort in another order than the digests: list the whole kind, map the names back, filter.
        inner_prefix = next((kind for kind in _NAMED_KINDS if prefix.startswith(kind)), prefix)
        names = map(self._plain_name, self.inner.list(inner_prefix))
        return sorted(k for k in names if k.startswith(prefix) and k != META_KEY)

    def _delete(self, key: str) -> bool:
        with self._seen_lock:
            self._seen.pop(key, None)
        return self.inner.delete(self.name(key))

    # --- compare-and-set against ciphertext --------------------------------------------------------------
    def _remember(self, key: str, plain: bytes, blob: bytes) -> None:
        # Only lease records, which every fenced commit compares: another compare-and-set reads the ciphertext
        # once more (`_raw_for`), and a cache of every key would grow with the store.
        if key.startswith("leases/"):
            with self._seen_lock:
                self._seen[key] = (plain, blob)

    def _raw_for(self, key: str, plain: bytes, *, fresh: bool = False) -> bytes | None:
        """The ciphertext now stored under `key` if it decrypts to `plain`, else None."""
        if not fresh:
            with self._seen_lock:
                seen = self._seen.get(key)
            if seen is not None and seen[0] == plain:
                return seen[1]
        blob = self.inner.get(self.name(key))
        if blob is None:
            return None
        try:
            current = self.unseal(key, blob)
        except CorruptCheckpoint:
            return None
        self._remember(key, current, blob)
        return blob if current == plain else None

    # --- the fast paths, passed on encrypted -------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.inner.exists(self.name(key))

    def present(self, keys: Iterable[str]) -> set[str]:
        names = {self.name(check_key(key)): key for key in keys}
        return {names[name] for name in self.inner.present(names)}

    def last(self, prefix: str) -> str | None:
        if prefix.startswith(_NAMED_KINDS) or META_KEY.startswith(prefix) or "objects/".startswith(prefix):
            keys = self.list(prefix)
            return keys[-1] if keys else None
        return self.inner.last(prefix)  # commit records: the backend's index lookup

    def put_hint(self, key: str, data: bytes) -> None:
        self.inner.put_hint(self.name(key), self._out(key, data))

    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        sealed_fence = None
        if fence is not None:
            raw = self._raw_for(fence[0], fence[1])
            if raw is None:
                raise FenceMismatch(fence[0])
            sealed_fence = (self.name(fence[0]), raw)
        try:
            return self.inner.commit(
                [(self.name(k), self._out(k, v)) for k, v in objects],
                self.name(key),
                self._out(key, data),
                [(self.name(k), self._out(k, v)) for k, v in hints],
                sealed_fence,
                floor,
            )
        except FenceMismatch:
            raise FenceMismatch(fence[0] if fence else key) from None

    def discard(self, keys: Iterable[str]) -> None:
        self.inner.discard([self.name(k) for k in keys])

    def prepare(self, prefix: str) -> None:
        self.inner.prepare(prefix)

    def sweep(self) -> int:
        return self.inner.sweep()

    def check(self) -> list[tuple[str, str]]:
        return self.inner.check()

    def notify(self, channel: str, payload: str = "") -> None:
        self.inner.notify(channel, payload)

    def listen(self, channel: str) -> Listener | None:
        return self.inner.listen(channel)

    def close(self) -> None:
        self.inner.close()

    # --- bundles -------------------------------------------------------------------------------------------
    def seal_member(self, name: str, data: bytes) -> bytes:
        """A bundle member encrypted under this store's key (bound to its member name)."""
        return self.seal("bundle:" + name, data)

    def open_member(self, name: str, blob: bytes) -> bytes:
        return self.unseal("bundle:" + name, blob)

    def __repr__(self) -> str:
        return f"EncryptedStore({self.inner!r}, key id {self.key_id.hex()})"


def rekey(inner: Store, old: list[Key], new: Key, progress: Callable[[str], Any] | None = None) -> dict[str, int]:
    """Re-encrypt every value of `inner` under `new` (values under `old` keys are decrypted first).

    Each value is replaced by one compare-and-set, so a crash leaves every value under the old key or the new
    one, and the store opens with both until it is run again to the end; the encryption record goes last, so
    until then the old key alone still opens the store. Run it with no writer active (like gc). Returns counts:
    rewritten, already under the new key, left in plaintext on purpose.
    """
    store = EncryptedStore(inner, [new, *[k for k in old if k.id != new.id]])
    counts = {"rewritten": 0, "already": 0, "plain": 0}
    names = [k for k in inner.list("") if k != META_KEY] + [META_KEY]
    for index, stored in enumerate(names):
        if progress is not None and index % 200 == 0:
            progress(f"rekey: {index} of {len(names)} values")
        key = store._plain_name(stored)
        for _attempt in range(10):
            blob = inner.get(stored)
            if blob is None:
                break
            if is_number(blob):
                counts["plain"] += 1
                break
            if blob[len(MAGIC) : len(MAGIC) + 8] == new.id and blob.startswith(MAGIC):
                counts["already"] += 1
                break
            fresh = store.seal(key, store.unseal(key, blob))
            if inner.put(stored, fresh, expect=blob):
                counts["rewritten"] += 1
                break
        else:
            raise StorageError(f"rekey: {stored} keeps changing; stop the writers and run `safepoint rekey` again")
    return counts
