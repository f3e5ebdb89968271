"""Byte-level stores, opened from a URL.

./.safepoint  or  file:///abs/path     FileStore (the embedded default)
memory://  or  memory://name           MemoryStore
sqlite:///relative.db  sqlite:////abs.db  SQLiteStore
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import SafepointError
from .base import ANY, Store, check_key
from .files import FileStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["ANY", "FileStore", "MemoryStore", "SQLiteStore", "Store", "check_key", "open_store", "DEFAULT_URL"]

DEFAULT_URL = "./.safepoint"


class UnknownStoreURL(SafepointError, ValueError):
    """The URL names no backend safepoint knows."""


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
        return FileStore(Path(parts.netloc + parts.path))
    if scheme == "sqlite":
        path = text.split("://", 1)[1]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
        if not path:
            raise UnknownStoreURL(f"store URL {text!r} names no database file; use sqlite:///agents.db")
        return SQLiteStore(Path(path))
    raise UnknownStoreURL(
        f"store URL {text!r} has an unknown scheme {scheme!r}; use a path, file://, memory:// or sqlite:///"
    )
