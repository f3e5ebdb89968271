"""Leases: the right of one worker to advance one session, with a fencing token that every commit carries.

A lease is the key `leases/<sid>` holding `{owner, token, expires_at}`, changed only by compare-and-set.
Taking a free or expired lease increments the token, so tokens only grow; releasing keeps the token and sets
`expires_at` to 0. A background thread renews the lease every `ttl / 3` seconds. If it finds the lease taken
by someone else (its holder was frozen past the ttl), the lease is lost: the next save raises `LeaseLost`
and commits nothing. Every commit carries the lease record as its holder last wrote it (a fence): the store
commits only while the record is unchanged, atomically with the commit on every store but S3 (which reads it
just before), so a holder frozen between its check and its commit cannot land a commit after a takeover.
A holder that died on this machine (its pid is gone) is taken over at once.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..core import codec
from ..errors import CorruptCheckpoint, LeaseLost, SessionBusy
from ..stores.base import Fence, Store

DEFAULT_TTL = 30.0
_HOST = socket.gethostname()


def lease_key(segment: str) -> str:
    return f"leases/{segment}"


def new_owner() -> str:
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseInfo:
    owner: str
    token: int
    expires_at: float

    def live(self, now: float | None = None) -> bool:
        """Held by a running holder: not expired, and not a process of this host that has died."""
        if self.expires_at <= (time.time() if now is None else now):
            return False
        host, _, rest = self.owner.partition(":")
        pid = rest.partition(":")[0]
        if host == _HOST and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True  # exists, owned by another user
        return True


def read_lease(store: Store, segment: str) -> tuple[LeaseInfo | None, bytes | None]:
    key = lease_key(segment)
    raw = store.get(key)
    if raw is None:
        return None, None
    doc = codec.load_sealed(raw, key)
    return LeaseInfo(doc["owner"], int(doc["token"]), float(doc["expires_at"])), raw


def _encode(owner: str, token: int, expires_at: float) -> bytes:
    return codec.seal(codec.dumps({"owner": owner, "token": token, "expires_at": expires_at}), compress=False)


class Lease:
    """A held lease. Every commit carries `fence()`; `release()` when done."""

    def __init__(self, store: Store, session_id: str, segment: str, *, ttl: float = DEFAULT_TTL) -> None:
        self.store = store
        self.session_id = session_id
        self.key = lease_key(segment)
        self.segment = segment
        self.ttl = ttl
        self.owner = new_owner()
        self.token = 0
        self._raw: bytes | None = None  # the lease record as this holder last wrote it
        self._expires_at = 0.0
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- taking and giving back -----------------------------------------------------------------
    def acquire(self, wait: float | None = None) -> Lease:
        """Take the lease; SessionBusy if another live holder has it (after waiting up to `wait` seconds)."""
        deadline = time.monotonic() + (wait or 0.0)
        while True:
            current, raw = read_lease(self.store, self.segment)
            if current is None or not current.live():
                token = (current.token if current else 0) + 1
                expires_at = time.time() + self.ttl
                fresh = _encode(self.owner, token, expires_at)
                if self.store.put(self.key, fresh, expect=raw):
                    self.token, self._raw, self._expires_at = token, fresh, expires_at
                    self._start_heartbeat()
                    return self
                continue  # someone else changed it between our read and write: look again
            if time.monotonic() >= deadline:
                raise SessionBusy(
                    f"session {self.session_id!r} is being run by {current.owner} (lease token {current.token}, "
                    f"expires in {current.expires_at - time.time():.0f} s); wait for it, or take it over "
                    "after it expires"
                )
            time.sleep(min(0.2, max(0.01, deadline - time.monotonic())))

    def release(self) -> None:
        """Give the lease back (keeping its token, so the next holder's is larger)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self._lost is None and self._raw is not None:
                self.store.put(self.key, _encode(self.owner, self.token, 0.0), expect=self._raw)
            self._raw = None

    # --- while held -------------------------------------------------------------------------------
    @contextmanager
    def fence(self) -> Iterator[Fence]:
        """The fence a commit carries: the lease record exactly as this holder last wrote it.

        Held under the lease lock, so the heartbeat cannot renew (change) the record while a commit checks
        it. A commit that finds the record changed raises FenceMismatch; `lost()` turns that into LeaseLost.
        """
        with self._lock:
            if self._lost is None and self._raw is None:
                self._lost = "it was released"
            elif self._lost is None and self._expires_at <= time.time():
                self._lost = "it expired before it could be renewed"
            if self._lost is not None:
                raise self._error()
            yield (self.key, self._raw)  # type: ignore[misc]

    def lost(self) -> LeaseLost:
        """The LeaseLost to raise after a fenced commit was refused, naming who holds the lease now."""
        self._raw = None
        try:
            current, _raw = read_lease(self.store, self.segment)
        except CorruptCheckpoint as exc:
            self._lost = f"the lease record is damaged ({exc.reason})"
        else:
            holder = f"{current.owner} (token {current.token})" if current else "nobody"
            self._lost = f"it is now held by {holder}"
        return self._error()

    def _error(self) -> LeaseLost:
        return LeaseLost(
            f"session {self.session_id!r}: this worker's lease (token {self.token}) was lost: {self._lost}; "
            "nothing was committed; stop, and let the current holder continue"
        )

    def renew(self) -> bool:
        with self._lock:
            if self._lost is not None or self._raw is None:
                return False
            expires_at = time.time() + self.ttl
            fresh = _encode(self.owner, self.token, expires_at)
            if self.store.put(self.key, fresh, expect=self._raw):
                self._raw, self._expires_at = fresh, expires_at
                return True
            self._lost = "another worker took it over while this one was not renewing"
            return False

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"safepoint-lease-{self.segment}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # noqa: BLE001 - a failed renewal is retried; check() decides at the next save
                continue

    def info(self) -> dict[str, Any]:
        return {"owner": self.owner, "token": self.token}
