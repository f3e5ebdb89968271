"""The store as safepoint's users see it: sessions, their history, forks, edits and artifacts."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .core import artifacts, bundle, codec, delta, gc_guard, listing, maintenance, open_sessions, session_index
from .core.chain_marks import trim_imported
from .core.checkpoints import to_checkpoint
from .core.fsck import FsckReport, check_store, damage_listing
from .core.history import Chain, check_session_id, session_segment
from .core.index_check import current as current_entries
from .core.migrations import Migrations
from .core.paths import assign
from .core.redact import Redactor
from .core.stuck import LeaseView, StuckPolicy, stuck_reason
from .core.summary import SessionSummary, summarize
from .core.timeline import TimelineRow, timeline
from .errors import (
    CheckpointNotFound,
    ConflictError,
    CorruptCheckpoint,
    EncryptionKeyError,
    SafepointError,
    SessionBusy,
    SessionNotFound,
    StorageError,
)
from .model import AgentState, ArtifactRef, Checkpoint, SessionInfo, Status
from .runtime import effects, inputs
from .runtime.leases import DEFAULT_TTL, lease_key, read_lease
from .runtime.retry import RetryPolicy
from .runtime.steps import now as timestamp
from .runtime.wake import wake
from .session import Session, validate_state
from .stores import Store, keys, open_store
from .stores.encryption import open_encrypted
from .stores.keys import KeySpec


class Repository:
    """Everything safepoint keeps in one store. Get one with `safepoint.open(url)`."""

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        migrations: Migrations | None = None,
        redact: Iterable[str] = (),
        redact_secrets: bool = True,
        key: KeySpec | None = None,
    ):
        self.store = open_encrypted(open_store(store), key)
        self.migrations = migrations or Migrations()
        rules = [redact] if isinstance(redact, str) else list(redact)
        if rules or not redact_secrets:
            self.store.redactor = Redactor(rules, secrets=redact_secrets)
        self._index_cache: dict[str, tuple[bytes, dict[str, Any]]] = {}  # decoded summary index entries
        self._mirror: session_index.Mirror | None = None

    @property
    def url(self) -> str:
        return self.store.url

    # --- sessions ---------------------------------------------------------------------------------
    def session(
        self,
        session_id: str,
        *,
        agent: str | None = None,
        tags: list[str] | tuple[str, ...] = (),
        schema: Any = AgentState,
        schema_version: int | None = None,
        migrations: Migrations | None = None,
        at: int | None = None,
        create: bool = True,
        lease: bool = True,
        lease_ttl: float = DEFAULT_TTL,
        wait: float | None = None,
        save_steps: bool = True,
        retry: RetryPolicy | None = None,
    ) -> Session:
        """Open a session for writing: create it, or resume from its head (or from checkpoint `at`).

        Opening takes the session's lease (`lease=False` to skip): a second writer gets SessionBusy, or waits
        up to `wait` seconds. `retry` is the default RetryPolicy of its durable steps.
        """
        chain = Chain(self.store, session_id)
        if not create and not chain.exists():
            raise self._not_found(session_id)
        return Session(
            self.store,
            session_id,
            agent=agent,
            tags=list(tags),
            schema=schema,
            schema_version=schema_version,
            migrations=migrations or self.migrations,
            at=at,
            lease=lease,
            lease_ttl=lease_ttl,
            wait=wait,
            save_steps=save_steps,
            retry=retry,
        )

    def send(self, session_id: str, name: str, value: Any, *, by: str = "api") -> Checkpoint:
        """Deliver the answer to a waiting session's question `name` (validated against its schema)."""
        chain = self._chain(session_id)
        return chain.checkpoint(inputs.deliver(chain, name, value, by=by))

    def pending_inputs(self, session_id: str) -> dict[str, dict[str, Any]]:
        """The questions a session waits for, by name (prompt, schema, asked_at)."""
        return inputs.pending(self.load(session_id).runtime)

    def delete(self, session_id: str, *, force: bool = False) -> int:
        """Delete a session and its whole history; return how many checkpoints went. Its artifacts and state
        objects stay until `gc`, which frees what no other session (a fork, say) still references. Refused
        (SessionBusy) while a live lease holds it, unless `force`."""
        chain = self._chain(session_id)
        lease, _ = read_lease(self.store, chain.segment)
        if lease is not None and lease.live() and not force:
            raise SessionBusy(
                f"session {session_id!r} is held by {lease.owner} (its lease is live); stop that run first, "
                "or delete it anyway with force=True (`safepoint delete --force`)"
            )
        return maintenance.delete_session(self.store, session_id, [lease_key(chain.segment)])

    def exists(self, session_id: str) -> bool:
        return Chain(self.store, session_id).exists()

    def info(self, session_id: str) -> SessionInfo:
        """A session's identity and head checkpoint (without its state)."""
        chain = Chain(self.store, session_id)
        info = chain.info()
        if info is None:
            raise self._not_found(session_id)
        head = chain.head_seq()
        return _with_head(info, chain.checkpoint(head) if head else None)

    def sessions(self) -> list[SessionInfo]:
        """Every session, newest activity first (from the summary index, checked against the chains; never a
        followed copy); one that cannot be read is listed too, `damaged` saying why."""
        found = [session_index.to_info(doc) for doc in self._index(exact=True)]
        found += damage_listing(self.store, self.info, skip={f"sessions/{session_segment(i.id)}" for i in found})
        return sorted(found, key=lambda i: i.updated_at, reverse=True)

    def session_ids(self) -> Iterator[str]:
        """Ids of every session; a session whose record is damaged is left out (`fsck` reports it)."""
        for _key, session_id in maintenance.session_ids(self.store):
            if session_id is not None:
                yield session_id

    def summary(
        self, session_id: str, *, policy: StuckPolicy | None = None, now: datetime | None = None
    ) -> SessionSummary:
        """A session's info with its usage, progress, open questions, in-doubt effects and, when it needs a
        person, why (see core.summary and core.stuck)."""
        found = self._summary(self.info(session_id), policy or StuckPolicy(), now or datetime.now(UTC))
        indexed = session_index.read(self.store, session_segment(found.info.id))
        # Behind (a crash, an import): heal it. Never when ahead: that is a loss fsck must still see.
        if indexed is None or (indexed.get("head") or {}).get("seq", 0) < found.info.seq:
            with contextlib.suppress(StorageError):  # best effort: a read-only store keeps its stale hint
                _rebuild_entry(self.store, found.info.id)
        return found

    def summaries(self, *, policy: StuckPolicy | None = None, now: datetime | None = None) -> list[SessionSummary]:
        """The summary of every session, newest activity first (read from the summary index: one small record
        per session; see core.session_index)."""
        policy, now = policy or StuckPolicy(), now or datetime.now(UTC)
        docs = sorted(self._index(), key=session_index.updated_at, reverse=True)
        return [self._indexed(doc, policy, now) for doc in docs]

    def find_sessions(
        self,
        where: listing.SessionFilter | None = None,
        *,
        offset: int = 0,
        limit: int = 50,
        policy: StuckPolicy | None = None,
        now: datetime | None = None,
    ) -> tuple[listing.Page, list[SessionSummary]]:
        """One page of the sessions matching `where`, newest activity first, as summaries (with why each needs a
        person), and the page's counts."""
        policy, now = policy or StuckPolicy(), now or datetime.now(UTC)
        found = listing.page(self._index(), where or listing.SessionFilter(), offset=offset, limit=limit)
        return found, [self._indexed(doc, policy, now) for doc in found.items]

    def overview(
        self, *, policy: StuckPolicy | None = None, now: datetime | None = None, limit: int = 20
    ) -> listing.Overview:
        """Counts by status and agent, usage totals, and the attention list: stuck, waiting, failed, in doubt
        (newest first, at most `limit` each)."""
        policy, now = policy or StuckPolicy(), now or datetime.now(UTC)
        docs = self._index()
        look = sorted(filter(listing.needs_look, docs), key=session_index.updated_at, reverse=True)
        lists: dict[str, list[SessionSummary]] = {"stuck": [], "waiting": [], "failed": [], "in_doubt": []}
        totals = dict.fromkeys(lists, 0)
        for doc in look:
            status = session_index.status_of(doc)
            stuck = self._stuck(doc, session_index.to_info(doc), policy, now)
            summary = None
            for name, belongs in (
                ("stuck", stuck is not None),
                ("waiting", status == "waiting"),
                ("failed", status == "failed"),
                ("in_doubt", bool(doc.get("in_doubt"))),
            ):
                if belongs:
                    totals[name] += 1
                    if len(lists[name]) < limit:
                        summary = summary or session_index.to_summary(doc, stuck)
                        lists[name].append(summary)
        return listing.Overview(**listing.counts(docs), **lists, totals=totals)

    def timeline(self, session_id: str) -> list[TimelineRow]:
        """The checkpoints of a session with what each step took, spent, retried and why it failed (core.timeline)."""
        history = self.history(session_id)
        return timeline(history, self.load(session_id).runtime if history else {})

    def children(self, session_id: str) -> list[SessionInfo]:
        """Sessions started from this one (forks, hand-offs), newest activity first (read from the summary index)."""
        docs = [d for d in self._index() if (d.get("parent") or {}).get("session") == session_id]
        return [session_index.to_info(d) for d in sorted(docs, key=session_index.updated_at, reverse=True)]

    def lease(self, session_id: str) -> LeaseView | None:
        """Who holds the session's lease and until when; None when nobody does."""
        try:
            lease, _ = read_lease(self.store, session_segment(check_session_id(session_id)))
        except CorruptCheckpoint:
            return LeaseView(owner="unknown (damaged lease record: run safepoint fsck)", expires_at=0.0, live=False)
        if lease is None or lease.expires_at == 0.0:  # never taken, or given back on close
            return None
        return LeaseView(lease.owner, lease.expires_at, lease.live())

    def history(self, session_id: str) -> list[Checkpoint]:
        """All checkpoints of a session, oldest first, without their states."""
        chain = self._chain(session_id)
        return list(chain.history())

    def load(self, session_id: str, seq: int | None = None) -> Checkpoint:
        """A checkpoint with its state as stored (plain JSON); the head when `seq` is None."""
        chain = self._chain(session_id)
        if seq is None:
            seq = chain.head_seq()
            if seq == 0:
                raise CheckpointNotFound(f"session {session_id!r} has no checkpoints yet")
        record, doc = chain.load(seq)
        return to_checkpoint(record, doc)

    def diff(self, session_id: str, a: int, b: int) -> list[str]:
        """A readable structural diff from checkpoint `a` to checkpoint `b` (one line per change).

        Paths start with `state.` (the agent's state) or `runtime.` (steps, effects, inputs, usage).
        """
        chain = self._chain(session_id)
        return delta.describe(chain.load(a)[1], chain.load(b)[1], root="")

    def fork(self, session_id: str, *, at: int | None = None, new_id: str | None = None) -> SessionInfo:
        """Start a new session from checkpoint `at` (default: the head); it records where it came from."""
        source = self.load(session_id, at)
        new_id = check_session_id(new_id or f"{session_id}-fork-{source.seq}")
        chain = Chain(self.store, new_id)
        origin = {"session": session_id, "seq": source.seq}
        if not chain.create(self.info(session_id).agent, self.info(session_id).tags, origin):
            raise SafepointError(f"cannot fork into {new_id!r}: a session with that id exists; pick another --as")
        if source.status not in open_sessions.CLOSED:
            chain.mark_open()
        chain.commit(
            {"state": source.state, "runtime": source.runtime},
            seq=1,
            parent=None,
            step=source.step,
            status=source.status,
            schema_version=source.schema_version,
            meta={"forked_from": origin},
            previous=None,
        )
        return self.info(new_id)

    def cancel(self, session_id: str, *, reason: str = "cancelled", by: str = "api") -> Checkpoint:
        """Stop a session for good: commit its head again with status `cancelled` (workers skip it; a run still
        on it fails at its next save, with ConflictError). Refused for a session already completed, failed or
        cancelled."""
        chain = self._chain(session_id)
        head = self.load(session_id) if chain.head_seq() else None
        if head is None:
            raise SafepointError(f"session {session_id!r} has no checkpoints to cancel; delete it instead")
        if head.status in open_sessions.CLOSED:
            raise SafepointError(f"session {session_id!r} is {head.status} already; nothing was changed")
        runtime = {**head.runtime, "cancelled": {"reason": reason, "by": by, "at": datetime.now(UTC).isoformat()}}
        saved = chain.commit(
            {"state": head.state, "runtime": runtime},
            seq=head.seq + 1,
            parent=head.seq,
            step="cancelled",
            status=Status.CANCELLED,
            schema_version=head.schema_version,
            meta={"cancelled_by": by, "schema": head.meta.get("schema")},
            previous=None,
        )
        return saved.checkpoint

    # --- manual edits, audited ------------------------------------------------------------------------
    def replace_state(
        self, session_id: str, state: Any, *, how: str = "edit", expect_seq: int | None = None, by: str | None = None
    ) -> Checkpoint:
        """Commit `state` as a new head, marked as a manual edit (validated against the session's schema).

        With `expect_seq`, refuse (ConflictError) if the head has moved past the checkpoint the edit started from.
        """
        head = self.load(session_id)
        if expect_seq is not None and head.seq != expect_seq:
            raise ConflictError(
                f"session {session_id!r} moved from seq {expect_seq} to {head.seq} while it was being edited; "
                "nothing was committed: redo the edit on the new head"
            )
        validate_state(head, state)
        return (
            self._chain(session_id)
            .commit(
                {"state": state, "runtime": head.runtime},
                seq=head.seq + 1,
                parent=head.seq,
                step=head.step,
                status=head.status,
                schema_version=head.schema_version,
                meta={"manual_edit": True, "how": how, "schema": head.meta.get("schema"), **({"by": by} if by else {})},
                previous=None,
            )
            .checkpoint
        )

    def set_values(
        self, session_id: str, values: dict[str, Any], *, expect_seq: int | None = None, by: str | None = None
    ) -> Checkpoint:
        """Set values inside the head state (`{"data.notes[0]": "x", "mission.goal": "y"}`) as one audited edit.

        With `expect_seq`, refuse (ConflictError) if the head is no longer that checkpoint (the editor saw an
        older state). `by` names who edited (recorded in the checkpoint's metadata).
        """
        head = self.load(session_id)
        if expect_seq is not None and head.seq != expect_seq:
            raise ConflictError(
                f"session {session_id!r} moved from seq {expect_seq} to {head.seq} since the edit began; "
                "nothing was committed: redo the edit on the new head"
            )
        for path, value in values.items():
            assign(head.state, path, value, session_id)
        how = "set " + ", ".join(values)
        return self.replace_state(session_id, head.state, how=how, expect_seq=head.seq, by=by)

    def set_value(self, session_id: str, path: str, value: Any) -> Checkpoint:
        """Set one value inside the head state (`data.notes[0]`, `mission.goal`) as an audited edit."""
        return self.set_values(session_id, {path: value})

    def resolve_effect(
        self, session_id: str, key: str, outcome: str, result: Any = None, *, by: str = "api"
    ) -> Checkpoint:
        """Settle an effect in doubt: `outcome="done"` (it happened; `result` is recorded as its result, and the
        agent gets it back without running the call) or `"retry"` (it did not: the next run calls it again).
        Refused while a live worker holds the session (its call may still be in flight)."""
        chain = self._chain(session_id)
        self._refuse_if_held(session_id, f"resolve effect {key!r}")
        return chain.checkpoint(effects.resolve(chain, key, outcome, result, by=by))

    def mark_failed(self, session_id: str, reason: str, *, by: str = "api") -> Checkpoint:
        """Commit the head again as failed, with `reason` as its error (a person gave up on it); audited."""
        head = self.load(session_id)
        if head.status in open_sessions.CLOSED:
            raise SafepointError(f"session {session_id!r} is already {head.status}; nothing was changed")
        head.runtime["error"] = {"error": f"marked failed by {by}: {reason}"[:2000], "at": timestamp(), "by": by}
        return self._manual(head, head.runtime, Status.FAILED, step=head.step, how=f"mark failed: {reason}", by=by)

    def retry(self, session_id: str, *, by: str = "api") -> Checkpoint:
        """Make a failed session runnable again: its head is committed as running with no holder, so a worker
        (or `safepoint resume`) picks it up and re-runs the step that failed, not the ones before it."""
        head = self.load(session_id)
        if head.status is not Status.FAILED:
            raise SafepointError(f"session {session_id!r} is {head.status}, not failed: nothing to retry")
        head.runtime.pop("error", None)
        Chain(self.store, session_id).mark_open()
        saved = self._manual(head, head.runtime, Status.RUNNING, step=head.step, how="retry", by=by)
        wake(self.store, session_id)
        return saved

    def _manual(self, head: Checkpoint, runtime: dict[str, Any], status: Status, *, step: str | None, how: str,
                by: str) -> Checkpoint:  # fmt: skip
        meta = {"manual_edit": True, "how": how, "by": by, "schema": head.meta.get("schema")}
        doc = {"state": head.state, "runtime": runtime}
        chain = self._chain(head.session)
        kwargs = {"seq": head.seq + 1, "parent": head.seq, "schema_version": head.schema_version, "previous": None}
        return chain.commit(doc, step=step, status=status, meta=meta, **kwargs).checkpoint

    def _refuse_if_held(self, session_id: str, what: str) -> None:
        lease = self.lease(session_id)
        if lease is not None and lease.live:
            raise SafepointError(
                f"cannot {what} of session {session_id!r}: it is held by {lease.owner}, whose call may still be "
                "running; wait for it, or stop that worker first. Nothing was changed"
            )

    # --- artifacts ---------------------------------------------------------------------------------
    def put_artifact(self, name: str, source: artifacts.Source, media_type: str | None = None) -> ArtifactRef:
        return artifacts.put_artifact(self.store, name, source, media_type)

    def open_artifact(self, ref: str) -> IO[bytes]:
        return artifacts.open_artifact(self.store, ref)

    # --- maintenance and portability ---------------------------------------------------------------
    def fsck(self, progress: maintenance.Progress | None = None) -> FsckReport:
        """Verify every checkpoint and object; report what is damaged or missing, what it breaks, the last good."""
        return check_store(self.store, progress)

    def gc(
        self,
        *,
        keep_last: int | None = None,
        newer_than: datetime | None = None,
        dry_run: bool = False,
        progress: maintenance.Progress | None = None,
        settle: float = gc_guard.SETTLE,
    ) -> maintenance.GcReport:
        """Apply retention (optional) and delete what no checkpoint references; safe beside live writers."""
        return maintenance.gc(
            self.store, keep_last=keep_last, newer_than=newer_than, dry_run=dry_run, progress=progress, settle=settle
        )

    def rekey(self, new_key: keys.KeySource, progress: maintenance.Progress | None = None) -> dict[str, int]:
        """Re-encrypt every value under `new_key` (the store must be open with its current key; give old keys
        too, as a list, to finish an interrupted rekey). Crash-safe: run it again to finish. Run it with no
        writer active. Returns counts: rewritten, already under the new key, plaintext on purpose (seq hints).
        """
        from .stores.encrypted import EncryptedStore, rekey

        if not isinstance(self.store, EncryptedStore):
            raise EncryptionKeyError(
                f"store {self.url} is not encrypted: rekey rotates the key of an encrypted store; to encrypt "
                "sessions, export them and import them into a new store opened with a key"
            )
        new = keys.load(new_key, "the new key")
        counts = rekey(self.store.inner, self.store.keys, new, progress)
        redactor = self.store.redactor
        self.store = EncryptedStore(self.store.inner, [new])
        self.store.redactor = redactor
        return counts

    def last_good(self, session_id: str) -> int | None:
        """The newest checkpoint of a session that loads, with all its artifacts (to fall back to after damage)."""
        self._chain(session_id)
        return maintenance.last_good(self.store, session_id)

    def export_session(self, session_id: str, path: str | os.PathLike[str]) -> Path:
        """Write one session, with its history, objects and artifacts, to a single portable file."""
        self._chain(session_id)
        return bundle.export_session(self.store, session_id, path)

    def import_session(self, path: str | os.PathLike[str], *, as_id: str | None = None) -> SessionInfo:
        """Import a bundle written by `export_session`, optionally under a new id."""
        if as_id is not None:
            check_session_id(as_id)
        info = self.info(bundle.import_session(self.store, path, as_id=as_id))
        trim_imported(Chain(self.store, info.id))
        if info.head is None or info.head.status not in open_sessions.CLOSED:
            Chain(self.store, info.id).mark_open()
        _rebuild_entry(self.store, info.id)
        return info

    # --- helpers ---------------------------------------------------------------------------------------
    def _summary(self, info: SessionInfo, policy: StuckPolicy, now: datetime) -> SessionSummary:
        found = summarize(info, self.load(info.id).runtime if info.head else {})
        lease, recent = None, []
        if info.status is Status.RUNNING:
            lease = self.lease(info.id)
            if lease is None or lease.live:  # a dead holder decides; otherwise the pace does
                chain = self._chain(info.id)
                recent = [
                    chain.checkpoint(seq).created_at for seq in range(max(1, info.seq - policy.window), info.seq + 1)
                ]
        reason = stuck_reason(
            info, in_doubt=found.in_doubt, waiting_for=found.waiting_for, recent_times=recent, lease=lease,
            now=now, policy=policy,
        )  # fmt: skip
        return replace(found, stuck=reason)

    def follow_index(self, max_age: float = 1.0, check_every: float = 30.0) -> session_index.Mirror:
        """Keep the summary index in memory, for a long-running front end: from now on listings (summaries,
        find_sessions, overview, children) read the copy, refreshed when older than `max_age` seconds and checked
        against the chains at most every `check_every` seconds (and where it changed). Call
        `Mirror.reload([id])` after a change the caller must see at once (its own actions)."""
        self._mirror = session_index.Mirror(self.store, self._refresh_entry, max_age, self._checked, check_every)
        return self._mirror

    def _checked(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return current_entries(self.store, docs, self._refresh_entry)

    def _index(self, *, exact: bool = False) -> list[dict[str, Any]]:
        if self._mirror is not None and not exact:
            return self._mirror.docs()
        docs = session_index.entries(self.store, self._refresh_entry, self._index_cache)
        return self._checked(docs)  # exact: no entry behind its chain

    def _refresh_entry(self, info_key: str) -> dict[str, Any] | None:
        """The rebuilt index entry of the session recorded under `info_key`; None when that record is damaged."""
        try:
            blob = self.store.get(info_key)
            return None if blob is None else _rebuild_entry(self.store, codec.load_sealed(blob, info_key)["id"])
        except (SafepointError, KeyError, TypeError):
            return None

    def _indexed(self, doc: dict[str, Any], policy: StuckPolicy, now: datetime) -> SessionSummary:
        found = session_index.to_summary(doc)
        return replace(found, stuck=self._stuck(doc, found.info, policy, now))

    def _stuck(self, doc: dict[str, Any], info: SessionInfo, policy: StuckPolicy, now: datetime) -> str | None:
        """Why an indexed session needs a person (core.stuck); reads the lease of a running one."""
        lease = self.lease(info.id) if info.status is Status.RUNNING else None
        live = lease is None or lease.live  # (a dead holder decides; otherwise the pace does)
        times = [datetime.fromtimestamp(t, UTC) for t in session_index.times_of(doc)] if live else []
        return stuck_reason(
            info, in_doubt=doc.get("in_doubt") or [], waiting_for=doc.get("waiting_for") or [], recent_times=times,
            lease=lease, now=now, policy=policy,
        )  # fmt: skip

    def _chain(self, session_id: str) -> Chain:
        chain = Chain(self.store, session_id)
        if not chain.exists():
            raise self._not_found(session_id)
        return chain

    def _not_found(self, session_id: str) -> SessionNotFound:
        return SessionNotFound(f"no session {session_id!r} in {self.url}; `safepoint ls` lists the sessions")

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository({self.url!r})"


def open(  # noqa: A001
    url: str | os.PathLike[str] | Store | None = None,
    *,
    migrations: Migrations | None = None,
    redact: Iterable[str] = (),
    redact_secrets: bool = True,
    key: KeySpec | None = None,
) -> Repository:
    """Open a store: a path or `file://` (default `$SAFEPOINT_STORE` or `./.safepoint`), `memory://`, `sqlite:///x.db`.

    Before anything is written, values at the `redact` paths (`"model.api_key"`, `"data.env.*"`) and known
    credential formats anywhere (unless `redact_secrets=False`) are replaced by a marker (see docs/security.md).

    `key` (or `$SAFEPOINT_KEY`, or a key file named by `$SAFEPOINT_KEY_FILE`) encrypts everything stored with
    AES-256-GCM: 32 bytes, as raw bytes, base64 or hex text, a Path to a key file, a callable returning one (a
    KMS), or a list of them (the first encrypts; the others still decrypt, for rotation).
    """
    return Repository(url, migrations=migrations, redact=redact, redact_secrets=redact_secrets, key=key)


def _rebuild_entry(store: Store, session_id: str) -> dict[str, Any]:
    """Rebuild a session's summary index entry from its chain (the truth), write it and return it."""
    chain = Chain(store, session_id)
    return chain.summary.rebuild(chain)


def _with_head(info: SessionInfo, head: Checkpoint | None) -> SessionInfo:
    return SessionInfo(info.id, info.agent, info.tags, info.parent, info.created_at, head)
