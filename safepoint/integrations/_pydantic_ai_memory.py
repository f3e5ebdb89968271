"""`SafepointMemoryStore`: pydantic-ai-harness's `MemoryStore` (with metadata and search) as one safepoint session.

The whole namespace is one session (default `pydantic-ai-memory`); every write or delete is its next checkpoint,
so `safepoint history` lists each change and `safepoint diff` shows it. A file's version is the seq of the
checkpoint that last wrote it: unique and never reused, so compare-and-set on it is exact. Writes to different
paths from different processes do not conflict: a writer that loses the commit race re-reads the head and checks
its own path's version again. Operation receipts (the last 1,024, as the harness's own stores keep) commit in the
same checkpoint as the change they describe, so a retried operation can never apply twice.

Search is a plain token match over the stored files, scored like the harness's bundled stores (occurrences of
each query term in the content, twice that in the path), over the direct children of the prefix. safepoint has
no search index yet; when it does, this is where it plugs in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio.to_thread
from pydantic_ai_harness.memory import (
    MemoryConflictError,
    MemoryFile,
    MemoryMutation,
    MemoryOperation,
    MemoryOperationConflictError,
    MemorySearchMatch,
    MemorySearchResult,
)

from ..model import Status
from ..repository import Repository
from ..stores import Store, open_store
from ._documents import Document, Head

#: The receipts kept for replay protection, as many as the harness's in-memory and file stores keep.
MAX_RECEIPTS = 1024
MAX_METADATA_CHARS = 4096
_SEGMENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def check_path(path: str, *, prefix: bool = False) -> None:
    """ValueError unless `path` is segments of [A-Za-z0-9_.-]{1,200}, none '.' or containing '..'."""
    if prefix:
        if not path:
            return
        path = path.removesuffix("/")
    segments = path.split("/") if isinstance(path, str) else [None]
    for segment in segments:
        if (
            not isinstance(segment, str)
            or not 1 <= len(segment) <= 200
            or not set(segment) <= _SEGMENT_CHARS
            or ".." in segment
            or segment == "."
        ):
            raise ValueError(f"invalid memory path: {path!r}: use segments of letters, digits, '_', '.', '-'")


def _metadata(metadata: Mapping[str, str] | None) -> dict[str, str] | None:
    if not metadata:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("memory metadata keys and values must be strings")
    if any("\x00" in k or "\x00" in v for k, v in metadata.items()):
        raise ValueError("memory metadata keys and values must not contain NUL characters")
    plain = dict(metadata)
    size = len(json.dumps(plain, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
    if size > MAX_METADATA_CHARS:
        raise ValueError(f"memory metadata is {size} characters as JSON; the limit is {MAX_METADATA_CHARS}")
    return plain


def _empty() -> dict[str, Any]:
    return {"files": {}, "receipts": []}


def _receipt(state: dict[str, Any], operation: MemoryOperation | None) -> MemoryMutation | None:
    if operation is None:
        return None
    for op_id, fingerprint, version, existed in state["receipts"]:
        if op_id == operation.id:
            if fingerprint != operation.fingerprint:
                raise MemoryOperationConflictError(f"operation id {operation.id!r} was reused with different arguments")
            return MemoryMutation(version=version, replayed=True, existed=existed)
    return None


def _keep_receipt(state: dict[str, Any], operation: MemoryOperation | None, version: str | None, existed: bool) -> None:
    if operation is not None:
        state["receipts"] = [*state["receipts"], [operation.id, operation.fingerprint, version, existed]][
            -MAX_RECEIPTS:
        ]


def _score(path: str, content: str, terms: list[str]) -> float:
    lower_path, lower = path.lower(), content.lower()
    return float(sum(lower.count(t) + 2 * lower_path.count(t) for t in terms))


def _snippet(content: str, terms: list[str], budget: int) -> str:
    lower = content.lower()
    found = [p for t in terms if (p := lower.find(t)) >= 0]
    start = max(0, (min(found) if found else 0) - budget // 3)
    end = min(len(content), start + budget)
    start = max(0, end - budget)
    text = content[start:end]
    if start and len(text) >= 3:
        text = "..." + text[3:]
    if end < len(content) and len(text) >= 3:
        text = text[:-3] + "..."
    return text


class SafepointMemoryStore:
    """pydantic-ai-harness's `MemoryStore` (and `MetadataMemoryStore`, `SearchableMemoryStore`) on safepoint."""

    def __init__(
        self,
        store: Store | Repository | str | os.PathLike[str] | None = None,
        *,
        session: str = "pydantic-ai-memory",
    ) -> None:
        self.store = store.store if isinstance(store, Repository) else open_store(store)
        self._doc = Document(self.store, session, "pydantic-ai")
        self._doc.exists()  # refuse a native session of that name now, not at the first write

    @property
    def session_id(self) -> str:
        return self._doc.id

    def __repr__(self) -> str:
        return f"SafepointMemoryStore({self.store.url!r}, session={self.session_id!r})"

    # --- the protocol -------------------------------------------------------------------------------------
    async def read(self, path: str, *, max_chars: int) -> MemoryFile | None:
        return await anyio.to_thread.run_sync(partial(self.read_sync, path, max_chars=max_chars))

    async def get_operation(self, operation: MemoryOperation) -> MemoryMutation | None:
        return await anyio.to_thread.run_sync(self.get_operation_sync, operation)

    async def write(
        self, path: str, content: str, *, expected_version: str | None, operation: MemoryOperation | None = None
    ) -> MemoryMutation:
        return await self.write_with_metadata(
            path, content, expected_version=expected_version, metadata=None, operation=operation
        )

    async def write_with_metadata(
        self,
        path: str,
        content: str,
        *,
        expected_version: str | None,
        metadata: Mapping[str, str] | None,
        operation: MemoryOperation | None = None,
    ) -> MemoryMutation:
        call = partial(self.write_sync, path, content, expected_version=expected_version, metadata=metadata)
        return await anyio.to_thread.run_sync(partial(call, operation=operation))

    async def delete(
        self, path: str, *, expected_version: str | None, operation: MemoryOperation | None = None
    ) -> MemoryMutation:
        call = partial(self.delete_sync, path, expected_version=expected_version, operation=operation)
        return await anyio.to_thread.run_sync(call)

    async def list_paths(self, prefix: str = "", *, limit: int) -> list[str]:
        return await anyio.to_thread.run_sync(partial(self.list_paths_sync, prefix, limit=limit))

    async def search(
        self, prefix: str, query: str, *, limit: int, max_files: int, max_chars: int, max_file_chars: int
    ) -> MemorySearchResult:
        call = partial(self.search_sync, prefix, query, limit=limit, max_files=max_files)
        return await anyio.to_thread.run_sync(partial(call, max_chars=max_chars, max_file_chars=max_file_chars))

    # --- the same, synchronously ---------------------------------------------------------------------------
    def _files(self) -> dict[str, Any]:
        state = self._doc.head().state
        return state["files"] if state else {}

    def read_sync(self, path: str, *, max_chars: int) -> MemoryFile | None:
        check_path(path)
        if max_chars <= 0:
            raise ValueError("max_chars must be positive")
        entry = self._files().get(path)
        if entry is None:
            return None
        content = entry["content"]
        return MemoryFile(
            content=content[:max_chars],
            version=entry["version"],
            operation_id=entry.get("operation_id"),
            truncated=len(content) > max_chars,
            metadata=dict(entry["metadata"]) if entry.get("metadata") else None,
        )

    def get_operation_sync(self, operation: MemoryOperation) -> MemoryMutation | None:
        state = self._doc.head().state
        return _receipt(state, operation) if state else None

    def write_sync(
        self,
        path: str,
        content: str,
        *,
        expected_version: str | None,
        metadata: Mapping[str, str] | None = None,
        operation: MemoryOperation | None = None,
    ) -> MemoryMutation:
        """Create or replace `path` if its version is `expected_version` (None: only if absent)."""
        check_path(path)
        if not isinstance(content, str):
            raise TypeError(f"memory content must be a string, got {type(content).__name__}")
        plain = _metadata(metadata)
        outcome: list[MemoryMutation] = []

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            outcome.clear()
            if (replayed := _receipt(state, operation)) is not None:
                outcome.append(replayed)
                return None
            current = state["files"].get(path)
            if (current["version"] if current else None) != expected_version:
                raise MemoryConflictError(f"memory path {path!r} changed before it could be written")
            version = str(head.seq + 1)
            entry: dict[str, Any] = {"content": content, "version": version}
            if operation is not None:
                entry["operation_id"] = operation.id
            if plain:
                entry["metadata"] = plain
            state["files"] = {**state["files"], path: entry}
            _keep_receipt(state, operation, version, current is not None)
            outcome.append(MemoryMutation(version=version, replayed=False, existed=current is not None))
            return f"write {path}", Status.RUNNING, {"memory": {"op": "write", "path": path}}

        self._change(change)
        return outcome[0]

    def delete_sync(
        self, path: str, *, expected_version: str | None, operation: MemoryOperation | None = None
    ) -> MemoryMutation:
        """Delete `path` if its version is `expected_version` (deleting an absent path with None is a no-op)."""
        check_path(path)
        outcome: list[MemoryMutation] = []

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            outcome.clear()
            if (replayed := _receipt(state, operation)) is not None:
                outcome.append(replayed)
                return None
            current = state["files"].get(path)
            if (current["version"] if current else None) != expected_version:
                raise MemoryConflictError(f"memory path {path!r} changed before it could be deleted")
            state["files"] = {p: e for p, e in state["files"].items() if p != path}
            _keep_receipt(state, operation, None, current is not None)
            outcome.append(MemoryMutation(version=None, replayed=False, existed=current is not None))
            if current is None and operation is None:
                return None  # nothing changed and nothing to remember
            return f"delete {path}", Status.RUNNING, {"memory": {"op": "delete", "path": path}}

        self._change(change)
        return outcome[0]

    def list_paths_sync(self, prefix: str = "", *, limit: int) -> list[str]:
        check_path(prefix, prefix=True)
        if limit <= 0:
            raise ValueError("limit must be positive")
        return sorted(p for p in self._files() if p.startswith(prefix))[:limit]

    def search_sync(
        self, prefix: str, query: str, *, limit: int, max_files: int, max_chars: int, max_file_chars: int
    ) -> MemorySearchResult:
        """Token match over the direct children of `prefix`, best score first (ties by path)."""
        check_path(prefix, prefix=True)
        terms = [t for t in query.lower().split() if t]
        if not terms or limit <= 0 or max_files <= 0 or max_chars <= 0 or max_file_chars <= 0:
            return MemorySearchResult(matches=[], scanned=0, truncated=False)
        files = self._files()
        children = sorted(p for p in files if p.startswith(prefix) and "/" not in p.removeprefix(prefix))
        scanned = children[:max_files]
        truncated = len(children) > max_files
        scored = []
        for path in scanned:
            content = files[path]["content"]
            truncated |= len(content) > max_file_chars
            content = content[:max_file_chars]
            if score := _score(path.removeprefix(prefix), content, terms):
                scored.append((score, path, content))
        scored.sort(key=lambda item: (-item[0], item[1]))
        matches, budget = [], max_chars
        for score, path, content in scored[:limit]:
            room = budget - len(path.removeprefix(prefix))
            if room <= 0:
                truncated = True
                break
            snippet = _snippet(content, terms, room)
            matches.append(MemorySearchMatch(path=path, snippet=snippet, score=score))
            budget -= len(path.removeprefix(prefix)) + len(snippet)
        truncated |= len(scored) > len(matches)
        return MemorySearchResult(matches=matches, scanned=len(scanned), truncated=truncated)

    def _change(self, change) -> None:
        if not self._doc.exists():
            self._doc.create(["memory"])
        self._doc.update(change, _empty)
