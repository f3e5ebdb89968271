"""The byte-level store contract every backend implements.

A backend knows nothing about sessions or checkpoints: it maps keys to immutable-ish byte strings. The whole of
safepoint (history, sessions, artifacts, gc) is written once above these primitives:

- `get(key)`                 the bytes, or None when absent
- `put_if_absent(key, data)` atomic create; True when this call wrote it. The single commit point.
- `put(key, data, expect=)`  overwrite; with `expect` a compare-and-set (None means "must be absent")
- `list(prefix)`             sorted keys under a prefix
- `delete(key)`              True when something was removed

Backends may add faster paths behind the same contract (`commit` in one transaction, `put_hint` without fsync).

A commit may carry a *fence*, `(key, value)`: it lands only while `key` still holds exactly `value` (a
worker's lease record), else it raises FenceMismatch and writes nothing. The stores check it atomically with
the commit (a transaction, a script, a lock); the generic `commit` below only reads it just before.

A commit may also carry a *floor*, `(key, seq)`: it is refused (False, as if the commit key existed) when the
decimal number stored under `key` is at least `seq`. A session's history keeps there the highest seq whose
record was moved into a pack, so a writer far behind cannot re-create a record a pack has taken over. Stores
with transactions or scripts check it with the commit; the generic `commit` checks it right after creating the
key and takes the key back, which is as safe: the floor rises before the records it covers are discarded, so
a create that only succeeded because a packed record was discarded sees the risen floor.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Final, Protocol

from ..errors import CorruptCheckpoint, FenceMismatch, InvalidKey

#: The first bytes of every value an encrypted store writes (see safepoint.stores.encrypted).
ENCRYPTED_MAGIC: Final = b"SPX\x01"

# Sentinel for "no compare-and-set": plain overwrite.
ANY: Final = object()

#: (key, value): a commit lands only while `key` holds exactly `value`.
Fence = tuple[str, bytes]
#: (key, seq): a commit is refused when the number stored under `key` is at least `seq`.
Floor = tuple[str, int]

_SEGMENT_PATTERN = r"[A-Za-z0-9_~\-][A-Za-z0-9._~\-]{0,199}"
_SEGMENT = re.compile(_SEGMENT_PATTERN)
# The whole key in one match: every commit checks several keys, and this is ~3x faster than segment by segment.
_KEY = re.compile(f"{_SEGMENT_PATTERN}(?:/{_SEGMENT_PATTERN})*")


def check_key(key: str) -> str:
    """Raise InvalidKey unless `key` is `/`-separated segments of [A-Za-z0-9._~-], none starting with a dot."""
    if isinstance(key, str) and _KEY.fullmatch(key):
        return key
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"store key {key!r} is empty or not a string; keys are built by safepoint, not users")
    for part in key.split("/"):
        if not _SEGMENT.fullmatch(part):
            raise InvalidKey(
                f"store key {key!r} has an invalid segment {part!r}: segments are 1-200 characters of "
                "[A-Za-z0-9._~-] and may not start with a dot"
            )
    return key


def check_bytes(data: object, key: str) -> bytes:
    """Values are bytes-like; anything else (an int would become that many zero bytes) is refused."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"value for store key {key!r} must be bytes, got {type(data).__name__}")
    return bytes(data)


def check_commit(
    objects: Iterable[tuple[str, bytes]],
    key: str,
    data: bytes,
    hints: Iterable[tuple[str, bytes]],
    fence: Fence | None,
    floor: Floor | None,
) -> tuple[list[tuple[str, bytes]], str, bytes, list[tuple[str, bytes]], Fence | None, Floor | None]:
    """A commit's arguments checked, every key and value before anything is written (lists, not iterators)."""
    checked_objects = [(check_key(k), check_bytes(v, k)) for k, v in objects]
    key, data = check_key(key), check_bytes(data, key)
    checked_hints = [(check_key(k), check_bytes(v, k)) for k, v in hints]
    if fence is not None:
        fence = (check_key(fence[0]), check_bytes(fence[1], fence[0]))
    if floor is not None:
        floor = (check_key(floor[0]), int(floor[1]))
    return checked_objects, key, data, checked_hints, fence, floor


def floor_value(data: bytes | None, key: str) -> int:
    """The number a floor key holds (0 when absent); CorruptCheckpoint when it holds anything else."""
    if data is None:
        return 0
    if not data.isdigit():  # bytes: ASCII digits only
        raise CorruptCheckpoint(key, f"floor {data[:40]!r} is not a number")
    return int(data)


def prefix_end(prefix: str) -> str:
    """The first key after every key starting with `prefix` (keys are ASCII and compare bytewise; "\x7f" is
    above every character a key may hold)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else "\x7f"


def check_prefix(prefix: str) -> str:
    """A list prefix is empty or a valid key, optionally ending in `/`."""
    if prefix:
        check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


class Listener(Protocol):
    """Notifications heard on one channel (see `Store.listen`)."""

    def wait(self, timeout: float | None = None) -> list[str]:
        """The payloads received, waiting up to `timeout` seconds for the first; [] when none came."""
        ...

    def close(self) -> None: ...


class Store(ABC):
    """Abstract byte store. Subclasses implement the five primitives; keys are validated here."""

    #: URL this store was opened from (shown by the CLI and in errors).
    url: str = ""
    #: False for stores that lose data when the process or server stops (memory, Redis without persistence).
    durable: bool = True
    #: True when `put_if_absent` of an existing key costs about as little as `exists` (no fsync): writers then
    #: skip the existence check before writing an object that may already be stored.
    cheap_create: bool = True
    #: True when the history should pack the commit records of each finished keyframe cycle into one compressed
    #: key (see `safepoint.core.history`): where every key costs a fixed minimum (a file takes a disk block), and
    #: where compressing records on the save path costs more than it saves. Records are then stored
    #: uncompressed until packed.
    pack_records: bool = False
    #: True when commits also write a head hint (`heads/<sid>`), for stores where finding the last key under a
    #: prefix means listing them all. Stores whose `last` is one index lookup set it False: a commit then
    #: writes one key less.
    head_hints: bool = True
    #: True when `notify` / `listen` carry notifications between processes (PostgreSQL's LISTEN/NOTIFY).
    can_notify: bool = False
    #: The redaction policy safepoint applies before writing into this store (`safepoint.open(redact=...)`
    #: sets it; None: the default, known credential formats redacted). Stores themselves never look at it.
    redactor: object | None = None

    # --- the primitives: public methods validate keys, subclasses implement the underscored ones ---
    def get(self, key: str) -> bytes | None:
        """Return the bytes stored under `key`, or None."""
        return self._get(check_key(key))

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically create `key`; return False (and change nothing) when it already exists."""
        return self._put_if_absent(check_key(key), check_bytes(data, key))

    def put(self, key: str, data: bytes, *, expect: bytes | None | object = ANY) -> bool:
        """Write `key`. With `expect`, only if the current value equals it (None: only if absent)."""
        return self._put(check_key(key), check_bytes(data, key), expect)

    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with `prefix`, sorted."""
        return self._list(check_prefix(prefix))

    def delete(self, key: str) -> bool:
        """Remove `key`; return whether it existed."""
        return self._delete(check_key(key))

    @abstractmethod
    def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _put_if_absent(self, key: str, data: bytes) -> bool: ...

    @abstractmethod
    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool: ...

    @abstractmethod
    def _list(self, prefix: str) -> list[str]: ...

    @abstractmethod
    def _delete(self, key: str) -> bool: ...

    # --- optional fast paths with default implementations ---------------------------------------
    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def present(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` that exist. Default: `exists` for each; stores with a query language ask once."""
        return {key for key in keys if self.exists(key)}

    def last(self, prefix: str) -> str | None:
        """The greatest key starting with `prefix`, or None. Default: the end of `list(prefix)`."""
        keys = self.list(prefix)
        return keys[-1] if keys else None

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """(key, value) of every key under `prefix`, sorted. Default: `list` then `get` each (a key removed in
        between is left out); stores with a query language read them in one."""
        found = ((key, self.get(key)) for key in self.list(prefix))
        return [(key, value) for key, value in found if value is not None]

    def put_hint(self, key: str, data: bytes) -> None:
        """Write a value that may be lost in a crash (a head hint): readers must tolerate stale or missing."""
        self.put(key, data)

    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        """Write immutable `objects` (if absent), then atomically create `key`; hints only if that won.

        Returns False when `key` already existed, or when `floor` has reached its seq; objects written before
        that are harmless orphans that garbage collection removes. With `fence`, raises FenceMismatch (writing
        nothing) unless the fence key holds the fence value. Backends with transactions override this to do it
        all at once.
        """
        # All keys first: never commit and then fail on a bad hint key.
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        self.check_fence(fence)
        for object_key, object_data in objects:
            self.put_if_absent(object_key, object_data)
        if not self.put_if_absent(key, data) or self.undo_below_floor(key, floor):
            return False
        for hint_key, hint_data in hints:
            self.put_hint(hint_key, hint_data)
        return True

    def undo_below_floor(self, key: str, floor: Floor | None) -> bool:
        """After creating `key`: when the floor has reached its seq, discard `key` again and return True."""
        if floor is None or floor_value(self.get(floor[0]), floor[0]) < floor[1]:
            return False
        self.discard([key])
        return True

    def check_fence(self, fence: Fence | None) -> None:
        """Raise FenceMismatch unless the fence key holds the fence value (a read: not atomic with a write)."""
        if fence is not None and self.get(fence[0]) != fence[1]:
            raise FenceMismatch(fence[0])

    def notify(self, channel: str, payload: str = "") -> None:  # noqa: B027 - optional hook
        """Tell the listeners on `channel` of this store (stores with a notification channel); else nothing."""

    def listen(self, channel: str) -> Listener | None:
        """Start hearing `notify` on `channel`; None when this store cannot notify (poll it instead)."""
        return None

    def discard(self, keys: Iterable[str]) -> None:
        """Delete keys whose removal need not survive a crash (copies kept elsewhere too). Default: `delete`."""
        for key in keys:
            self.delete(key)

    def prepare(self, prefix: str) -> None:  # noqa: B027 - optional hook
        """Get ready for keys under `prefix` (a directory store creates the directory durably now, so the
        first write there costs no more than later ones). Nothing to do by default."""

    def check(self) -> list[tuple[str, str]]:
        """(where, what is wrong) for damage the backend itself can find (SQLite's integrity check); fsck
        reports each. Nothing by default."""
        return []

    def sweep(self) -> int:
        """Remove leftovers of interrupted writes (temp files); return how many. Nothing to do by default."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing open
        """Release connections and file handles."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
