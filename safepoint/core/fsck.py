"""fsck: find every damaged or missing record and object, the checkpoints it breaks and the last good one.

fsck never stops at the first damage: every failure (a checksum, an unreadable backend page, a key that names
no seq, a floor that is not a number) becomes a `Problem`, and the check goes on with the rest.

Besides what is damaged, it finds what is *missing*: every seq from 1 to the session's high-water mark
must have a record, except those deleted on purpose (`Chain.trimmed`). The high-water mark is the head seq in
the session's summary index entry (core.session_index), which every commit writes anyway, so it costs the
save path nothing. A deleted head commit, a deleted pack and a deleted session record are reported as
"checkpoint N acknowledged but missing". What it cannot see: a loss that takes the index entry with it (the
whole store, or the entry and the newest commits together), and a commit whose entry was lost in a crash
(the entry is a hint written after the commit: it may lag, never lead).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from ..errors import CorruptCheckpoint, SafepointError, SessionNotFound
from ..model import SessionInfo
from ..stores.base import Store, floor_value
from . import codec, session_index
from .chain_marks import acknowledged, range_of, seq_of
from .history import Chain
from .maintenance import Progress, _Verifier, session_ids
from .session_ids import session_segment

#: Reasons starting with this name a failure fsck did not expect (a bug, not only damage): tests look for it.
UNEXPECTED = "unexpected error"


@dataclass
class Problem:
    """One damaged or missing thing, the checkpoints (session id, seq) that cannot load because of it, and per
    session the newest checkpoint that still loads with all its artifacts (None: none does)."""

    key: str
    reason: str
    broken: list[tuple[str, int]] = field(default_factory=list)
    last_good: dict[str, int | None] = field(default_factory=dict)


@dataclass
class FsckReport:
    problems: list[Problem]
    checked_checkpoints: int
    checked_objects: int
    swept: int
    #: per session with a broken checkpoint: the newest one that loads with all its artifacts (None: none)
    last_good: dict[str, int | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Run:
    """One fsck pass: what is damaged (key -> reason) and what each damaged key breaks."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.check = _Verifier(store)
        self.broken_by: dict[str, list[tuple[str, int]]] = {}
        self.last_good: dict[str, int | None] = {}
        self.checkpoints = 0

    @property
    def bad(self) -> dict[str, str]:
        return self.check.bad

    def guarded(self, key: str, what: str, action, *args):  # noqa: ANN001, ANN202 - any check, its result or None
        """Run one check; any failure becomes a problem instead of stopping fsck (then the result is None)."""
        return self.attempt(key, what, action, *args)[0]

    def attempt(self, key: str, what: str, action, *args):  # noqa: ANN001, ANN202
        """(the result of one check, None) or, when it failed, (None, the key its problem is reported under)."""
        try:
            return action(*args), None
        except CorruptCheckpoint as exc:
            self.bad.setdefault(exc.key, exc.reason)
            self.broken_by.setdefault(exc.key, [])
            return None, exc.key
        except SafepointError as exc:
            self.bad.setdefault(key, f"cannot {what}: {exc}")
        except Exception as exc:  # noqa: BLE001 - fsck reports every failure, whatever its kind
            self.bad.setdefault(key, f"{UNEXPECTED} while trying to {what}: {type(exc).__name__}: {exc}")
        return None, key

    def report(self, swept: int) -> FsckReport:
        problems = []
        for key, reason in sorted(self.bad.items()):
            broken = sorted(set(self.broken_by.get(key, [])))
            good = {sid: self.last_good.get(sid) for sid in dict.fromkeys(sid for sid, _ in broken)}
            problems.append(Problem(key, reason, broken, good))
        return FsckReport(problems, self.checkpoints, len(self.check.seen), swept, dict(self.last_good))


def check_store(store: Store, progress: Progress | None = None) -> FsckReport:
    """Verify every record and object; report each damaged or missing one with the checkpoints it breaks."""
    run = _Run(store)
    swept = run.guarded("<temp files>", "sweep stale temp files", store.sweep) or 0
    for key, reason in run.guarded("<store>", "check the backend", store.check) or []:
        run.bad.setdefault(key, reason)
    sessions = run.guarded("<store>", "list the sessions", lambda: list(_sessions(store)))
    for segment, session_id, record_problem in sessions or []:
        info_key = f"sessions/{segment}"
        if record_problem:
            run.bad[info_key] = record_problem
            run.broken_by.setdefault(info_key, [])
        if session_id is None:
            continue
        if progress:
            progress(session_id)
        run.guarded(info_key, f"check session {session_id!r}", _check_session, run, session_id)
    for key in run.guarded("objects/", "list the objects", store.list, "objects/") or []:
        run.guarded(key, f"check {key}", run.check.orphan, key)
    return run.report(swept)


def _sessions(store: Store) -> Iterator[tuple[str, str | None, str | None]]:
    """(segment, session id or None, what is wrong with its session record or None) for every session the
    store knows of: by its record, or, when the record is gone, by its index entry or its checkpoints."""
    segments: dict[str, None] = {}
    for prefix in ("sessions/", "summaries/", "packed/"):
        segments.update(dict.fromkeys(key[len(prefix) :] for key in store.list(prefix)))
    for prefix in ("commits/", "packs/"):
        segments.update(dict.fromkeys(key[len(prefix) :].split("/", 1)[0] for key in store.list(prefix)))
    for segment in segments:
        session_id, problem = _identify(store, segment)
        yield segment, session_id, problem


def _identify(store: Store, segment: str) -> tuple[str | None, str | None]:
    """The id of the session under `segment`, and what is wrong with its record (None: nothing)."""
    info_key = f"sessions/{segment}"
    blob = store.get(info_key)
    problem = None
    if blob is not None:
        try:
            session_id = codec.load_sealed(blob, info_key)["id"]
            if isinstance(session_id, str) and session_segment(session_id) == segment:
                return session_id, None
            problem = f"session record names session {session_id!r}, which does not belong under {info_key}"
        except (CorruptCheckpoint, KeyError, TypeError) as exc:
            problem = f"session record is damaged ({getattr(exc, 'reason', exc)}); its id is unknown"
    entry = session_index.read(store, segment) or {}
    if blob is None:
        head = (entry.get("head") or {}).get("seq") if isinstance(entry.get("head"), dict) else None
        has_records = bool(store.list(f"commits/{segment}/") or store.list(f"packs/{segment}/"))
        if not head and not has_records:
            return None, None  # the index entry or floor of a session deleted on purpose
        problem = "session record is missing" + (f" (checkpoint {head} acknowledged)" if head else "")
    candidate = entry.get("id")
    if isinstance(candidate, str) and session_segment(candidate) == segment:
        return candidate, f"{problem}; the session is {candidate!r}"
    return _id_from_records(store, segment), problem


def _id_from_records(store: Store, segment: str) -> str | None:
    """The session id a record of the segment names (for a session whose record and index entry are gone)."""
    for key in store.list(f"commits/{segment}/")[:3]:
        try:
            found = codec.load_sealed(store.get(key) or b"", key).get("session")
        except (CorruptCheckpoint, AttributeError):
            continue
        if isinstance(found, str) and session_segment(found) == segment:
            return found
    return segment if session_segment(segment) == segment else None


def _check_session(run: _Run, session_id: str) -> None:
    store, check = run.store, run.check
    chain = Chain(store, session_id)
    for key in _strays(chain):
        check.bad[key] = "stray key: it names no checkpoint seq (a damaged name or a foreign file); remove it"
    records: dict[int, dict | None] = {}
    failed: dict[int, str] = {}  # seq -> the key its damage is reported under
    missing: dict[int, str] = {}  # seq -> the key its loss is reported under
    seqs = chain.seqs()
    for seq in seqs:
        run.checkpoints += 1
        records[seq], error_key = run.attempt(chain.record_key(seq), f"read checkpoint {seq}", chain.record, seq)
        if error_key is not None:
            failed[seq] = error_key
    trimmed = run.guarded(chain.trim_key, "read the seqs deleted on purpose", chain.trimmed) or set()
    mark = acknowledged(store, chain.segment)
    # Only records that read count: a damaged key name can claim any seq (900000000040 for 40).
    newest = max([mark, *(seq for seq, record in records.items() if record is not None)])
    for first, last in _gaps(newest, records.keys() | trimmed):
        key = chain.commit_key(first) if first == last else f"{chain.prefix}{first:012d}..{last:012d}"
        what = f"checkpoint {first}" if first == last else f"checkpoints {first}-{last}"
        check.bad[key] = f"{what} acknowledged but missing (a deleted record, pack or head commit)"
        for seq in range(first, last + 1):
            missing[seq] = key
            run.broken_by.setdefault(key, []).append((session_id, seq))
    if store.pack_records:
        _check_floor(run, chain, newest)
    _check_lease(run, chain)
    broken: set[int] = set()
    for seq, record in records.items():
        if record is None:
            damaged = [failed[seq]]
        else:
            damaged, error_key = run.attempt(
                chain.record_key(seq), f"check checkpoint {seq}", _checkpoint_damage, chain, check, records,
                {**failed, **missing}, seq,
            )  # fmt: skip
            damaged = damaged if error_key is None else [error_key]
        for key in damaged:
            run.broken_by.setdefault(key, []).append((session_id, seq))
        if damaged or record is None:
            broken.add(seq)
    if broken or missing:
        run.last_good[session_id] = max((seq for seq in records if seq not in broken), default=None)


def _strays(chain: Chain) -> list[str]:
    """Keys under the session's commits and packs that name no seq or seq range (damage, or foreign files)."""
    loose = [key for key in chain.store.list(chain.prefix) if seq_of(key) is None]
    if not chain.store.pack_records:
        return loose
    return loose + [key for key in chain.store.list(chain.pack_prefix) if range_of(key) is None]


def _checkpoint_damage(
    chain: Chain, check: _Verifier, records: dict[int, dict | None], missing: dict[int, str], seq: int
) -> list[str]:
    """Keys of damaged or missing things that stop checkpoint `seq` (whose record reads) from loading;
    `missing`: the key each unreadable or missing seq is reported under."""
    record = records[seq]
    assert record is not None
    damaged: list[str] = []
    base = record["base"]
    for link in range(base, seq):
        if records.get(link) is None:
            key = missing.get(link) or chain.record_key(link)
            if link not in records and key not in check.bad:
                check.bad[key] = "checkpoint record is missing but later deltas need it"
            damaged.append(key)
    keyframe = records.get(base) if base != seq else record
    if keyframe is not None and "root" in keyframe:
        damaged += check.tree(keyframe["root"])
    for ref in record.get("artifacts", []):
        damaged += check.artifact(ref)
    return damaged


def _check_floor(run: _Run, chain: Chain, newest: int) -> None:
    """The packed floor must hold a number between the highest packed seq and the newest checkpoint."""
    blob = run.store.get(chain.floor_key)
    try:
        floor = floor_value(blob, chain.floor_key)
    except CorruptCheckpoint as exc:
        run.bad[chain.floor_key] = f"{exc.reason}: every save of this session fails until it holds a seq again"
        return
    packs = chain.packs()
    packed = max((last for _, last, _ in packs), default=0)
    loose = {seq_of(key) for key in run.store.list(chain.prefix)}
    # A pack above the floor whose loose copies are all there is one a crash interrupted (gc finishes it).
    interrupted = all(set(range(first, last + 1)) <= loose for first, last, _ in packs if last > floor)
    if floor < packed and not interrupted:
        run.bad[chain.floor_key] = (
            f"floor {floor} is below the highest packed seq {packed} (lowered, truncated or deleted): a writer "
            f"behind the head could commit a seq a pack holds; write {packed:012d} into it"
        )
    elif floor > newest:
        run.bad[chain.floor_key] = (
            f"floor {floor} is above the newest checkpoint {newest} (raised by damage): every save up to seq "
            f"{floor} is refused as a conflict; write {max(packed, 0):012d} into it"
        )


def _check_lease(run: _Run, chain: Chain) -> None:
    """A lease record that does not decode makes the session impossible to open for writing."""
    key = f"leases/{chain.segment}"
    blob = run.store.get(key)
    if blob is None:
        return
    try:
        doc = codec.load_sealed(blob, key)
        str(doc["owner"]), int(doc["token"]), float(doc["expires_at"])
    except (CorruptCheckpoint, KeyError, TypeError, ValueError) as exc:
        run.bad[key] = (
            f"lease record is damaged ({getattr(exc, 'reason', exc)}): the session cannot be opened for "
            "writing; once no worker runs it, delete this key"
        )


def damage_listing(
    store: Store, info_of: Callable[[str], SessionInfo], *, skip: Collection[str] = ()
) -> Iterator[SessionInfo]:
    """Every session's info (`info_of(id)`) but those whose info key (`sessions/<segment>`) is in `skip` (listed
    already, and not read again); for one that cannot be read, an info marked `damaged` with why."""
    for info_key, session_id in session_ids(store, skip):
        if session_id is None:
            yield _damaged(info_key.removeprefix("sessions/"), "its session record is damaged")
            continue
        try:
            yield info_of(session_id)
        except SessionNotFound:
            continue  # deleted since the listing
        except SafepointError as exc:
            try:
                info = Chain(store, session_id).info()
            except SafepointError:
                info = None
            yield replace(info, damaged=str(exc)) if info else _damaged(session_id, str(exc))


def _damaged(session_id: str, why: str) -> SessionInfo:
    """The listing's line for a session that cannot be read (marked, sorted last)."""
    return SessionInfo(session_id, None, [], None, datetime.fromtimestamp(0, UTC), damaged=why)


def _gaps(newest: int, present: set[int]) -> list[tuple[int, int]]:
    """The runs of seqs from 1 to `newest` that are not in `present`, as (first, last), in O(len(present))."""
    gaps, expected = [], 1
    for seq in sorted(s for s in present if 1 <= s <= newest):
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = seq + 1
    if expected <= newest:
        gaps.append((expected, newest))
    return gaps
