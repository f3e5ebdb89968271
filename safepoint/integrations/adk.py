"""Google ADK on safepoint: a `BaseSessionService` over any safepoint store (directory, SQLite, PostgreSQL, Redis, S3).

    from google.adk.runners import Runner
    from safepoint.integrations.adk import SafepointSessionService

    runner = Runner(agent=agent, app_name="shop", session_service=SafepointSessionService("sqlite:///agents.db"))

How ADK's records map onto safepoint's (docs/adk.md has the long form):

- An ADK session (app, user, id) is a safepoint session, agent `adk`, named `<app>.<user>.<id>` (`_adk_keys`).
  Its state holds the session state (no prefixed keys), the events (as ADK's own JSON) and the last update time.
  Each appended event is the next checkpoint, stored as a delta: a long conversation costs O(change) on disk,
  and `safepoint ls / show / history / diff` read it like a native session.
- `app:` and `user:` state live in sessions of their own (`adk-app:<app>`, `adk-user:<app>.<user>`), shared by
  every session of the app or user; `temp:` keys live only in the caller's session object, as in ADK.
- Stale writers: a session read or written through this service carries the head it saw (ADK's
  `_storage_update_marker`). Appending from an older copy raises ADK's `StaleSessionError`, as
  `DatabaseSessionService` does, and so does losing the commit race to another process: nothing is saved.
- An event's `app:`/`user:` changes commit with the event (in its session), then are applied to the shared state;
  a crash between the two leaves them pending in the session, and they are applied on its next read or append.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from google.adk.errors._stale_session_error import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.platform import time as platform_time
from google.adk.platform import uuid as platform_uuid
from google.adk.sessions import _session_util
from google.adk.sessions.base_session_service import BaseSessionService, GetSessionConfig, ListSessionsResponse
from google.adk.sessions.session import Session
from google.adk.sessions.state import State

from ..core import codec
from ..errors import ConflictError
from ..model import Status
from ..repository import Repository
from ..stores import Store, open_store
from . import _adk_keys as keys
from ._documents import Document, Documents, Head

__all__ = ["AGENT", "SafepointSessionService"]

#: The `agent` of every session this service creates; other sessions are never written to.
AGENT = "adk"
_STALE = (
    "The session has been modified in storage since it was loaded. "
    "Please reload the session before appending more events."
)


def _event_json(event: Event) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)


def _status(event: Event | None) -> Status:
    """Paused between turns (the agent answered and waits for the user), running inside one."""
    if event is not None and event.author != "user" and event.is_final_response():
        return Status.PAUSED
    return Status.RUNNING


class SafepointSessionService(BaseSessionService):
    """ADK's session service on any safepoint store: `SafepointSessionService("sqlite:///agents.db")`,
    `SafepointSessionService("./.safepoint")`, or a `Repository` / `Store`. Async methods run the synchronous
    core in a worker thread."""

    def __init__(self, store: Store | Repository | str | os.PathLike[str] | None = None) -> None:
        self.store = store.store if isinstance(store, Repository) else open_store(store)
        self._docs = Documents(self.store, AGENT)

    @property
    def repository(self) -> Repository:
        """The same store seen through safepoint's own API (sessions, history, diff, fsck...)."""
        return Repository(self.store)

    def __repr__(self) -> str:
        return f"SafepointSessionService({self.store.url!r})"

    # --- BaseSessionService -----------------------------------------------------------------------------
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        return await asyncio.to_thread(self.create_session_sync, app_name, user_id, state, session_id)

    async def get_session(
        self, *, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None = None
    ) -> Session | None:
        return await asyncio.to_thread(self.get_session_sync, app_name, user_id, session_id, config)

    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        return await asyncio.to_thread(self.list_sessions_sync, app_name, user_id)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        await asyncio.to_thread(self.delete_session_sync, app_name, user_id, session_id)

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._scoped_state, keys.user_state_id(app_name, user_id))

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        return await asyncio.to_thread(self.append_event_sync, session, event)

    # --- the same, synchronously --------------------------------------------------------------------------
    def create_session_sync(
        self, app_name: str, user_id: str, state: dict[str, Any] | None = None, session_id: str | None = None
    ) -> Session:
        """Create a session; AlreadyExistsError when (app, user, id) exists."""
        session_id = (session_id.strip() if session_id else None) or platform_uuid.new_uuid()
        deltas = _session_util.extract_json_safe_state_delta(state or {})
        doc = self._doc(app_name, user_id, session_id)
        entry = {"app_name": app_name, "user_id": user_id, "id": session_id, "session": doc.id}
        self.store.put(keys.index_key(app_name, user_id, session_id), codec.seal(codec.dumps(entry)))
        doc.create([f"app={app_name}", f"user={user_id}"])
        now = platform_time.get_time()
        body = {
            "adk": {"app_name": app_name, "user_id": user_id, "id": session_id},
            "state": deltas["session"],
            "events": [],
            "last_update_time": now,
            "scoped": {"seq": 1, "app": deltas["app"], "user": deltas["user"]}
            if deltas["app"] or deltas["user"]
            else None,
        }
        with doc.lock:
            head = doc.head()
            if head.seq:
                raise AlreadyExistsError(f"Session with id {session_id} already exists.")
            try:
                head = doc.commit(head, body, {}, step="created", status=Status.PAUSED, meta={"adk": {"time": now}})
            except ConflictError:
                raise AlreadyExistsError(f"Session with id {session_id} already exists.") from None
        self._settle(doc.id, body)
        return self._session(head, body, app_name, user_id, events=[])

    def get_session_sync(
        self, app_name: str, user_id: str, session_id: str, config: GetSessionConfig | None = None
    ) -> Session | None:
        session_id = session_id.strip() if session_id else session_id
        doc = self._doc(app_name, user_id, session_id, create=False)
        head = doc.head() if doc is not None else None
        if head is None or not head.seq:
            return None
        self._settle(doc.id, head.state)
        events = head.state["events"]
        if config is not None:
            if config.num_recent_events is not None:
                events = events[-config.num_recent_events :] if config.num_recent_events else []
            if config.after_timestamp is not None:
                events = [e for e in events if e["timestamp"] >= config.after_timestamp]
        return self._session(head, head.state, app_name, user_id, events=[Event.model_validate(e) for e in events])

    def list_sessions_sync(self, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        """The sessions of an app (of one user), without events, oldest update first."""
        app_state = self._scoped_state(keys.app_state_id(app_name))
        user_states: dict[str, dict[str, Any]] = {}
        sessions = []
        for key in self.store.list(keys.index_prefix(app_name, user_id)):
            blob = self.store.get(key)
            if blob is None:
                continue
            entry = codec.load_sealed(blob, key)
            if entry["app_name"] != app_name or (user_id is not None and entry["user_id"] != user_id):
                continue
            doc = self._docs.get(entry["session"])
            head = doc.head() if doc.exists() else None
            if head is None or not head.seq:
                continue  # created in the index, never committed (a crash mid-create)
            uid = entry["user_id"]
            if uid not in user_states:
                user_states[uid] = self._scoped_state(keys.user_state_id(app_name, uid))
            sessions.append(
                self._session(head, head.state, app_name, uid, events=[], scoped=(app_state, user_states[uid]))
            )
        sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
        return ListSessionsResponse(sessions=sessions)

    def delete_session_sync(self, app_name: str, user_id: str, session_id: str) -> None:
        session_id = session_id.strip() if session_id else session_id
        doc = self._doc(app_name, user_id, session_id, create=False)
        if doc is not None:
            doc.delete()
            self._docs.forget(doc.id)
        self.store.delete(keys.index_key(app_name, user_id, session_id))

    def append_event_sync(self, session: Session, event: Event) -> Event:
        """Append a (non-partial) event: its state delta applied, temp keys kept only in `session`."""
        doc = self._doc(session.app_name, session.user_id, session.id, create=False)
        head = doc.head() if doc is not None else None
        if head is None or not head.seq:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        stored = head.state["events"]
        if any(e.get("id") == event.id and e == _event_json(event) for e in stored):
            return event  # an equal event re-delivered: appended once (as ADK's in-memory service does)
        self._refuse_stale(session, head)
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        deltas = _session_util.extract_json_safe_state_delta(event.actions.state_delta or {})
        body = dict(head.state)
        body["state"] = {**head.state["state"], **deltas["session"]}
        body["events"] = [*stored, _event_json(event)]
        body["last_update_time"] = event.timestamp
        scoped = deltas["app"] or deltas["user"]
        body["scoped"] = {"seq": head.seq + 1, "app": deltas["app"], "user": deltas["user"]} if scoped else None
        try:
            new = doc.commit(
                head,
                body,
                head.runtime,
                step=f"event {event.author}",
                status=_status(event),
                meta={"adk": {"event_id": event.id, "time": event.timestamp}},
            )
        except ConflictError:
            raise StaleSessionError(_STALE) from None
        self._settle(doc.id, body)
        session.last_update_time = event.timestamp
        session._storage_update_marker = new.marker
        return self._commit_event_to_session(session, event)

    # --- helpers ------------------------------------------------------------------------------------------
    def _doc(self, app_name: str, user_id: str, session_id: str, *, create: bool = True) -> Document | None:
        doc = self._docs.get(keys.session_id_for(app_name, user_id, session_id))
        if not create and not doc.exists():
            return None
        return doc

    def _refuse_stale(self, session: Session, head: Head) -> None:
        """StaleSessionError when `session` is an older copy than the stored head (DatabaseSessionService's rule)."""
        marker = session._storage_update_marker
        if marker is not None:
            if marker != head.marker:
                raise StaleSessionError(_STALE)
            return
        stored = head.state["events"]
        if head.state["last_update_time"] > session.last_update_time:
            latest = stored[-1]["id"] if stored else None
            if latest != (session.events[-1].id if session.events else None):
                raise StaleSessionError(_STALE)

    def _session(
        self,
        head: Head,
        body: dict[str, Any],
        app_name: str,
        user_id: str,
        *,
        events: list[Event],
        scoped: tuple[dict[str, Any], dict[str, Any]] | None = None,
    ) -> Session:
        app_state, user_state = scoped or (
            self._scoped_state(keys.app_state_id(app_name)),
            self._scoped_state(keys.user_state_id(app_name, user_id)),
        )
        state = dict(codec.loads(codec.dumps(body["state"])))
        state.update({State.APP_PREFIX + k: v for k, v in app_state.items()})
        state.update({State.USER_PREFIX + k: v for k, v in user_state.items()})
        session = Session(
            app_name=app_name,
            user_id=user_id,
            id=body["adk"]["id"],
            state=state,
            events=events,
            last_update_time=body["last_update_time"],
        )
        session._storage_update_marker = head.marker
        return session

    def _scoped_state(self, scoped_id: str) -> dict[str, Any]:
        doc = self._docs.get(scoped_id)
        if not doc.exists():
            return {}
        state = doc.head().state
        return dict(codec.loads(codec.dumps(state["state"]))) if state else {}

    def _settle(self, source: str, body: dict[str, Any]) -> None:
        """Apply the `app:`/`user:` changes the session's latest checkpoint carries, unless already applied."""
        scoped = body.get("scoped")
        if not scoped:
            return
        app_name, user_id = body["adk"]["app_name"], body["adk"]["user_id"]
        for scoped_id, delta in (
            (keys.app_state_id(app_name), scoped["app"]),
            (keys.user_state_id(app_name, user_id), scoped["user"]),
        ):
            if delta:
                self._apply_scoped(scoped_id, source, scoped["seq"], delta)

    def _apply_scoped(self, scoped_id: str, source: str, seq: int, delta: dict[str, Any]) -> None:
        doc = self._docs.get(scoped_id)
        doc.create([])

        def change(head: Head, state: Any, runtime: dict[str, Any]):
            if state["applied"].get(source, 0) >= seq:
                return None
            state["state"] = {**state["state"], **delta}
            state["applied"] = {**state["applied"], source: seq}
            return f"from {source}", Status.PAUSED, {"adk": {"source": source, "seq": seq}}

        doc.update(change, lambda: {"state": {}, "applied": {}})
