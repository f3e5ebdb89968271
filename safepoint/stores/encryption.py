"""Opening a store with or without its encryption: the one place that decides, so no caller opens an encrypted
store as if it were plaintext (stores/encrypted.py is the wrapper itself, behind the optional `encryption` extra)."""

from __future__ import annotations

from ..errors import EncryptionKeyError
from . import keys
from .base import ENCRYPTED_MAGIC, Store
from .keys import KeySpec


def open_encrypted(store: Store, key: KeySpec | None) -> Store:
    """`store` wrapped in its encryption when a key is given (or in the environment); refused without one when
    the store is encrypted (EncryptionKeyError, the one error for a missing or a wrong key)."""
    if getattr(store, "key_id", None) is not None:
        return store  # encrypted already
    keyring = keys.keyring(key)
    if keyring:
        try:
            from .encrypted import EncryptedStore
        except ImportError as exc:
            raise EncryptionKeyError(
                f"encryption needs the 'encryption' extra: pip install 'safepoint[encryption]' ({exc})"
            ) from exc
        return EncryptedStore(store, keyring)
    if is_encrypted(store.get(ENCRYPTION_RECORD)):
        raise EncryptionKeyError(
            f"store {store.url} is encrypted: open it with its key (key=, SAFEPOINT_KEY or SAFEPOINT_KEY_FILE)"
        )
    return store


ENCRYPTION_RECORD = "meta/encryption"


def is_encrypted(blob: bytes | None) -> bool:
    return blob is not None and blob.startswith(ENCRYPTED_MAGIC)
