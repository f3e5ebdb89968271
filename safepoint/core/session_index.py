"""The index of session summaries: one small record per session, so listing 10,000 sessions reads 10,000 small
values instead of 10,000 chains (and the state of every head).

Key `summaries/<segment>`: a sealed JSON entry with the session's identity, its head's metadata, the figures of
`core.summary` (usage, finished steps, open questions, in-doubt effects, error) and the intervals between its
last `WINDOW` checkpoints (what stuck detection takes the session's own pace from). About 600 bytes.

- Written with every commit, as one of its hints (`Chain.commit`): in the commit's transaction on SQLite,
  PostgreSQL and Redis; right after the commit key, in place and without fsync, on the directory store. It is
  a hint: after a crash between the commit and it, it may lag one commit behind, or be torn.
- Written when a session is created (no head yet), and by `Tracker.rebuild` for a session whose entry is
  missing, damaged or behind (an import, a store written before the index existed, a crash): `entries` lists
  `sessions/` beside `summaries/` and refreshes what does not match, so the index heals itself on read.
- The session page reads the chain itself (`Repository.summary`), which is the truth, and refreshes the entry
  when it finds it behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ..errors import CorruptCheckpoint, SafepointError
from ..model import FORMAT, Checkpoint, SessionInfo, Status
from ..stores.base import Store
from . import changes, codec
from .session_ids import session_segment
from .summary import SessionSummary

PREFIX = "summaries/"
#: Checkpoint times kept per session: the window stuck detection takes its median interval over.
WINDOW = 21


def key(segment: str) -> str:
    return f"{PREFIX}{segment}"


def figures(runtime: dict[str, Any]) -> dict[str, Any]:
    """What a summary shows of a head's runtime records, in one pass over its steps."""
    usage = runtime.get("usage") or {}
    done = kept = retried = 0
    for rec in (runtime.get("steps") or {}).values():
        if rec.get("status") == "done":
            done += 1
            kept += int((rec.get("usage") or {}).get("tokens", 0))
            retried += max(0, int(rec.get("attempts", 1)) - 1)
    error = runtime.get("error")
    return {
        "tokens": usage.get("tokens", 0),
        "cost": usage.get("cost", 0),
        "kept_tokens": kept,
        "steps_done": done,
        "retries": retried,
        "waiting_for": sorted(n for n, r in (runtime.get("inputs") or {}).items() if "answer" not in r),
        "in_doubt": sorted(k for k, r in (runtime.get("effects") or {}).items() if r.get("status") == "intent"),
        "error": error.get("error") if isinstance(error, dict) else None,
    }


def entry(
    identity: dict[str, Any], record: dict[str, Any] | None, runtime: dict[str, Any], times: list[float]
) -> bytes:
    """The sealed index entry of a session: `identity` is its `sessions/` record, `record` its head's commit
    record (None before the first checkpoint), `times` the unix times of its last checkpoints, oldest first."""
    head = None
    if record is not None:
        head = {
            "seq": record["seq"],
            "parent": record.get("parent"),
            "created_at": record["created_at"],
            "step": record.get("step"),
            "status": record["status"],
            "schema_version": record.get("schema_version", 1),
            "checksum": record.get("_checksum", ""),
            "meta": record.get("meta") or {},
            "keyframe": "root" in record,
            "format": record.get("format", FORMAT),
            "lease": record.get("lease"),
        }
    recent = times[-WINDOW:]
    doc = {
        "format": FORMAT,
        "id": identity["id"],
        "agent": identity.get("agent"),
        "tags": list(identity.get("tags") or []),
        "parent": identity.get("parent"),
        "created_at": identity["created_at"],
        "head": head,
        # Intervals in whole milliseconds: ~4 bytes each, where the times themselves took ~19.
        "gaps": [round((b - a) * 1000) for a, b in zip(recent, recent[1:], strict=False)],
        **figures(runtime),
    }
    return codec.seal(codec.dumps(doc), compress=False)


def times_of(doc: dict[str, Any]) -> list[float]:
    """The unix times of the session's last checkpoints, oldest first, from its entry (head time and gaps)."""
    head = doc.get("head")
    if head is None:
        return []
    moment = datetime.fromisoformat(head["created_at"]).timestamp()
    times = [moment]
    for gap in reversed(doc.get("gaps") or ()):
        moment -= gap / 1000
        times.append(moment)
    return times[::-1]


def read(store: Store, segment: str) -> dict[str, Any] | None:
    """The entry of one session, or None when it is missing or damaged (a torn hint)."""
    blob = store.get(key(segment))
    if blob is None:
        return None
    try:
        return codec.load_sealed(blob, key(segment))
    except CorruptCheckpoint:
        return None


class Tracker:
    """What one writer (a `core.history.Chain`) keeps to write its session's entry with each commit: the
    session record (read once) and the times of the last checkpoints."""

    def __init__(self, store: Store, segment: str, info_key: str) -> None:
        self.store, self.segment, self.info_key = store, segment, info_key
        self._identity: dict[str, Any] | None = None
        self.times: list[float] | None = None  # None: not known yet (read from the entry at the first commit)
        self._next: list[float] = []

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            blob = self.store.get(self.info_key)
            if blob is None:
                raise CorruptCheckpoint(self.info_key, "the session record is missing; see `safepoint fsck`")
            self._identity = codec.load_sealed(blob, self.info_key)
        return self._identity

    def created(self, identity: dict[str, Any]) -> None:
        """The session was just created: list it (no head yet)."""
        self._identity, self.times = identity, []
        self.store.put_hint(key(self.segment), entry(identity, None, {}, []))

    def hint(self, record: dict[str, Any], runtime: dict[str, Any] | None, moment: datetime) -> tuple[str, bytes]:
        """The (key, entry) hint of a commit of `record` (with its `_checksum`) at `moment`."""
        seq = record["seq"]
        if self.times is None:
            found = read(self.store, self.segment) if seq > 1 else None
            head = found.get("head") if found else None
            self.times = times_of(found) if found and head and head.get("seq") == seq - 1 else []
        self._next = [*self.times, moment.timestamp()][-WINDOW:]
        return key(self.segment), entry(self.identity(), record, runtime or {}, self._next)

    def committed(self, session_id: str) -> None:
        """The commit of the last `hint` landed: its time is now among the last checkpoints'; announce it."""
        self.times = self._next
        changes.announce(self.store, session_id)

    def rebuild(self, chain: Any) -> dict[str, Any]:
        """Rebuild the entry of `chain` (the Chain holding this tracker) from its records; write it."""
        head = chain.head_seq()
        record, runtime, times = None, {}, []
        if head:
            record, doc = chain.load(head)
            runtime = doc.get("runtime") or {}
            recent = [seq for seq in chain.seqs() if seq > head - WINDOW][-WINDOW:]  # (retention may have left fewer)
            times = [datetime.fromisoformat(chain.record(seq)["created_at"]).timestamp() for seq in recent]
        blob = entry(self.identity(), record, runtime, times)
        self.store.put_hint(key(self.segment), blob)
        self.times = times
        return codec.load_sealed(blob, key(self.segment))


def entries(
    store: Store,
    refresh: Callable[[str], dict[str, Any] | None],
    cache: dict[str, tuple[bytes, dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Every session's entry (unsorted). `refresh(info_key)` rebuilds (and writes) the entry of a session whose
    entry is missing or damaged, or returns None to leave it out (its own record is damaged or gone).

    `cache` (segment -> (entry bytes, decoded entry)) spares decoding entries whose bytes have not changed
    since the last call that was given the same cache; it is brought up to date here.
    """
    found = {k[len(PREFIX) :]: blob for k, blob in store.items(PREFIX)}
    cache = {} if cache is None else cache
    out = []
    info_keys = store.list("sessions/")
    for info_key in info_keys:
        segment = info_key[len("sessions/") :]
        doc = None
        blob = found.get(segment)
        if blob is not None:
            cached = cache.get(segment)
            if cached is not None and cached[0] == blob:
                doc = cached[1]
            else:
                try:
                    doc = codec.load_sealed(blob, key(segment))
                    cache[segment] = (blob, doc)
                except CorruptCheckpoint:
                    doc = None
        if doc is None:
            doc = refresh(info_key)
            healed = store.get(key(segment)) if doc is not None else None
            if healed is not None:
                cache[segment] = (healed, doc)
        if doc is not None:
            out.append(doc)
    for gone in cache.keys() - found.keys():
        del cache[gone]
    listed = {info_key[len("sessions/") :] for info_key in info_keys}
    for orphan in found.keys() - listed:  # the entry of a deleted session (its record is written first)...
        if not store.list(f"commits/{orphan}/"):  # ...unless its checkpoints are there: then the record was lost,
            store.delete(key(orphan))  # and the entry is what fsck finds the session by
    return out


class Mirror:
    """The index kept in memory by a long-running reader (the dashboard), so a listing never waits for the store.

    `docs()` reads the whole index only the first time; after that it returns the copy at once, and when the
    copy is older than `max_age` seconds it has it re-read in the background (so a listing is at most
    `max_age` plus one re-read behind). `refresh()` re-reads every entry now (decoding only those whose bytes
    changed) and says which sessions changed; `reload(ids)` re-reads a few now (after a change the reader made
    itself, or one a notification announced).

    An entry is a hint that can disagree with its chain (a writer killed between its commit and its entry, the
    newest checkpoints deleted). `check(docs)` (`core.index_check.current`) gives `docs` with each such entry
    rebuilt; `refresh()` runs it over every entry at its first run and then at most every `check_every`
    seconds, and in between over the entries whose bytes changed since they were last checked. The cold read
    of `docs()` skips it (it serves a request) and leaves it to a background refresh started at once.
    """

    def __init__(
        self,
        store: Store,
        refresh: Callable[[str], dict[str, Any] | None],
        max_age: float,
        check: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None,
        check_every: float = 30.0,
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.check_every = check_every
        self._rebuild = refresh
        self._check = check
        self._cache: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self._checked: dict[str, bytes] = {}  # segment -> the entry bytes last found to agree with the chain
        self._checked_at: float | None = None  # when every entry was last checked (None: never)
        self._docs: list[dict[str, Any]] | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self._refreshing = threading.Event()

    def docs(self) -> list[dict[str, Any]]:
        """Every session's entry: the copy (read now if there is none yet), re-read behind the scenes when old."""
        if self._docs is None:
            self.refresh(check=False)
        now = time.monotonic()
        if (now - self._at > self.max_age or self._check_due(now)) and not self._refreshing.is_set():
            self._refreshing.set()
            threading.Thread(target=self._refresh_behind, name="safepoint-index-refresh", daemon=True).start()
        return self._docs or []

    def _check_due(self, now: float) -> bool:
        return self._check is not None and (self._checked_at is None or now - self._checked_at > self.check_every)

    def _refresh_behind(self) -> None:
        try:
            self.refresh()
        except SafepointError:
            pass  # the store is away: the copy stays, and the next listing tries again
        finally:
            self._refreshing.clear()

    @property
    def loaded(self) -> bool:
        return self._docs is not None

    def refresh(self, *, check: bool = True) -> list[str]:
        """Read the whole index again (and check it against the chains, see the class); return the ids of the
        sessions whose entry changed (all, the first time)."""
        with self._lock:
            before = {segment: blob for segment, (blob, _) in self._cache.items()}
            started = time.monotonic()
            docs = entries(self.store, self._rebuild, self._cache)
            if check and self._check is not None:
                docs = self._checked_docs(docs, everything=self._check_due(started))
            self._docs, self._at = docs, started
            return [doc["id"] for segment, (blob, doc) in self._cache.items() if before.get(segment) != blob]

    def _checked_docs(self, docs: list[dict[str, Any]], *, everything: bool) -> list[dict[str, Any]]:
        """`docs` with the entries that disagree with their chains rebuilt (all checked, or those changed since
        their last check); the rebuilt entries replace the copy's."""
        assert self._check is not None
        started = time.monotonic()
        segments = {doc["id"]: session_segment(doc["id"]) for doc in docs}

        def unchecked(doc: dict[str, Any]) -> bool:
            cached = self._cache.get(segments[doc["id"]])
            return cached is None or self._checked.get(segments[doc["id"]]) != cached[0]

        due = [doc for doc in docs if everything or unchecked(doc)]
        looked_at = {id(doc) for doc in due}
        result = {doc["id"]: doc for doc in self._check(due)} if due else {}
        out = []
        for doc in docs:
            segment = segments[doc["id"]]
            if id(doc) not in looked_at:
                out.append(doc)
                continue
            fresh = result.get(doc["id"])
            if fresh is None:  # its own record is damaged or gone: left out, looked at again next time
                self._cache.pop(segment, None)
                self._checked.pop(segment, None)
                continue
            if fresh is not doc:  # rebuilt (and written): the copy takes the new entry
                blob = self.store.get(key(segment))
                if blob is not None:
                    self._cache[segment] = (blob, fresh)
            cached = self._cache.get(segment)
            if cached is not None and cached[1] is fresh:  # (else its bytes are not known: checked again next time)
                self._checked[segment] = cached[0]
            out.append(fresh)
        for gone in self._checked.keys() - self._cache.keys():
            del self._checked[gone]
        if everything:
            self._checked_at = started
        return out

    def reload(self, session_ids: Iterable[str], segment_of: Callable[[str], str]) -> None:
        """Re-read the entries of `session_ids` now (ids of sessions that no longer exist are dropped)."""
        with self._lock:
            if self._docs is None:
                return
            for session_id in session_ids:
                segment = segment_of(session_id)
                blob = self.store.get(key(segment))
                if blob is None or not self.store.exists(f"sessions/{segment}"):
                    self._cache.pop(segment, None)
                    continue
                try:
                    self._cache[segment] = (blob, codec.load_sealed(blob, key(segment)))
                except CorruptCheckpoint:
                    self._cache.pop(segment, None)
            self._docs = [doc for _, doc in self._cache.values()]


def to_info(doc: dict[str, Any]) -> SessionInfo:
    """The SessionInfo (head without state) an entry describes (built once per entry: kept in it as `_info`)."""
    made = doc.get("_info")
    if made is None:
        made = doc["_info"] = _info(doc)
    return made


def _info(doc: dict[str, Any]) -> SessionInfo:
    head = doc.get("head")
    checkpoint = None
    if head is not None:
        checkpoint = Checkpoint(
            session=doc["id"],
            seq=head["seq"],
            parent=head.get("parent"),
            created_at=datetime.fromisoformat(head["created_at"]),
            step=head.get("step"),
            status=Status(head["status"]),
            schema_version=head.get("schema_version", 1),
            format=head.get("format", doc.get("format", FORMAT)),
            checksum=head.get("checksum", ""),
            meta=head.get("meta") or {},
            keyframe=bool(head.get("keyframe")),
            lease=head.get("lease"),
        )
    return SessionInfo(
        id=doc["id"],
        agent=doc.get("agent"),
        tags=list(doc.get("tags") or []),
        parent=doc.get("parent"),
        created_at=datetime.fromisoformat(doc["created_at"]),
        head=checkpoint,
        damaged=doc.get("damaged"),
    )


def to_summary(doc: dict[str, Any], stuck: str | None = None) -> SessionSummary:
    return SessionSummary(
        info=to_info(doc),
        tokens=doc.get("tokens", 0),
        cost=doc.get("cost", 0),
        steps_done=doc.get("steps_done", 0),
        retries=doc.get("retries", 0),
        waiting_for=list(doc.get("waiting_for") or []),
        in_doubt=list(doc.get("in_doubt") or []),
        error=doc.get("error"),
        stuck=stuck,
        kept_tokens=doc.get("kept_tokens", 0),
    )


def status_of(doc: dict[str, Any]) -> str:
    """The head's status as text ("new" before the first checkpoint)."""
    head = doc.get("head")
    return head["status"] if head else "new"


def updated_at(doc: dict[str, Any]) -> str:
    """When the session last changed, as ISO text (sorts as time: every entry is written in UTC)."""
    head = doc.get("head")
    return head["created_at"] if head else doc["created_at"]
