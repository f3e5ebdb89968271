"""A Session: one agent run, opened for writing. Holds the live state and saves checkpoints of it."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import IO, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from .core import artifacts, codec, gc_guard
from .core.history import Chain, Saved
from .core.loaded import loaded
from .core.migrations import Migrations
from .errors import ArtifactNotFound, ConflictError, FenceMismatch, InvalidState, SessionClosed, StorageError
from .model import AgentState, ArtifactRef, Checkpoint, Status
from .runtime import drift, effects, inputs, steps, timers
from .runtime.leases import DEFAULT_TTL, Lease
from .runtime.retry import RetryPolicy
from .runtime.wake import wake
from .stores.base import Store


def schema_version_of(schema: Any) -> int:
    return int(getattr(schema, "SCHEMA_VERSION", 1))


def schema_name(schema: Any) -> str:
    """How a schema is recorded in checkpoints (so `safepoint edit` can validate against it)."""
    if schema is None or schema is dict:
        return "dict"
    return f"{schema.__module__}.{schema.__qualname__}"


def to_plain(state: Any) -> Any:
    """The state as plain JSON data; NotSerializable names the path of a value that has no JSON form."""
    if isinstance(state, BaseModel):
        # The default state's free-form parts (`data`, `context`...) must not coerce (NaN to None, bytes to
        # text, sets to lists): dumped as Python values, the encoder refuses what it cannot carry exactly. A
        # user's own model keeps the coercions it declares.
        mode = "python" if type(state) is AgentState else "json"
        try:
            return state.model_dump(mode=mode)
        except (PydanticSerializationError, ValueError):  # a cycle, too deep, a value pydantic cannot dump
            raise codec.unfaithful(state, "state") from None
    return state


def from_plain(
    schema: Any, plain: Any, where: str, fix: str = "register a migration or load it with schema=dict"
) -> Any:
    """Build the live state from stored plain data, as a private copy the caller may mutate freely. `fix` is what
    the error tells the user to do when the data does not match the schema."""
    plain = codec.loads(codec.dumps(plain))  # pydantic keeps `Any` values by reference: copy first
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(plain)
        except ValidationError as exc:
            raise InvalidState(
                f"{where} does not match schema {schema.__name__}: {exc.errors()[0]['loc']} "
                f"{exc.errors()[0]['msg']}; {fix}"
            ) from None
    return plain


class Session:
    """An agent run opened for writing: `state` is live, `save()` commits it as the next checkpoint.

    Use it as a context manager (`with store.session("id") as s:`). A new session starts from a fresh
    state; an existing one resumes from its head (or from `at=seq`).
    """

    def __init__(
        self,
        store: Store,
        session_id: str,
        *,
        agent: str | None,
        tags: list[str],
        schema: Any,
        schema_version: int | None,
        migrations: Migrations | None,
        at: int | None,
        parent: dict[str, Any] | None = None,
        lease: bool = True,
        lease_ttl: float = DEFAULT_TTL,
        wait: float | None = None,
        save_steps: bool = True,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._chain = Chain(store, session_id)
        #: checkpoint after every durable step (`step`); effects and waits always checkpoint
        self.save_steps = save_steps
        #: default retry policy of this session's steps (None: no retries unless a step asks)
        self.retry = retry
        self.replayed_steps = 0
        self.saved_usage: dict[str, float] = {}
        self.call_counts: dict[str, int] = {}
        self._context_token: Any = None
        self.schema = schema
        self.schema_version = schema_version if schema_version is not None else schema_version_of(schema)
        self._migrations = migrations or Migrations()
        self._previous: Saved | None = None
        self._meta_next: dict[str, Any] = {}
        self._attempt: tuple[int, str] | None = None
        self._closed = False
        self._pins: set[str] = set()  # artifacts uploaded by this run and not yet saved in a checkpoint
        #: safepoint's own records for this run: steps, effects, inputs, usage (see safepoint.runtime)
        self.runtime: dict[str, Any] = {}
        # The lease first: a new session's record without a live lease reads to a worker as "crashed before its
        # first checkpoint", and it would take the session over from this very writer.
        self._lease = Lease(store, self.id, self._chain.segment, ttl=lease_ttl).acquire(wait) if lease else None
        try:
            self._chain.create(agent, tags, parent)
            self._open(at)
            self._chain.mark_open()  # holding the lease: see safepoint.core.open_sessions
        except BaseException:
            self.close()
            raise

    def _open(self, at: int | None) -> None:
        schema = self.schema
        head = self._chain.head_seq()
        self.is_new = head == 0
        self._seq = head  # the seq the next save follows
        self._parent: int | None = at if at is not None else (head or None)
        if self.is_new:
            if at is not None:
                self._chain.record(at)  # raises CheckpointNotFound with the session named
            self.state = self._fresh_state()
            return
        record, doc = self._chain.load(at if at is not None else head)
        where = f"session {self.id!r} seq {record['seq']}"
        version = record.get("schema_version", 1)
        plain = self._migrations.upgrade(doc["state"], version, self.schema_version, where=where)
        self.state = from_plain(schema, plain, where)
        self.runtime = codec.loads(codec.dumps(doc.get("runtime") or {}))  # private copy, like the state
        if version != self.schema_version:
            self._meta_next["migrated_from"] = version
        elif at is None or at == head:
            self._previous = self._chain.resume_point(record, doc)

    def _fresh_state(self) -> Any:
        if self.schema is dict or self.schema is None:
            return {}
        return self.schema()

    # --- what the agent sees ------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._chain.id

    @property
    def input(self) -> Any:
        """The input the run was started with (`sp.run(..., input=)`, `safepoint run AGENT --input`), or None."""
        return self.runtime.get("input")

    @property
    def seq(self) -> int:
        """Seq of the last checkpoint this session saved or resumed from (0 before the first save)."""
        return self._parent or 0

    @property
    def head(self) -> Checkpoint | None:
        """The checkpoint this session continues from, or None for a new session."""
        if self._previous is not None and self._previous.checkpoint.seq == self._parent:
            return self._previous.checkpoint
        return None if self._parent is None else self._chain.checkpoint(self._parent)

    def save(self, step: str | None = None, *, status: Status | str = Status.RUNNING, **meta: Any) -> Checkpoint:
        """Commit the current state as the next checkpoint and return it. Durable when this returns."""
        self.ensure_open()
        doc = {"state": to_plain(self.state), "runtime": self.runtime}
        if self._seq is None:
            self._resync()
        seq = self._seq + 1
        meta = {"schema": schema_name(self.schema), **self._meta_next, **meta}
        try:
            with self._lease.fence() if self._lease is not None else nullcontext() as fence:
                saved = self._chain.commit(
                    doc,
                    lease=self._lease.token if self._lease is not None else None,
                    fence=fence,
                    seq=seq,
                    parent=self._parent,
                    step=step,
                    status=Status(status),
                    schema_version=self.schema_version,
                    meta=meta,
                    previous=self._previous,
                )
        except FenceMismatch:
            raise self._lease.lost() from None  # type: ignore[union-attr]
        except StorageError:
            # The commit may or may not have become visible: find out before the next save.
            self._attempt = (seq, self._chain.last_attempt)
            self._seq, self._previous = None, None
            raise
        self._previous, self._seq, self._parent = saved, seq, seq
        self._meta_next = {}
        if self._pins:
            self._unpin()
        return saved.checkpoint

    def ensure_open(self) -> None:
        """Raise SessionClosed after `close()`: a closed session holds no lease, so it must not write."""
        if self._closed:
            raise SessionClosed(
                f"session {self.id!r} is closed and no longer holds its lease, so it cannot save; "
                f"reopen it with store.session({self.id!r}) to continue from its head"
            )

    def _resync(self) -> None:
        head = self._chain.head_seq()
        seq, checksum = self._attempt or (None, None)
        if seq is not None and head == seq and self._chain.record(seq)["_checksum"] == checksum:
            self._parent = seq  # the failed save did land; continue after it (as a keyframe)
        elif seq is None or head != seq - 1:
            raise ConflictError(
                f"session {self.id!r} moved to seq {head} while this writer was recovering from a storage "
                "error; reopen the session"
            )
        self._seq, self._attempt = head, None

    # --- durable execution (safepoint.runtime) --------------------------------------------------------
    @property
    def last_step(self) -> str | None:
        """The step name of the checkpoint this session continues from: branch on it to jump to where you were."""
        head = self.head
        return head.step if head else None

    def step(
        self, name: str, fn: Callable[..., Any], *args: Any, retry: RetryPolicy | None = None, **kwargs: Any
    ) -> Any:
        """Run `fn(*args, **kwargs)` as durable step `name`: once. Later runs get the recorded output back."""
        return steps.run_step(self, name, fn, args, kwargs, retry)

    def effect(
        self, key: str, fn: Callable[..., Any], *args: Any, reconcile: Callable[[str], Any] | None = None, **kwargs: Any
    ) -> Any:
        """Run a side effect at most once under idempotency key `key` (see safepoint.runtime.effects)."""
        return effects.run_effect(self, key, fn, args, kwargs, reconcile)

    def wait_for(
        self, name: str, *, prompt: str, schema: Any = None, timeout: float | None = None, default: Any = None
    ) -> Any:
        """The answer to question `name` if one was delivered; otherwise save the request and raise Suspended.
        With `timeout` (seconds), once that passes unanswered a worker resumes the run and this returns `default`."""
        return inputs.wait_for(self, name, prompt, schema, timeout, default)

    def sleep(self, seconds: float, *, name: str | None = None) -> None:
        """Pause the run durably: saves, raises Suspended, and a worker resumes it once `seconds` have passed."""
        timers.sleep(self, seconds, name)

    def unchanged(self, status: Status = Status.WAITING) -> bool:
        """True when the head has `status` and the state and records are exactly the head's (nothing to save)."""
        previous = self._previous
        if previous is None or previous.checkpoint.seq != self._parent or previous.checkpoint.status != status:
            return False
        return codec.dumps({"state": to_plain(self.state), "runtime": self.runtime}) == codec.dumps(previous.base)

    def report_usage(self, tokens: int = 0, cost: float = 0.0, **counts: float) -> None:
        """Record tokens and cost spent (inside a step: that step's; otherwise the session's totals)."""
        token = steps.current_session.set(self)
        try:
            steps.report_usage(tokens, cost, **counts)
        finally:
            steps.current_session.reset(token)

    def configure(
        self,
        *,
        model: str | None = None,
        temperature: float | None = None,
        prompts: dict[str, str] | None = None,
        code_version: str | None = None,
        on_drift: str = "warn",
    ) -> list[str]:
        """Record the model configuration; report a difference from the recorded one by policy."""
        config = drift.fingerprint(model, temperature, prompts, code_version)
        return drift.configure(self, config, on_drift)

    # --- artifacts ----------------------------------------------------------------------------------
    def put_artifact(self, name: str, source: artifacts.Source, media_type: str | None = None) -> ArtifactRef:
        """Store a large file apart from the state and list it in `state.artifacts` (replacing same name)."""
        ref = self._upload(name, source, media_type)
        items = self.state.artifacts if isinstance(self.state, BaseModel) else self.state.setdefault("artifacts", [])
        entry: Any = ref if isinstance(self.state, BaseModel) else ref.model_dump()
        names = [item.name if isinstance(item, BaseModel) else item.get("name") for item in items]
        if name in names:
            items[names.index(name)] = entry
        else:
            items.append(entry)
        return ref

    def _upload(self, name: str, source: artifacts.Source, media_type: str | None) -> ArtifactRef:
        """Upload and pin an artifact so that gc keeps it until a save references it (see core/gc_guard.py)."""
        watch = self._chain.gc_watch
        watch.check()
        start = source.tell() if hasattr(source, "seek") and source.seekable() else None  # type: ignore[union-attr]
        ref = artifacts.put_artifact(self._store, name, source, media_type)
        self._pins.add(ref.ref)
        gc_guard.pin(self._store, self._chain.segment, sorted(self._pins))
        while watch.check():  # a gc deleted while we uploaded: what it took must be written again
            self._chain.verified_refs.clear()
            if not artifacts.missing_parts(self._store, ref.ref):
                continue
            if isinstance(source, bytes | bytearray | memoryview | str | os.PathLike) or start is not None:
                if start is not None:
                    source.seek(start)  # type: ignore[union-attr]
                artifacts.put_artifact(self._store, name, source, media_type)
                continue
            raise ArtifactNotFound(
                f"session {self.id!r}: a gc removed parts of artifact {name!r} while it was being uploaded from a "
                "stream that cannot be read again; upload it again"
            )
        return ref

    def open_artifact(self, name_or_ref: str) -> IO[bytes]:
        """Stream an artifact listed in the state (by name) or any stored one (by `sha256:` ref)."""
        return artifacts.open_artifact(self._store, self._artifact_ref(name_or_ref))

    def _artifact_ref(self, name_or_ref: str) -> str:
        if name_or_ref.startswith("sha256:"):
            return name_or_ref
        plain = to_plain(self.state)
        for item in plain.get("artifacts", []) if isinstance(plain, dict) else []:
            if item.get("name") == name_or_ref:
                return item["ref"]
        raise KeyError(f"session {self.id!r} lists no artifact named {name_or_ref!r} in state.artifacts")

    def history(self) -> list[Checkpoint]:
        return list(self._chain.history())

    # --- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Release the lease. The session can be reopened (resumed) any time later."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.release()
            if self._previous is not None and self._previous.checkpoint.status == Status.RUNNING:
                wake(self._store, self.id)  # left mid-way: a listening worker may take it on now
        if self._pins:
            self._unpin()
        # A closed session keeps no copies of its state: a program holding on to many finished sessions
        # (or the pages they pinned) should not pay for them.
        self._closed = True
        self._previous = None
        self._chain.forget_written()

    def _unpin(self) -> None:
        # After a save the saved ones are referenced; after close the unsaved ones are garbage.
        self._pins = set()
        try:
            gc_guard.unpin(self._store, self._chain.segment)
        except StorageError:
            pass  # a stale pin only delays gc of what it names (see gc_guard.PIN_TTL)

    def __del__(self) -> None:
        # A session dropped without close() (`store.session(id).save()`) gives its lease back at once.
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown or a store already closed: the lease expires
            pass

    def __enter__(self) -> Session:
        self._context_token = steps.current_session.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._context_token is not None:
            steps.current_session.reset(self._context_token)
            self._context_token = None
        self.close()

    def __repr__(self) -> str:
        return f"Session({self.id!r}, seq={self._seq}, new={self.is_new})"


def validate_state(head: Checkpoint, state: Any) -> None:
    """Check an edited state against the schema its session was saved with, where that can be known."""
    if not isinstance(state, dict):
        raise InvalidState(f"the state of session {head.session!r} must be a JSON object, got {type(state).__name__}")
    codec.dumps(state)  # NotSerializable for anything without a JSON form
    schema = _import_schema(head.meta.get("schema"))
    if schema is not None:
        from_plain(
            schema,
            state,
            f"edited state of session {head.session!r}",
            fix=f"correct that value and try again (the state must match {schema.__name__}); nothing was committed",
        )


def _import_schema(name: str | None) -> type[BaseModel] | None:
    if not name or name == "dict":
        return None
    module, _, attr = name.rpartition(".")
    schema = loaded(module, attr)  # never imported: the name is stored data (see safepoint.core.loaded)
    return schema if isinstance(schema, type) and issubclass(schema, BaseModel) else None
