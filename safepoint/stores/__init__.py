"""Byte-level stores, opened from a URL.

./.safepoint  or  file:///abs/path     FileStore (the embedded default; `?mode=0640`: see stores/modes.py)
memory://  or  memory://name           MemoryStore
sqlite:///relative.db  sqlite:////abs.db  SQLiteStore     (`?mode=0640` too)
postgresql://user@host/db?schema=name  PostgresStore      (extra `postgres`: psycopg 3)
redis://host:6379/0?prefix=name        RedisStore         (extra `redis`: redis-py)
s3://bucket/prefix?endpoint_url=...    ObjectStore        (extra `s3`: fsspec + s3fs)

The fleet stores are imported on first use (`from safepoint.stores import PostgresStore` works; they are left
out of `__all__`), so their client libraries stay optional.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from ..errors import SafepointError
from .base import ANY, Store, check_key
from .files import FileStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "ANY",
    "DEFAULT_URL",
    "FileStore",
    "MemoryStore",
    "SQLiteStore",
    "Store",
    "UnknownStoreURL",
    "check_key",
    "open_store",
]

DEFAULT_URL = "./.safepoint"


class UnknownStoreURL(SafepointError, ValueError):
    """The URL names no backend safepoint knows."""


def redacted(url: str) -> str:
    """`url` with its password masked, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


# Fleet stores: class name -> (module, the pip extra that installs its client library).
_OPTIONAL = {
    "PostgresStore": (".postgres", "postgres"),
    "RedisStore": (".redis", "redis"),
    "ObjectStore": (".objects", "s3"),
}


def __getattr__(name: str) -> Any:
    """Import a fleet store on first use (`from safepoint.stores import PostgresStore`)."""
    if name not in _OPTIONAL:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = _OPTIONAL[name]
    try:
        return getattr(importlib.import_module(module, __name__), name)
    except ImportError as exc:
        raise ImportError(
            f"{name} needs the {extra!r} extra: pip install 'safepoint[{extra}]' ({exc})", name=exc.name
        ) from exc


def _mode_option(url: str, query: str) -> str | None:
    """`?mode=0640` of a file:// or sqlite:/// URL (the permissions of the files the store creates)."""
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - {"mode"})
    if unknown:
        raise UnknownStoreURL(f"store URL {url!r} has unknown option(s) {', '.join(unknown)}; this store takes mode=")
    return options["mode"][-1] if "mode" in options else None


def open_store(url: str | os.PathLike[str] | Store | None = None) -> Store:
    """Open a store from a URL or path; None means `$SAFEPOINT_STORE` or `./.safepoint`."""
    if isinstance(url, Store):
        return url
    if url is None:
        url = os.environ.get("SAFEPOINT_STORE") or DEFAULT_URL
    text = os.fspath(url)
    if "://" not in text:
        return FileStore(Path(text))
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        return MemoryStore(parts.netloc + parts.path)
    if scheme == "file":
        return FileStore(Path(parts.netloc + parts.path), mode=_mode_option(text, parts.query))
    if scheme == "sqlite":
        path = text.split("://", 1)[1].split("?", 1)[0]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise UnknownStoreURL(f"store URL {text!r} names no database file; use sqlite:///agents.db")
        return SQLiteStore(Path(path), mode=_mode_option(text, parts.query))
    if scheme in ("postgresql", "postgres"):
        return __getattr__("PostgresStore")(text)
    if scheme in ("redis", "rediss"):
        return __getattr__("RedisStore")(text)
    if scheme == "s3":
        return __getattr__("ObjectStore")(text)
    raise UnknownStoreURL(
        f"store URL {text!r} has an unknown scheme {scheme!r}; use a path, file://, memory://, sqlite:///, "
        "postgresql://, redis://, rediss:// or s3://"
    )
