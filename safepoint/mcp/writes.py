"""How an MCP write becomes one checkpoint: checked first, then committed like any `Session.save()`.

A write is a `build` function from the head checkpoint (None for a new session) to the next state and runtime
records. It runs once before anything is written, so bad input (a bad path, a state failing its schema, a
value with no JSON form) is refused with the store untouched. Then the session is opened and saved as any
writer saves it (a delta against its head).

Optimistic concurrency: with `expected_seq`, the save commits checkpoint `expected_seq + 1` and nothing else.
That commit is the store's create-if-absent of the checkpoint's key (see safepoint.core.history), so of two
writers holding the same `expected_seq` (two clients, or two server processes on one store) exactly one
lands; the other gets a ConflictError naming the head, and the chain is never forked. A write does not take
the session's lease (two more durable writes a call): it refuses, writing nothing, while a live worker holds
it, and a worker that takes the lease after that check finds its next seq taken and gets a ConflictError
instead of overwriting anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core import codec
from ..errors import ConflictError, InvalidState, SessionBusy, SessionNotFound
from ..model import AgentState, Checkpoint, Status
from ..repository import Repository
from ..session import from_plain, schema_name, to_plain, validate_state

#: A write: from the head checkpoint (with its state; None for a new session) to the next (state, runtime).
Build = Callable[[Checkpoint | None], tuple[Any, dict[str, Any]]]

#: Commits tried, without expected_seq, when other writers keep taking the next seq first.
ATTEMPTS = 3

#: Sessions created through MCP hold the default structured state (mission, tools, model, artifacts, ...).
NEW_SCHEMA = AgentState


def head_of(repo: Repository, session_id: str, *, create: bool) -> Checkpoint | None:
    """The head checkpoint with its state; None for a session without one (allowed only with `create`)."""
    if not repo.exists(session_id):
        if not create:
            raise SessionNotFound(f"no session {session_id!r} in {repo.url}; call list_sessions for the ids")
        return None
    return repo.load(session_id) if repo.info(session_id).seq else None


def conflict(session_id: str, expected: int, head: int) -> ConflictError:
    return ConflictError(
        f"session {session_id!r} is at seq {head}, not at expected_seq {expected}: another writer saved first; "
        f"nothing was written: call load_checkpoint and redo the change on seq {head}"
    )


def writable_head(repo: Repository, session_id: str, expected_seq: int | None, *, create: bool) -> Checkpoint | None:
    """The head a write goes on (None: a new session), after every check that needs no new state: the session
    exists (or may be created), `expected_seq` is its head, and no live worker holds its lease."""
    if expected_seq is not None and expected_seq > 0 and not repo.exists(session_id):
        raise SessionNotFound(
            f"no session {session_id!r} in {repo.url} (expected_seq {expected_seq} names a checkpoint of it); "
            "call list_sessions, or omit expected_seq to create a new session"
        )
    head = head_of(repo, session_id, create=create)
    seq = head.seq if head else 0
    if expected_seq is not None and expected_seq != seq:
        raise conflict(session_id, expected_seq, seq)
    holder = repo.lease(session_id)
    if holder is not None and holder.live:
        raise SessionBusy(
            f"session {session_id!r} is being run by {holder.owner}, which holds its lease; nothing was written: "
            "try again once it has stopped"
        )
    return head


def commit(
    repo: Repository,
    session_id: str,
    build: Build,
    *,
    step: str | None,
    status: Status | str | None = None,
    expected_seq: int | None = None,
    create: bool = False,
    agent: str | None = None,
    tags: list[str] | None = None,
) -> tuple[Checkpoint, bool]:
    """Commit what `build` makes of the head as the next checkpoint; (the checkpoint, whether it was created).

    `status` None keeps the head's status. Everything is checked before the session is opened: a refused
    write leaves the store as it was, byte for byte.
    """
    head = writable_head(repo, session_id, expected_seq, create=create)
    seq = head.seq if head else 0
    state, runtime = build(head)
    recorded_schema = head.meta.get("schema") if head else schema_name(NEW_SCHEMA)
    for attempt in range(ATTEMPTS):
        with repo.session(
            session_id,
            agent=agent,
            tags=tags or [],
            schema=dict,
            schema_version=head.schema_version if head else None,
            lease=False,
        ) as session:
            if session.seq != seq:  # another writer saved since the check
                if expected_seq is not None:
                    raise conflict(session_id, expected_seq, session.seq)
                head, seq = repo.load(session_id, session.seq), session.seq
                state, runtime = build(head)
            session.state, session.runtime = state, runtime
            keep = head.status if head else Status.RUNNING
            try:
                checkpoint = session.save(step, status=status or keep, schema=recorded_schema)
            except ConflictError:
                # Another writer took seq + 1 first. With expected_seq that is the answer; without, the change
                # goes on top of the new head, as it would have had it arrived a moment later.
                if expected_seq is not None or attempt == ATTEMPTS - 1:
                    raise conflict(session_id, seq, repo.info(session_id).seq) from None
                continue
        return checkpoint, checkpoint.seq == 1
    raise AssertionError("unreachable")  # pragma: no cover


def checked_state(session_id: str, head: Checkpoint | None, state: Any) -> Any:
    """A whole new state, validated like a manual edit: against the session's schema (AgentState when new)."""
    if head is not None:
        validate_state(head, state)
        return state
    if not isinstance(state, dict):
        raise InvalidState(f"the state of session {session_id!r} must be a JSON object, got {type(state).__name__}")
    codec.dumps(state)  # NotSerializable names the path of a value without a JSON form
    return to_plain(from_plain(NEW_SCHEMA, state, f"the new state of session {session_id!r}"))


def base_state(head: Checkpoint | None) -> Any:
    """The head's state to change (freshly loaded, so the caller's own), or the default state of a new session."""
    return head.state if head is not None else to_plain(NEW_SCHEMA())


def base_runtime(head: Checkpoint | None) -> dict[str, Any]:
    return head.runtime if head is not None else {}
