"""Live updates: which sessions changed, pushed to the open pages as server-sent events.

One `ChangeFeed` per app, started by the first page that listens and stopped with the app. It learns of
changes from the store's change channel where the store has one (PostgreSQL's LISTEN/NOTIFY: writers announce
each commit, see core.changes), with a slow look at the summary index as a safety net; elsewhere it looks at
the index every `poll` seconds (reading each entry's checksum, not decoding it) and reports the sessions whose
entry changed. Each page gets the ids in a `change` event and refreshes the parts that show them (live.js).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from ..core import changes, codec, session_index
from ..errors import SafepointError
from ..stores.base import Listener, Store

#: With a change channel, the index is still read this often, for announcements lost (a writer killed).
SAFETY_POLL = 10.0
KEEPALIVE = 15  # seconds between SSE comments that keep proxies from closing an idle stream


class ChangeFeed:
    """Reports the ids of changed sessions to every subscribed queue."""

    def __init__(self, store: Store, *, poll: float = 1.0) -> None:
        self.store = store
        self.poll = poll
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[list[str]]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._digests: dict[str, str] | None = None

    def subscribe(self) -> asyncio.Queue[list[str]]:
        queue: asyncio.Queue[list[str]] = asyncio.Queue(maxsize=100)
        with self._lock:
            self._subscribers.add((asyncio.get_running_loop(), queue))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="safepoint-dashboard-feed", daemon=True)
                self._thread.start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[list[str]]) -> None:
        with self._lock:
            self._subscribers = {(loop, q) for loop, q in self._subscribers if q is not queue}

    def close(self) -> None:
        self._stop.set()

    def _publish(self, ids: list[str]) -> None:
        if not ids:
            return
        with self._lock:
            targets = list(self._subscribers)
        for loop, queue in targets:
            loop.call_soon_threadsafe(_offer, queue, ids)

    def _run(self) -> None:
        listener = self._listen()
        self.changed()  # the starting point: every later look reports differences from it
        last_look = time.monotonic()
        while not self._stop.is_set():
            if listener is not None:
                try:
                    ids = changes.heard(listener.wait(timeout=1.0))
                except SafepointError:
                    listener.close()
                    listener = None
                    continue
                if changes.EVERYTHING in ids or time.monotonic() - last_look > SAFETY_POLL:
                    ids = self.changed()
                    last_look = time.monotonic()
                self._publish(ids)
            else:
                started = time.monotonic()
                self._publish(self.changed())
                spent = time.monotonic() - started
                # A big store on a slow disk: never spend more than a quarter of the time looking.
                self._stop.wait(max(self.poll - spent, 3 * spent))
        if listener is not None:
            listener.close()

    def _listen(self) -> Listener | None:
        try:
            return changes.listen(self.store)
        except SafepointError:
            return None

    def changed(self) -> list[str]:
        """Ids of the sessions whose index entry changed since the last call (all of them the first time: [])."""
        try:
            found = {key: codec.payload_digest(blob) for key, blob in self.store.items(session_index.PREFIX)}
        except SafepointError:
            return []  # the store is unreachable for now: look again later
        before, self._digests = self._digests, found
        if before is None:
            return []
        ids = []
        for key, digest in found.items():
            if before.get(key) != digest:
                doc = session_index.read(self.store, key[len(session_index.PREFIX) :])
                if doc is not None:
                    ids.append(doc["id"])
        return ids


def _offer(queue: asyncio.Queue[list[str]], ids: list[str]) -> None:
    try:
        queue.put_nowait(ids)
    except asyncio.QueueFull:
        pass  # a page that does not read its events falls behind; it refreshes on the next one


async def events(request: Request) -> EventSourceResponse:
    """The SSE stream: a `change` event with the JSON list of changed session ids."""
    feed: ChangeFeed = request.app.state.dashboard.feed
    queue = feed.subscribe()

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            yield {"event": "ready", "data": "{}"}
            while True:
                ids = await queue.get()
                yield {"event": "change", "data": json.dumps(sorted(set(ids)))}
        finally:
            feed.unsubscribe(queue)

    return EventSourceResponse(stream(), ping=KEEPALIVE)
