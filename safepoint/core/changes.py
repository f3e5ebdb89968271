"""Announcing commits, for live views (the dashboard): on stores with a notification channel (PostgreSQL's
LISTEN/NOTIFY), every commit's session id goes out on channel `changes`.

Off the save path: `announce` only adds the id to a set; a background thread per store sends the ids
collected, a few milliseconds' worth at a time, in one notification, and exits when idle. So a save costs a set
insert, and a burst of saves one notification, never a NOTIFY inside the commit's transaction (PostgreSQL
serializes the commits of notifying transactions). Best effort: a process killed before its thread sent loses
the announcement, so listeners also look at the summary index now and then (see dashboard.live).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from ..errors import StorageError
from ..stores.base import Listener, Store

CHANNEL = "changes"
#: A payload meaning "many sessions changed: look at them all".
EVERYTHING = "*"
#: How long the announcer gathers ids before sending (seconds), and how long it lingers idle before exiting.
GATHER = 0.02
IDLE_EXIT = 5.0
MAX_PAYLOAD = 7000  # bytes; PostgreSQL's limit is 8000

_announcers: dict[int, _Announcer] = {}
_lock = threading.Lock()


def announce(store: Store, session_id: str) -> None:
    """Say that `session_id` committed (a no-op on stores that cannot notify)."""
    if not store.can_notify:
        return
    with _lock:
        announcer = _announcers.get(id(store))
        if announcer is None or not announcer.alive:
            announcer = _announcers[id(store)] = _Announcer(store)
        announcer.add(session_id)


def listen(store: Store) -> Listener | None:
    """A listener for the announcements, or None when the store cannot notify (look at the index instead)."""
    return store.listen(CHANNEL) if store.can_notify else None


def heard(payloads: Iterable[str]) -> list[str]:
    """The session ids in received payloads (EVERYTHING among them when a sender had too many to list)."""
    return [sid for payload in payloads for sid in payload.split("\n") if sid]


class _Announcer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.alive = True
        self._pending: set[str] = set()
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="safepoint-announce", daemon=True).start()

    def add(self, session_id: str) -> None:
        self._pending.add(session_id)  # (under the module lock)
        self._wake.set()

    def _run(self) -> None:
        while True:
            if not self._wake.wait(IDLE_EXIT):
                with _lock:
                    if not self._pending:
                        self.alive = False
                        return
            self._wake.clear()
            self._wake.wait(GATHER)  # let a burst of commits gather
            with _lock:
                ids, self._pending = self._pending, set()
            if ids:
                self._send(ids)

    def _send(self, ids: set[str]) -> None:
        payload = "\n".join(sorted(ids))
        if len(payload.encode()) > MAX_PAYLOAD:
            payload = EVERYTHING
        try:
            self.store.notify(CHANNEL, payload)
        except (StorageError, ValueError):
            pass  # (the store was closed, or the server is away): live views find the commits at their next look
