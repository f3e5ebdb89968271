"""Where the LangGraph saver keeps pending writes (the writes of a checkpoint's tasks), and how they come back.

A task's writes against a checkpoint first go to one sealed object, `langgraph/writes/<session>/<checkpoint>/
<task>.w`, created once: a retried task adds only the writes (by index) it lacks. Writes that are all to special
channels (errors, interrupts, resumes...) go to `<task>.<idx>` objects, replaced on every put, as LangGraph expects.

**Folding.** When the thread's next checkpoint is committed on top of a checkpoint (the put continues from the
head, so the new record has the next seq), the head's `.w` objects that this saver stored are copied into that
commit record (`meta.langgraph.parent_writes`) and, once it stands, deleted. A step's writes are mostly the
values the next checkpoint adds (the message a node returned is in the next delta too); inside one record,
compressed as one, the second copy costs a back-reference, so a step's output is paid for once and leaves no
object of its own. A crash between the commit and the deletion leaves both copies, which read as one.

Reading the writes of checkpoint `seq` takes its objects first, then those folded into record `seq + 1` if that
record names it as its parent (in that order: a concurrent fold commits before it deletes, so one of the two is
seen). Precedence is what one object per task gives: a task's `.w` writes keep the first value of each index
(folded, then any written again later), special objects replace.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..core import codec
from ..stores import Store

try:
    from langgraph.checkpoint.base import writes_sort_key
except ImportError:  # langgraph-checkpoint before 4: the same order, spelled out

    def writes_sort_key(task_path: str, task_id: str = "", idx: int = 0) -> tuple[str, str, int]:
        return (task_path, task_id, idx)


Entry = list[Any]  # [index, channel, stored value]
#: How long a fold waits for this saver's writes to the same checkpoint still being stored (seconds).
SETTLE_SECONDS = 5.0
#: Checkpoints whose `.w` objects this saver remembers having stored (the latest ones: heads about to be folded).
RECENT_CHECKPOINTS = 1024


def _task_name(task_id: str) -> str:
    # A short hash: the task id itself is in the object.
    return hashlib.sha256(str(task_id).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _seal(task_id: str, task_path: str, entries: Sequence[Entry]) -> bytes:
    return codec.seal(codec.dumps({"task_id": str(task_id), "task_path": task_path, "writes": list(entries)}))


@dataclass
class Fold:
    """A checkpoint's `.w` objects, taken to be folded into the next commit record."""

    docs: list[dict[str, Any]] = field(default_factory=list)  # what the record carries
    blobs: dict[str, bytes] = field(default_factory=dict)  # key -> object as read: deleted only if unchanged


class PendingWrites:
    """The pending writes of the LangGraph threads in one store; `prefix` names one checkpoint's writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._busy: dict[str, int] = {}  # prefix -> put() calls in progress
        self._settled = threading.Condition()
        self._stored: OrderedDict[str, set[str]] = OrderedDict()  # prefix -> `.w` keys stored there, latest last

    def put(self, prefix: str, task_id: str, task_path: str, entries: list[Entry], *, special: bool) -> None:
        """Store a task's writes: the first ones stay (a retry adds what is missing); special ones are replaced."""
        name = prefix + _task_name(task_id)
        with self._storing(prefix):
            if special:
                for entry in entries:
                    self.store.put(f"{name}.{entry[0]}", _seal(task_id, task_path, [entry]))
                return
            self._merge(f"{name}.w", task_id, task_path, entries, stored_first=True)

    @contextmanager
    def _storing(self, prefix: str) -> Iterator[None]:
        with self._settled:
            self._busy[prefix] = self._busy.get(prefix, 0) + 1
        try:
            yield
        finally:
            with self._settled:
                self._busy[prefix] -= 1
                if not self._busy[prefix]:
                    del self._busy[prefix]
                    self._settled.notify_all()

    def _remember(self, key: str) -> None:
        """Note a `.w` object this saver stores, so that the next checkpoint's put can fold it without a listing."""
        prefix = key.rsplit("/", 1)[0] + "/"
        with self._settled:
            self._stored.setdefault(prefix, set()).add(key)
            self._stored.move_to_end(prefix)
            if len(self._stored) > RECENT_CHECKPOINTS:
                self._stored.popitem(last=False)

    def _merge(self, key: str, task_id: str, task_path: str, entries: list[Entry], *, stored_first: bool) -> None:
        """Create `key`, or add to it the entries whose index it lacks. `stored_first`: on an index both hold,
        the stored value stays (else `entries`, the older writes, win)."""
        self._remember(key)
        if self.store.put_if_absent(key, _seal(task_id, task_path, entries)):
            return
        while True:
            old = self.store.get(key)
            if old is None:
                if self.store.put_if_absent(key, _seal(task_id, task_path, entries)):
                    return
                continue
            stored = codec.load_sealed(old, key)["writes"]
            first, then = (stored, entries) if stored_first else (entries, stored)
            have = {entry[0] for entry in first}
            merged = first + [entry for entry in then if entry[0] not in have]
            if merged == stored or self.store.put(key, _seal(task_id, task_path, merged), expect=old):
                return

    def read(self, prefix: str, folded: Callable[[], list[dict[str, Any]]]) -> list[tuple[str, str, Any]]:
        """(task id, channel, stored value) of a checkpoint's writes, in LangGraph's order. `folded()` gives the
        writes folded into the next record; it is called after the objects are read."""
        objects = []
        for key in sorted(self.store.list(prefix), key=lambda k: not k.endswith(".w")):  # special ones last
            blob = self.store.get(key)
            if blob is not None:
                objects.append((codec.load_sealed(blob, key), not key.endswith(".w")))
        found: dict[tuple[str, int], tuple[tuple[str, str, int], tuple[str, str, Any]]] = {}
        for doc, replaces in [(doc, False) for doc in folded()] + objects:
            task_id, task_path = doc["task_id"], doc.get("task_path", "")
            mine = {
                (task_id, index): (writes_sort_key(task_path, task_id, index), (task_id, channel, value))
                for index, channel, value in doc["writes"]
            }
            if replaces:
                found.update(mine)
            else:
                for slot, write in mine.items():
                    found.setdefault(slot, write)
        return [write for _, write in sorted(found.values(), key=lambda item: item[0])]

    def take(self, prefix: str) -> Fold:
        """The `.w` objects this saver stored for a checkpoint, to fold into the record of its next checkpoint.

        LangGraph stores a step's writes while it saves the next checkpoint (only writes to a DeltaChannel are
        awaited first), so this waits until this saver's writes to the checkpoint, if any, are stored. Writes that
        come later, or from another process, stay objects. (The keys are remembered rather than listed: a put
        then costs the same however many keys the store holds, on every store.)
        """
        with self._settled:
            self._settled.wait_for(lambda: prefix not in self._busy, timeout=SETTLE_SECONDS)
            keys = sorted(self._stored.pop(prefix, ()))
        fold = Fold()
        for key in keys:
            if (blob := self.store.get(key)) is not None:
                fold.docs.append(codec.load_sealed(blob, key))
                fold.blobs[key] = blob
        return fold

    def release(self, fold: Fold) -> None:
        """Delete the objects of a fold whose record now stands (those changed since they were taken stay)."""
        for key, blob in fold.blobs.items():
            if self.store.get(key) == blob:
                self.store.discard([key])  # a crash may bring it back: read with the record, it counts once

    def restore(self, prefix: str, docs: list[dict[str, Any]]) -> None:
        """Write folded writes back as objects (before the record holding them is deleted)."""
        for doc in docs:
            key = f"{prefix}{_task_name(doc['task_id'])}.w"
            self._merge(key, doc["task_id"], doc.get("task_path", ""), doc["writes"], stored_first=False)

    def copy(self, source: str, target: str) -> None:
        """Copy the objects of one checkpoint's writes under another prefix."""
        for key in self.store.list(source):
            blob = self.store.get(key)
            if blob is not None:
                self.store.put_if_absent(target + key.rsplit("/", 1)[1], blob)

    def delete(self, prefix: str) -> None:
        """Delete the objects under `prefix` (one checkpoint's, or a whole session's)."""
        for key in self.store.list(prefix):
            self.store.delete(key)
