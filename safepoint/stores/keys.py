"""Encryption keys: where they come from (an argument, `SAFEPOINT_KEY`, a key file, a callable) and their ids.

A key is 32 random bytes (AES-256), given raw or as base64 / hex text (`safepoint keygen` prints one). A key
file holds the same text (or the raw bytes). A callable returns any of those: a KMS client unwrapping a data
key is one. Several keys make a keyring: the first encrypts, every one of them decrypts what it wrote (for
rotation, see `safepoint rekey`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EncryptionKeyError

KEY_ENV = "SAFEPOINT_KEY"
KEY_FILE_ENV = "SAFEPOINT_KEY_FILE"
OLD_KEY_FILE_ENV = "SAFEPOINT_OLD_KEY_FILE"
KEY_BYTES = 32


@dataclass(frozen=True)
class Key:
    """One AES-256 key and its id (8 bytes derived from it, written in every header it encrypts)."""

    material: bytes

    @property
    def id(self) -> bytes:
        return self.derive(b"safepoint key id")[:8]

    @property
    def id_text(self) -> str:
        return self.id.hex()

    def derive(self, purpose: bytes) -> bytes:
        """A 32-byte subkey for one purpose (so the data key is never used for anything else)."""
        return hmac.new(self.material, purpose, hashlib.sha256).digest()

    def __repr__(self) -> str:  # never print the material
        return f"Key(id={self.id_text})"


#: One key: raw bytes, base64/hex text, a Path to a key file, a Key, or a callable returning one of those.
KeySource = bytes | str | os.PathLike[str] | Key | Callable[[], Any]
#: One key or several (the first encrypts, all decrypt).
KeySpec = KeySource | Sequence[KeySource]


def generate() -> str:
    """A new random key as base64 text (what `safepoint keygen` prints)."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _parse_text(text: str, where: str) -> bytes:
    text = text.strip()
    raw = b""
    try:
        if len(text) == 2 * KEY_BYTES:
            raw = bytes.fromhex(text)
        else:
            altchars = b"-_" if "-" in text or "_" in text else None
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
    except (ValueError, binascii.Error):
        pass
    if len(raw) != KEY_BYTES:
        raise EncryptionKeyError(
            f"the key from {where} is not {KEY_BYTES} bytes as base64 or hex text; make one with `safepoint keygen`"
        )
    return raw


def load(source: KeySource, where: str = "the key argument") -> Key:
    """One Key from raw bytes, base64/hex text, a key file (a Path), or a callable returning one of those."""
    if isinstance(source, Key):
        return source
    if callable(source):
        try:
            produced = source()
        except Exception as exc:  # a KMS call: its own error, named
            raise EncryptionKeyError(f"the key callable failed: {type(exc).__name__}: {exc}") from exc
        return load(produced, "the key callable")
    if isinstance(source, os.PathLike):
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise EncryptionKeyError(f"cannot read key file {path}: {exc.strerror or exc}") from None
        if len(data) == KEY_BYTES:
            return Key(data)
        try:
            return Key(_parse_text(data.decode(), f"key file {path}"))
        except UnicodeDecodeError:
            raise EncryptionKeyError(f"key file {path} holds neither {KEY_BYTES} raw bytes nor key text") from None
    if isinstance(source, bytes | bytearray):
        if len(source) == KEY_BYTES:
            return Key(bytes(source))
        return Key(_parse_text(bytes(source).decode(errors="replace"), where))
    if isinstance(source, str):
        return Key(_parse_text(source, where))
    raise EncryptionKeyError(
        f"a key must be bytes, base64/hex text, a path to a key file or a callable, not {type(source).__name__}"
    )


def keyring(spec: KeySpec | None = None) -> list[Key]:
    """The keys to use: `spec` (one source or several, the first encrypting), else `$SAFEPOINT_KEY`, else
    `$SAFEPOINT_KEY_FILE` (with `$SAFEPOINT_OLD_KEY_FILE` after it during a rotation); [] when none is given
    (a plaintext store)."""
    if spec is None:
        found: list[Key] = []
        text, path, old = (os.environ.get(name) for name in (KEY_ENV, KEY_FILE_ENV, OLD_KEY_FILE_ENV))
        if text:
            found.append(load(text, f"${KEY_ENV}"))
        elif path:
            found.append(load(Path(path), f"${KEY_FILE_ENV}"))
        if found and old:  # a rotation in progress: the old key still decrypts what is not rewritten yet
            found.append(load(Path(old), f"${OLD_KEY_FILE_ENV}"))
        return found
    if isinstance(spec, list | tuple):
        found = [load(item) for item in spec]
        if not found:
            raise EncryptionKeyError("an empty list of keys was given; give at least one key")
        return found
    return [load(spec)]
