"""The SDK's `Session` protocol on a safepoint store: `SafepointSession` (see `openai_agents` for the tour)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agents.memory.session_settings import SessionSettings, coerce_session_settings, resolve_session_limit

from ..model import Status
from ..repository import Repository
from ..runtime.leases import Lease
from ..stores import Store, open_store
from ._openai_agents_conversation import Change, Conversation, Runtime, State, private


class SafepointSession:
    """An OpenAI Agents SDK `Session` whose items live in a safepoint store (see the module docstring).

    `store`: a URL or path (`"./.safepoint"`, `"sqlite:///agents.db"`, `"postgresql://..."`, `"memory://"`), a
    `safepoint.Repository` or a `Store`; None: `$SAFEPOINT_STORE` or `./.safepoint`. Any number of instances, in
    any number of processes, may use one session id at once: every change is a conditional commit.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        store: str | os.PathLike[str] | Repository | Store | None = None,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
    ) -> None:
        self.store = store.store if isinstance(store, Repository) else open_store(store)
        self._owns_store = not isinstance(store, Repository | Store)  # opened here from a URL: close() closes it
        self._conversation = Conversation(self.store, session_id)
        self.session_id = self._conversation.id
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self._run_marker: dict[str, Any] | None = None  # a durable run started: ride in the next commit
        self._lease: Lease | None = None  # held by this object's durable run (its commits carry the fence)

    @property
    def repository(self) -> Repository:
        """The store as a safepoint Repository (history, diff, send, fsck)."""
        return Repository(self.store)

    # --- the SDK's Session protocol -------------------------------------------------------------------
    async def get_items(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The conversation's items, oldest first; with `limit` (or `session_settings.limit`), the latest N."""
        return await asyncio.to_thread(self.items, limit)

    async def add_items(self, items: list[Any]) -> None:
        """Append items to the conversation, as one checkpoint."""
        await asyncio.to_thread(self.add, items)

    async def pop_item(self) -> dict[str, Any] | None:
        """Remove and return the most recent item (None when the conversation is empty)."""
        return await asyncio.to_thread(self.pop)

    async def clear_session(self) -> None:
        """Empty the conversation (a new checkpoint: the earlier ones stay in its history until `gc`)."""
        await asyncio.to_thread(self.clear)

    # --- the same, synchronously ---------------------------------------------------------------------------
    def items(self, limit: int | None = None) -> list[dict[str, Any]]:
        """`get_items` without an event loop."""
        limit = resolve_session_limit(limit, self.session_settings)
        state = self._conversation.head()[0]
        items = state["items"]
        if limit is not None and limit >= 0:  # as SQLiteSession: 0 gives nothing, a negative limit everything
            items = items[max(0, len(items) - limit) :] if limit else []
        return private(items, "items")

    def add(self, items: list[Any]) -> None:
        """`add_items` without an event loop."""
        if not items:
            return
        new = private(list(items), "items")  # NotSerializable names the item: items[3].content

        marker = self._run_marker

        def append(state: State, runtime: Runtime, status: Status | None) -> Change:
            count = len(state["items"])
            what = f"add {len(new)} item" + ("s" if len(new) > 1 else "") + f" ({count + len(new)})"
            return _items_change(state, runtime, status, state["items"] + new, what, marker)

        self._conversation.change(append, self._lease)
        self._marked(marker)

    def pop(self) -> dict[str, Any] | None:
        """`pop_item` without an event loop."""

        marker = self._run_marker

        def pop_last(state: State, runtime: Runtime, status: Status | None) -> Change:
            if not state["items"]:
                return None, runtime, "", Status.RUNNING, {}, None
            last = state["items"][-1]
            return _items_change(state, runtime, status, state["items"][:-1], "pop item", marker, value=last)

        popped = self._conversation.change(pop_last, self._lease)
        self._marked(marker)
        return None if popped is None else private(popped, "item")

    def clear(self) -> None:
        """`clear_session` without an event loop."""

        def empty(state: State, runtime: Runtime, status: Status | None) -> Change:
            if not state["items"] and state.get("run") is None:
                return None, runtime, "", Status.COMPLETED, {}, None  # nothing to clear: no commit
            # A run waiting for approvals goes too: its RunState refers to the items cleared.
            runtime = {key: value for key, value in runtime.items() if key not in ("inputs", "ready", "resume_hint")}
            return {**state, "items": [], "run": None}, runtime, "clear", Status.COMPLETED, {}, None

        self._conversation.change(empty, self._lease)

    def close(self) -> None:
        """Close the store connection this session opened (a store or Repository passed in stays open)."""
        if self._owns_store:
            self.store.close()

    def _marked(self, marker: dict[str, Any] | None) -> None:
        if marker is not None and self._run_marker is marker:
            self._run_marker = None  # it rode in the commit that just landed

    def __repr__(self) -> str:
        return f"SafepointSession({self.session_id!r}, {self.store.url!r})"


def _items_change(
    state: State,
    runtime: Runtime,
    status: Status | None,
    items: list[Any],
    step: str,
    marker: dict[str, Any] | None,
    value: Any = None,
) -> Change:
    new_state = {**state, "items": items}
    if marker is not None:  # the first commit of a durable run (or of its resumption) marks it
        new_state["run"] = {**(state.get("run") or {}), **marker}
    return new_state, runtime, step, run_status(new_state), {}, value


def run_status(state: State) -> Status:
    """A conversation's status follows its durable run: `running`, `waiting` for approvals, `failed`; with no run
    in progress (between runs, or used only as the SDK's session memory) it is `completed`, at rest."""
    run = state.get("run") or {}
    return {"running": Status.RUNNING, "waiting": Status.WAITING, "failed": Status.FAILED}.get(
        run.get("status"), Status.COMPLETED
    )
