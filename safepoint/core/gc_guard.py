"""How gc and live writers stay out of each other's way, with nothing but the store's primitives.

gc deletes what no commit references. Two kinds of object are unreferenced yet not garbage: those a writer has
just written (or found already stored and reused) for a commit it has not made yet, and artifacts a session
uploaded for a checkpoint it has not saved yet. The protocol keeps both alive:

- `gc/run` holds a *generation* (a number each gc run raises) and, while a gc deletes, a `deleting_until` time.
  gc marks what is live first, without the record; then it writes `deleting_until`, waits `SETTLE` seconds,
  marks again what changed meanwhile (heads that moved, pins) and only then deletes, and finally raises the
  generation and clears `deleting_until`.
- A writer calls `GcWatch.check()` right before it decides which objects a commit needs (and before uploading
  an artifact). That read is good for `WINDOW` seconds, less than SETTLE: a gc that starts deleting after it
  marks after the writer's commit has landed, and sees it. A gc already deleting makes the writer wait for it;
  a generation that moved since the writer's last check means objects it counted on may be gone, so it forgets
  what it knew to be stored and checks again (`changed` is True).
- Objects created after gc listed them are never deleted by that run (the generation mark for young objects).
- Artifacts uploaded but not yet committed are *pinned* under `pins/<session segment>`: gc reads the pins after
  its settle and keeps what they name. A pin older than `PIN_TTL` (a crashed writer's) no longer counts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import SafepointError
from ..stores.base import Store
from . import codec

RUN_KEY = "gc/run"
PIN_PREFIX = "pins/"
#: How long a writer trusts one read of `gc/run`.
WINDOW = 1.0
#: How long gc waits between announcing that it deletes and deciding what (more than WINDOW plus a commit's time).
SETTLE = 3.0
#: How long a gc may hold the deleting mark before writers stop waiting for it (a crashed gc).
DELETING_TTL = 600.0
#: Pins of uploads nobody committed for this long (a crashed writer's) stop protecting them.
PIN_TTL = timedelta(days=7)


class GcBusy(SafepointError):
    """Another gc is deleting in this store."""


@dataclass(frozen=True)
class GcMark:
    generation: int
    deleting_until: float | None  # epoch seconds, while a gc deletes

    @property
    def deleting(self) -> bool:
        return self.deleting_until is not None and self.deleting_until > time.time()


def read(store: Store) -> tuple[GcMark, bytes | None]:
    blob = store.get(RUN_KEY)
    if blob is None:
        return GcMark(0, None), None
    doc = codec.load_sealed(blob, RUN_KEY)
    return GcMark(int(doc.get("generation", 0)), doc.get("deleting_until")), blob


def _write(store: Store, mark: GcMark, expect: bytes | None) -> bytes | None:
    blob = codec.seal(codec.dumps({"generation": mark.generation, "deleting_until": mark.deleting_until}))
    return blob if store.put(RUN_KEY, blob, expect=expect) else None


def begin_deleting(store: Store) -> tuple[GcMark, bytes]:
    """Announce that a gc deletes (compare-and-set); GcBusy when another gc is at it."""
    mark, blob = read(store)
    if mark.deleting:
        until = datetime.fromtimestamp(mark.deleting_until or 0, UTC)
        raise GcBusy(
            f"another gc is deleting in store {store.url} (until {until}); wait for it to finish, or run gc "
            "again after that time if it crashed"
        )
    ours = GcMark(mark.generation, time.time() + DELETING_TTL)
    written = _write(store, ours, blob)
    if written is None:
        raise GcBusy(f"another gc started in store {store.url} at the same moment; run gc again later")
    return ours, written


def end_deleting(store: Store, mark: GcMark, blob: bytes) -> None:
    """Raise the generation and clear the deleting mark (writers waiting go on, and check again)."""
    if _write(store, GcMark(mark.generation + 1, None), blob) is None:
        _write(store, GcMark(read(store)[0].generation + 1, None), read(store)[1])


class GcWatch:
    """A writer's view of gc: `check()` before choosing what a commit relies on."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.generation: int | None = None
        self._checked_at = -WINDOW  # monotonic time of the last read that found no gc deleting

    def check(self) -> bool:
        """Wait while a gc deletes; True when a gc ran since the last check (what was known stored may be gone)."""
        if time.monotonic() - self._checked_at < WINDOW:
            return False
        while True:
            started = time.monotonic()
            mark, _ = read(self.store)
            if not mark.deleting:
                break
            time.sleep(0.05)
        changed = self.generation is not None and mark.generation != self.generation
        self.generation = mark.generation
        self._checked_at = started
        return changed

    def expired(self) -> bool:
        """True when the last check is too old to cover a commit made now (a very slow save)."""
        return time.monotonic() - self._checked_at >= WINDOW * 2


# --- pins: artifacts uploaded for a checkpoint not saved yet ------------------------------------------
def pin_key(segment: str) -> str:
    return f"{PIN_PREFIX}{segment}"


def pin(store: Store, segment: str, refs: list[str]) -> None:
    store.put(pin_key(segment), codec.seal(codec.dumps({"refs": sorted(set(refs)), "at": _now().isoformat()})))


def unpin(store: Store, segment: str) -> None:
    store.delete(pin_key(segment))


def pinned(store: Store) -> set[str]:
    """The artifact refs pinned by writers (pins younger than PIN_TTL)."""
    refs: set[str] = set()
    oldest = _now() - PIN_TTL
    for key in store.list(PIN_PREFIX):
        blob = store.get(key)
        if blob is None:
            continue
        try:
            doc: dict[str, Any] = codec.load_sealed(blob, key)
            if datetime.fromisoformat(doc["at"]) >= oldest:
                refs.update(doc["refs"])
        except (SafepointError, KeyError, ValueError, TypeError):
            continue  # a damaged pin protects nothing; fsck does not need it
    return refs


def _now() -> datetime:
    return datetime.now(UTC)
