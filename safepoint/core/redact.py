"""Redaction: secrets are replaced by a marker before anything is written to the store.

Two kinds of rules:
- *paths* the user names (`redact=["model.api_key", "data.env.*"]`, paths inside the state; `*` matches any key
  or index): the whole value there is replaced, whatever it is;
- *known credential formats* (safepoint.core.credentials: OpenAI, Anthropic, Google, AWS, GitHub, Slack, Stripe
  tokens, JWTs, PEM private keys, `Bearer ...`), found inside any string of the state, of step outputs, effect
  results, answers and checkpoint metadata; on by default (`redact_secrets=False` turns them off).

A marker is `[redacted:<format>:<fingerprint>]`: the fingerprint is a keyed hash of the secret (HMAC-SHA256,
48 bits), so "the same key as before" can be seen across checkpoints without the key itself being stored. The
fingerprint key is derived from the store's encryption key when it has one, else from a random salt kept in the
store (`meta/redaction`); see docs/security.md for what that means.

Redaction never changes the caller's live objects: containers are copied along the way to what it replaces.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import weakref
from collections.abc import Iterable
from typing import Any

from ..errors import CorruptCheckpoint, SafepointError
from ..stores.base import Store
from . import codec, credentials
from .paths import parse_path

SALT_KEY = "meta/redaction"
_AWS_SECRET_LABEL = re.compile(r"(?i)(?:aws_?)?secret_?access_?key")
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
_MARKER = re.compile(r"\[redacted:[a-z_]+:[0-9a-f]{12}\]")

Path = list[str | int]


class InvalidRedactPath(SafepointError, ValueError):
    """A `redact=` rule that is not a state path (`model.api_key`, `data.env.*`, `tools.results[0]`)."""


def _rule(text: str) -> Path:
    if not isinstance(text, str) or not text:
        raise InvalidRedactPath(f"redact rule {text!r} is not a path; write state paths like 'data.env.*'")
    path: Path = []
    for part in text.removeprefix("state.").split("."):
        if part == "*":
            path.append("*")
            continue
        try:
            path.extend(parse_path(part))
        except SafepointError:
            raise InvalidRedactPath(
                f"redact rule {text!r}: {part!r} is not a path step; write state paths like 'model.api_key', "
                "'data.env.*' or 'tools.results[0]'"
            ) from None
    return path


class Redactor:
    """The redaction policy of one repository: path rules, and whether known credential formats are redacted."""

    def __init__(self, paths: Iterable[str] = (), *, secrets: bool = True, key: bytes | None = None) -> None:
        self.rules = [_rule(p) for p in paths]
        self.secrets = secrets
        self._key = key  # the fingerprint key; None: the store's own (see `key`)
        self._salts: weakref.WeakKeyDictionary[Store, bytes] = weakref.WeakKeyDictionary()

    @property
    def active(self) -> bool:
        return self.secrets or bool(self.rules)

    def suspect(self, encoded: bytes) -> bool:
        """Whether encoded JSON may hold a known credential (a cheap scan; False is certain)."""
        return self.secrets and credentials.suspect(encoded)

    # --- applying it ------------------------------------------------------------------------------------
    def paths(self, doc: dict[str, Any], store: Store) -> dict[str, Any]:
        """`doc` ({"state", "runtime"}) with the values at the path rules replaced (a copy where it changed)."""
        if not self.rules or not isinstance(doc.get("state"), dict | list):
            return doc
        state = doc["state"]
        for rule in self.rules:
            state = self._at(state, rule, store)
        return doc if state is doc["state"] else {**doc, "state": state}

    def _at(self, value: Any, rule: Path, store: Store) -> Any:
        if not rule:
            if isinstance(value, str) and _MARKER.fullmatch(value):
                return value  # already redacted (the stored base)
            return self.marker("path", codec.dumps(value, root="redacted value"), store)
        step, rest = rule[0], rule[1:]
        if isinstance(value, dict):
            keys = list(value) if step == "*" else ([step] if step in value else [])
            changed = {k: self._at(value[k], rest, store) for k in keys}
            if all(changed[k] is value[k] for k in keys):
                return value
            return {**value, **changed}
        if isinstance(value, list):
            if step == "*":
                indices = range(len(value))
            else:
                indices = [step] if isinstance(step, int) and 0 <= step < len(value) else []
            out = None
            for i in indices:
                new = self._at(value[i], rest, store)
                if new is not value[i]:
                    out = list(value) if out is None else out
                    out[i] = new
            return value if out is None else out
        return value

    def ops(self, ops: list[Any], base: Any, store: Store) -> list[Any]:
        """Delta operations with the credentials inside the values they set replaced; a set that then puts back
        the value `base` already holds (the live state keeps a secret its stored base has as a marker) is dropped.
        """
        out = []
        for op in ops:
            if op[0] == "s":
                path, value = op[1], op[2]
                label = path[-1] if path and isinstance(path[-1], str) else None
                if isinstance(value, str) and label is not None and _AWS_SECRET_LABEL.search(label):
                    value = self._labelled(value, store)
                else:
                    value = self.secrets_in(value, store)
                if value is not op[2] and _holds(base, path, value):
                    continue
                op = [op[0], path, value]
            elif op[0] == "x":
                op = [*op[:4], self.secrets_in(op[4], store)]
            out.append(op)
        return out

    def secrets_in(self, value: Any, store: Store) -> Any:
        """`value` with every known credential inside its strings (and dict keys) replaced by a marker."""
        if isinstance(value, str):
            return self._text(value, store)
        if isinstance(value, dict):
            out: dict[Any, Any] | None = None
            for key, child in value.items():
                new_key = self._text(key, store) if isinstance(key, str) else key
                if isinstance(child, str) and isinstance(key, str) and _AWS_SECRET_LABEL.search(key):
                    new = self._labelled(child, store)
                else:
                    new = self.secrets_in(child, store)
                if new is not child or new_key is not key:
                    if out is None:
                        out = dict(value)
                    if new_key is not key:
                        del out[key]
                    out[new_key] = new
            return value if out is None else out
        if isinstance(value, list | tuple):
            items = [self.secrets_in(child, store) for child in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        return value

    def _labelled(self, text: str, store: Store) -> str:
        if _AWS_SECRET.fullmatch(text):
            return self.marker("aws_secret_access_key", text.encode(), store)
        return self._text(text, store)

    def _text(self, text: str, store: Store) -> str:
        spans = list(credentials.find(text))
        if not spans:
            return text
        out, last = [], 0
        for start, end, name in spans:
            out.append(text[last:start])
            out.append(self.marker(name, text[start:end].encode(), store))
            last = end
        out.append(text[last:])
        return "".join(out)

    def marker(self, kind: str, secret: bytes, store: Store) -> str:
        """`[redacted:<kind>:<fingerprint>]`: the fingerprint is a keyed hash, the same for the same secret."""
        digest = hmac.new(self.key(store), secret, hashlib.sha256).hexdigest()[:12]
        return f"[redacted:{kind}:{digest}]"

    def key(self, store: Store) -> bytes:
        """The fingerprint key: the one given, an encrypted store's, else the store's random salt (created once)."""
        if self._key is not None:
            return self._key
        derived = getattr(store, "fingerprint_key", None)
        if isinstance(derived, bytes):
            return derived
        salt = self._salts.get(store)
        if salt is None:
            salt = self._salts[store] = _salt(store)
        return salt


def _holds(base: Any, path: list[Any], value: Any) -> bool:
    """Whether `base` holds exactly `value` at `path`."""
    for step in path:
        try:
            base = base[step]
        except (KeyError, IndexError, TypeError):
            return False
    return type(base) is type(value) and base == value


def _salt(store: Store) -> bytes:
    blob = store.get(SALT_KEY)
    if blob is None:
        store.put_if_absent(SALT_KEY, codec.seal(codec.dumps({"salt": os.urandom(32).hex()})))
        blob = store.get(SALT_KEY) or b""
    try:
        return bytes.fromhex(codec.load_sealed(blob, SALT_KEY)["salt"])
    except (KeyError, TypeError, ValueError):
        raise CorruptCheckpoint(SALT_KEY, "the redaction salt is not readable") from None


#: What stores opened without a policy get: known credential formats redacted, no path rules.
DEFAULT = Redactor()


def policy(store: Store) -> Redactor:
    """The redaction policy set on `store` by `safepoint.open`, or the default one."""
    found = getattr(store, "redactor", None)
    return found if isinstance(found, Redactor) else DEFAULT
