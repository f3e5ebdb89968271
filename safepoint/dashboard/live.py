"""Live updates: which sessions changed, pushed to the open pages as server-sent events.

One `ChangeFeed` per app, started by the first page that listens and stopped with the app. It keeps the app's
in-memory copy of the summary index (`core.session_index.Mirror`) current and reports the sessions whose entry
changed. It learns of changes from the store's change channel where the store has one (PostgreSQL's
LISTEN/NOTIFY: writers announce each commit, see core.changes) and re-reads just those entries, with a full look
every SAFETY_POLL seconds as a safety net; elsewhere it re-reads the index every `poll` seconds (decoding only
the entries whose bytes changed). Each page gets the ids in a `change` event and refreshes the parts that show
them (live.js).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from ..core import changes, session_index
from ..core.history import session_segment
from ..errors import SafepointError
from ..stores.base import Listener, Store

#: With a change channel, the index is still read this often, for announcements lost (a writer killed).
SAFETY_POLL = 10.0
KEEPALIVE = 15  # seconds between SSE comments that keep proxies from closing an idle stream


class ChangeFeed:
    """Reports the ids of changed sessions to every subscribed queue."""

    def __init__(self, store: Store, index: session_index.Mirror, *, poll: float = 1.0) -> None:
        self.store = store
        self.index = index
        self.poll = poll
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[list[str]]]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

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
        loaded = self.index.loaded
        first = self.changed()
        if loaded:  # changes since a page read the copy: theirs to show (else this look is the starting point)
            self._publish(first)
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
                elif ids:
                    self._reload(ids)
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
        """Re-read the index; the ids of the sessions whose entry changed since the last look."""
        try:
            return self.index.refresh()
        except SafepointError:
            return []  # the store is unreachable for now: look again later

    def _reload(self, ids: list[str]) -> None:
        try:
            self.index.reload(ids, session_segment)
        except SafepointError:
            pass  # the next full look catches up


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
