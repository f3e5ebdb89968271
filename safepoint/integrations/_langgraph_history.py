"""Reading many checkpoints of one thread in one go: `list()`, and so LangGraph's `get_state_history`.

Read one at a time, every checkpoint of a listing loads its keyframe's tree and the deltas after it, and turns every
stored message back into a message object: a 600-step chat that adds one message a step reads each keyframe's tree
up to 32 times and rebuilds about 180,000 messages, 300 per checkpoint, although it holds only 600. A `History`
serves one listing of one thread instead:

- each commit record is parsed once, and each keyframe's tree read once; the keyframe is kept as its JSON bytes and
  decoded afresh for each checkpoint, so no two checkpoints share a container and applying deltas changes nothing
  kept;
- each distinct stored message (a class instance in LangGraph's msgpack extension) is rebuilt once, and that one
  object is handed to every checkpoint of the listing that holds it, as LangGraph's own channels share unchanged
  messages between steps. Treat the values of a listing as read-only: copy a message before editing it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import orjson

from ..core import delta
from ..core.history import Chain
from ..core.tree import TreeReader
from ..errors import CorruptCheckpoint
from ._langgraph_values import TAG, Values

KEYFRAMES_KEPT = 2  # a listing walks newest first: the cycle it is in and the one it came from


class History:
    """The states of one thread's checkpoints for one listing (see the module docstring). Thread-safe: the lazy
    tuples of a listing may be filled from any thread."""

    def __init__(self, chain: Chain, values: Values) -> None:
        self.chain = chain
        self.values = values
        self._records: dict[int, dict[str, Any]] = {}
        self._keyframes: OrderedDict[int, bytes] = OrderedDict()
        self._messages: dict[bytes, Any] = {}  # stored JSON of a message -> the object rebuilt from it
        self._lock = threading.Lock()

    def remember(self, seq: int, record: dict[str, Any]) -> None:
        """A record the listing read already (so it is not read again)."""
        self._records.setdefault(seq, record)

    def record(self, seq: int) -> dict[str, Any]:
        found = self._records.get(seq)
        if found is None:
            found = self._records[seq] = self.chain.record(seq)
        return found

    def state(self, seq: int) -> dict[str, Any]:
        """The stored state of checkpoint `seq` (a private copy), as `Chain.load` rebuilds it."""
        with self._lock:
            top = self.record(seq)
            records = [self.record(s) for s in range(top["base"], seq)] + [top]
            if "root" not in records[0]:
                raise CorruptCheckpoint(self.chain.commit_key(records[0]["seq"]), "keyframe has no state root")
            # From the newest keyframe: `rebase` may have turned a record inside the chain into one.
            records = records[max(i for i, rec in enumerate(records) if "root" in rec) :]
            doc = orjson.loads(self._keyframe(records[0]))
            for rec in records[1:]:
                doc = delta.apply(doc, orjson.loads(orjson.dumps(rec["delta"])))  # the record's values stay as read
        if not isinstance(doc, dict) or "state" not in doc:
            raise CorruptCheckpoint(self.chain.commit_key(seq), "checkpoint document has no state")
        return doc["state"]

    def _keyframe(self, record: dict[str, Any]) -> bytes:
        seq = record["seq"]
        blob = self._keyframes.get(seq)
        if blob is None:
            blob = orjson.dumps(TreeReader(self.chain.store.get, self.chain.known).read(record["root"]))
            self._keyframes[seq] = blob
            while len(self._keyframes) > KEYFRAMES_KEPT:
                self._keyframes.popitem(last=False)
        self._keyframes.move_to_end(seq)
        return blob

    def decode(self, stored: Any) -> Any:
        """A stored channel value back as Python objects; the messages of a list are rebuilt once per listing."""
        if not (type(stored) is dict and stored.get(TAG) == "msgpack" and type(stored["v"]) is list):
            return self.values.decode(stored)
        out: list[Any] = []
        used: set[bytes] = set()
        for item in stored["v"]:
            if type(item) is not dict or item.get(TAG) != "ext":
                out.append(self.values.decode_item(item))
                continue
            key = orjson.dumps(item)
            with self._lock:
                known = self._messages.get(key) if key not in used else None
            if known is None:
                known = self.values.decode_item(item)
                if key not in used:
                    with self._lock:
                        known = self._messages.setdefault(key, known)
            used.add(key)  # the same message twice in one list: two objects, as a whole-list decode gives
            out.append(known)
        return out
