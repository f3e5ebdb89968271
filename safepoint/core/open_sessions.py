"""The index of open sessions: the ones a worker may have to pick up, so that it need not read every session.

A session is open until its head is completed, failed or cancelled. The key `open/<segment>` (its value the session id)
exists for every open session, and a worker lists that prefix: a pass costs what is open, not everything the
store ever ran.

- Written, durably, whenever a session may become resumable: when it is opened for writing (after its lease
  is taken), forked, imported, or answered (`mark`). Before that write, nothing of the session is running.
- Removed after a commit that completes or fails the session (`Chain.commit`), and by a worker that finds a
  listed session completed, failed or without checkpoints while it holds the session's lease (`Worker._forget`):
  a writer opening the session meanwhile cannot hold the lease, and marks it again once it does. A session
  opened with `lease=False` has no such guard: a worker cleaning up at that moment may drop its entry.
- Stores written before the index existed have no entries: the first worker lists every session once, marks
  the open ones and writes `open-index`; from then on workers list the index (`listed`). Writers of such
  older safepoint versions do not mark their sessions: upgrade them before the workers.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import Status
from ..stores.base import Store

PREFIX = "open/"
#: Present once every open session of the store has its entry.
COMPLETE = "open-index"
#: Statuses that close a session.
CLOSED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED})


def key(segment: str) -> str:
    return f"{PREFIX}{segment}"


def mark(store: Store, segment: str, session_id: str) -> None:
    """List the session as open (one read when it already is)."""
    if not store.exists(key(segment)):
        store.put(key(segment), session_id.encode())


def unmark(store: Store, segment: str) -> None:
    store.delete(key(segment))


def listed(store: Store) -> list[str] | None:
    """The ids of the sessions listed open; None while the store's index is not known to be complete."""
    if not store.exists(COMPLETE):
        return None
    values = (store.get(entry) for entry in store.list(PREFIX))
    # (None: removed since the listing. A damaged entry yields an id that names no session: the worker
    # reports it and goes on.)
    return [value.decode(errors="replace") for value in values if value is not None]


def complete(store: Store, open_ids: Iterable[tuple[str, str]]) -> None:
    """Mark every `(segment, id)` given (the open sessions of a full scan), then record the index complete."""
    for segment, session_id in open_ids:
        mark(store, segment, session_id)
    store.put(COMPLETE, b"1")
