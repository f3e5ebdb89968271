"""A worker: finds sessions that can go on and runs them with their registered agents, N at a time.

A session can go on when it was waiting and every question it asked has an answer (`ready`), or when it
was running and its lease has expired or its holder died (the process crashed). Between passes the worker
waits `poll_interval`; on a store that can notify (PostgreSQL) an answer delivered, or a session another
writer left running, wakes it at once (`safepoint.runtime.wake`). On SIGTERM the worker lets each run finish
its current step, which is checkpointed, then stops; leases are released on the way out.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ..core import open_sessions
from ..core.history import session_segment
from ..errors import AgentNotRegistered, SafepointError, SessionBusy, SessionNotFound, StorageError
from ..model import SessionInfo, Status
from ..runtime import timers
from ..runtime.leases import DEFAULT_TTL, Lease, LeaseInfo, read_lease
from ..runtime.steps import shutdown_requested
from ..runtime.wake import WAKE_CHANNEL
from ..stores.base import Listener
from .runner import AGENTS, Agent, RunResult, find_agent, run

if TYPE_CHECKING:
    from ..repository import Repository

Log = Callable[[str], None]
STOP_CHECK_SECONDS = 0.5


def resumable(
    repo: Repository, info: SessionInfo, lease_of: Callable[[], LeaseInfo | None] | None = None
) -> str | None:
    """Why this session should be picked up now ("answered", "crashed"), or None. `lease_of` gives its lease
    when the caller has read it already (else it is read here, and only for a running session)."""
    head = info.head
    if head is None:  # created, then the process died before its first checkpoint
        if not info.agent:
            return None
        lease = lease_of() if lease_of is not None else read_lease(repo.store, session_segment(info.id))[0]
        return "crashed before its first checkpoint" if lease is None or not lease.live() else None
    if head.status == Status.WAITING and head.meta.get("ready"):
        return "answered"
    if timers.due(head):
        return "timer due"
    if head.status == Status.RUNNING:
        lease = lease_of() if lease_of is not None else read_lease(repo.store, session_segment(info.id))[0]
        if lease is None or not lease.live():
            return "crashed" if lease is not None else "never leased"
    return None


def _unregistered(name: str | None, agents: dict[str, Agent]) -> str:
    try:
        find_agent(name, agents=agents)
    except AgentNotRegistered as exc:
        return str(exc)
    return f"agent {name!r} is registered"  # pragma: no cover - only called for names not in `agents`


class Worker:
    """Resume ready and crashed sessions with their agents. `run()` loops; `run_once()` makes one pass.

    Only the agents in `agents` (default: every `@safepoint.agent` this process registered) run; a session
    naming any other is skipped with a logged reason, and nothing it names is imported."""

    def __init__(
        self,
        repo: Repository,
        *,
        agents: dict[str, Agent] | None = None,
        concurrency: int = 1,
        poll_interval: float = 1.0,
        lease_ttl: float = DEFAULT_TTL,
        log: Log | None = None,
    ) -> None:
        self.repo = repo
        self.agents = agents if agents is not None else AGENTS
        self.concurrency = max(1, concurrency)
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.log = log or (lambda message: None)
        self.results: list[RunResult] = []
        self._stop = threading.Event()
        #: time.monotonic() after which `run` stops (serve's `until`), whenever its stop() fires
        self.deadline: float | None = None
        self._running: set[str] = set()
        self._refused: set[str | None] = set()  # agent names not registered here, each reported once
        self._lock = threading.Lock()

    def candidates(self) -> list[tuple[str, str]]:
        """(session id, reason) for every session with a registered agent that can go on now.

        The sessions looked at are those the store lists as open (`safepoint.core.open_sessions`); on a store whose
        index is not complete yet, every session, once, completing the index on the way.
        """
        store = self.repo.store
        listed = open_sessions.listed(store)
        ids = listed if listed is not None else list(self.repo.session_ids())
        found, still_open = [], []
        for session_id in ids:
            try:
                info = self.repo.info(session_id)
                reason = resumable(self.repo, info)
            except SessionNotFound:
                if listed is not None:
                    self._forget(session_id)
                continue
            except SafepointError as exc:
                self.log(f"skipping {session_id}: {exc}")
                continue
            closed = info.head is not None and info.head.status in open_sessions.CLOSED
            if listed is None and not closed:
                still_open.append((session_segment(session_id), session_id))
            elif listed is not None and closed:
                self._forget(session_id)
            if reason and session_id not in self._running:
                if info.agent in self.agents:
                    found.append((session_id, reason))
                elif info.agent not in self._refused:  # said once per agent name, not at every pass
                    self._refused.add(info.agent)
                    self.log(
                        f"skipping {session_id} ({reason}) and any other session of agent {info.agent!r}: "
                        + _unregistered(info.agent, self.agents)
                    )
        if listed is None:
            open_sessions.complete(store, still_open)
        return found

    def _forget(self, session_id: str) -> None:
        """Remove the index entry of a session that is closed or gone, looking again while
        holding its lease: a writer reopening it meanwhile waits for the lease, then marks it again."""
        segment = session_segment(session_id)
        try:
            lease = Lease(self.repo.store, session_id, segment, ttl=self.lease_ttl).acquire()
        except SafepointError:
            return  # held (being run or reopened): not closed after all, or the next pass sees it again
        try:
            try:
                head = self.repo.info(session_id).head
            except SessionNotFound:
                head = None
            gone = not self.repo.exists(session_id)
            if gone or (head is not None and head.status in open_sessions.CLOSED):
                open_sessions.unmark(self.repo.store, segment)
                self.log(f"{session_id}: completed, failed or deleted: no longer listed as open")
        except SafepointError as exc:  # the entry stays for the next pass
            self.log(f"{session_id}: cannot remove its open-session entry: {exc}")
        finally:
            with suppress(SafepointError):  # a lease not given back expires after its ttl
                lease.release()

    def run_once(self) -> list[RunResult]:
        """Run every session that can go on now, `concurrency` at a time; return how each run stopped."""
        todo = self.candidates()
        done: list[RunResult] = []
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="safepoint-worker") as pool:
            futures: list[Future[RunResult | None]] = [pool.submit(self._run_one, sid, why) for sid, why in todo]
            for future in futures:
                result = future.result()
                if result is not None:
                    done.append(result)
        self.results += done
        return done

    def _run_one(self, session_id: str, reason: str) -> RunResult | None:
        if shutdown_requested.is_set():
            return None
        with self._lock:
            if session_id in self._running:
                return None
            self._running.add(session_id)
        try:
            # The scan may be minutes old: another worker may have finished this session or be running it
            # now. Opening it anyway would take its lease again, re-ask a question it still waits for, and
            # report a run this worker never did. So look again, the lease before the head: a holder commits
            # its last checkpoint before it releases, so a released lease is never seen with a stale head.
            lease, _ = read_lease(self.repo.store, session_segment(session_id))
            if lease is not None and lease.live():
                return None  # held by another
            info = self.repo.info(session_id)
            if resumable(self.repo, info, lambda: lease) is None:
                return None
            fn = self.agents[info.agent or ""]
            self.log(f"resuming {session_id} ({reason}) with agent {info.agent}")
            result = run(fn, session_id, store=self.repo, lease_ttl=self.lease_ttl)
            self.log(f"{session_id}: {result.status} at seq {result.seq}")
            return result
        except SessionBusy:
            return None  # another worker got there first
        except Exception as exc:  # noqa: BLE001 - one agent's failure must not stop the worker
            self.log(f"{session_id}: failed: {type(exc).__name__}: {exc}")
            return None
        finally:
            with self._lock:
                self._running.discard(session_id)

    def run(self, *, until_idle: bool = False, handle_signals: bool = True) -> list[RunResult]:
        """Loop until stopped (SIGTERM, SIGINT, `stop()`), or with `until_idle` until a pass finds nothing."""
        shutdown_requested.clear()  # a previous worker's stop in this process must not stop this one
        self._stop.clear()
        previous = self._install_signals() if handle_signals else {}
        try:
            listener = self._listen()
            try:
                while not self._stop.is_set() and not self._past_deadline():
                    if not self.run_once() and until_idle:
                        break
                    if self._past_deadline():
                        break
                    listener = self._idle(listener)
            finally:
                if listener is not None:
                    listener.close()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            # Every run has stopped by now: the stop must not reach later `sp.run` calls of this process.
            shutdown_requested.clear()
        return self.results

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _listen(self) -> Listener | None:
        try:
            return self.repo.store.listen(WAKE_CHANNEL)
        except StorageError as exc:
            self.log(f"cannot listen for sessions to take on ({exc}); polling every {self.poll_interval} s")
            return None

    def _idle(self, listener: Listener | None) -> Listener | None:
        """Wait `poll_interval` before the next pass, or less: until a session is announced (an answer
        delivered, a session left running; see `safepoint.runtime.wake`), when the store can tell. In short
        slices, so a stop is seen within half a second. Returns the listener to go on with (None once it
        failed: the worker then polls)."""
        deadline = time.monotonic() + self.poll_interval
        while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            if listener is None:
                self._stop.wait(left)
                break
            try:
                if listener.wait(min(left, STOP_CHECK_SECONDS)):
                    break
            except StorageError as exc:
                self.log(f"stopped hearing of sessions to take on ({exc}); polling every {self.poll_interval} s")
                listener.close()
                listener = None
        return listener

    def stop(self) -> None:
        """Finish the current steps, checkpoint, release the leases, and stop."""
        shutdown_requested.set()
        self._stop.set()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        return previous


def serve(repo: Repository, *, until: float | None = None, **options: Any) -> list[RunResult]:
    """Run a worker (for `safepoint worker`); `until` stops it after that many seconds."""
    worker = Worker(repo, **options)
    if until is not None:
        worker.deadline = time.monotonic() + until  # a timer firing before run() starts must still count
    timer = threading.Timer(until, worker.stop) if until is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    started = time.monotonic()
    results = worker.run()
    if timer is not None:
        timer.cancel()
    worker.log(f"worker stopped after {time.monotonic() - started:.1f} s, {len(results)} run(s)")
    return results
