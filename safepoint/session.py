"""A Session: one agent run, opened for writing. Holds the live state and saves checkpoints of it."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from . import artifacts, codec
from .errors import ConflictError, InvalidState, StorageError
from .history import Chain, Saved
from .migrations import Migrations
from .model import ArtifactRef, Checkpoint, Status

if TYPE_CHECKING:
    from .repository import Repository


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
        try:
            return state.model_dump(mode="json")
        except PydanticSerializationError:
            codec.dumps(state.model_dump())  # raises NotSerializable with the path
            raise
    return state


def from_plain(schema: Any, plain: Any, where: str) -> Any:
    """Build the live state from stored plain data, as a private copy the caller may mutate freely."""
    plain = codec.loads(codec.dumps(plain))  # pydantic keeps `Any` values by reference: copy first
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(plain)
        except ValidationError as exc:
            raise InvalidState(
                f"{where} does not match schema {schema.__name__}: {exc.errors()[0]['loc']} "
                f"{exc.errors()[0]['msg']}; register a migration or load it with schema=dict"
            ) from None
    return plain


class Session:
    """An agent run opened for writing: `state` is live, `save()` commits it as the next checkpoint.

    Use it as a context manager (`with store.session("id") as s:`). A new session starts from a fresh
    state; an existing one resumes from its head (or from `at=seq`).
    """

    def __init__(
        self,
        repo: Repository,
        session_id: str,
        *,
        agent: str | None,
        tags: list[str],
        schema: Any,
        schema_version: int | None,
        migrations: Migrations | None,
        at: int | None,
        parent: dict[str, Any] | None = None,
    ) -> None:
        self._repo = repo
        self._chain = Chain(repo.store, session_id)
        self.schema = schema
        self.schema_version = schema_version if schema_version is not None else schema_version_of(schema)
        self._migrations = migrations or Migrations()
        self._previous: Saved | None = None
        self._meta_next: dict[str, Any] = {}
        self._attempt: tuple[int, str] | None = None
        #: safepoint's own records for this run: steps, effects, inputs, usage (see safepoint.runtime)
        self.runtime: dict[str, Any] = {}
        self._chain.create(agent, tags, parent)
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
        doc = {"state": to_plain(self.state), "runtime": self.runtime}
        if self._seq is None:
            self._resync()
        seq = self._seq + 1
        meta = {"schema": schema_name(self.schema), **self._meta_next, **meta}
        try:
            saved = self._chain.commit(
                doc,
                seq=seq,
                parent=self._parent,
                step=step,
                status=Status(status),
                schema_version=self.schema_version,
                meta=meta,
                previous=self._previous,
            )
        except StorageError:
            # The commit may or may not have become visible: find out before the next save.
            self._attempt = (seq, self._chain.last_attempt)
            self._seq, self._previous = None, None
            raise
        self._previous, self._seq, self._parent = saved, seq, seq
        self._meta_next = {}
        return saved.checkpoint

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

    # --- artifacts ----------------------------------------------------------------------------------
    def put_artifact(self, name: str, source: artifacts.Source, media_type: str | None = None) -> ArtifactRef:
        """Store a large file apart from the state and list it in `state.artifacts` (replacing same name)."""
        ref = artifacts.put_artifact(self._repo.store, name, source, media_type)
        items = self.state.artifacts if isinstance(self.state, BaseModel) else self.state.setdefault("artifacts", [])
        entry: Any = ref if isinstance(self.state, BaseModel) else ref.model_dump()
        names = [item.name if isinstance(item, BaseModel) else item.get("name") for item in items]
        if name in names:
            items[names.index(name)] = entry
        else:
            items.append(entry)
        return ref

    def open_artifact(self, name_or_ref: str) -> IO[bytes]:
        """Stream an artifact listed in the state (by name) or any stored one (by `sha256:` ref)."""
        return self._repo.open_artifact(self._artifact_ref(name_or_ref))

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
        """Nothing is held open between saves; present for symmetry with later lease-holding sessions."""

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Session({self.id!r}, seq={self._seq}, new={self.is_new})"
