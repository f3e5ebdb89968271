"""What a session's chain keeps beside its records so that fsck can tell a loss from a deletion.

- The high-water mark (`acknowledged`): the head seq of the session's summary index entry, which every commit
  writes anyway (see core.session_index), so the mark costs the save path nothing. It only comes down when
  checkpoints are deleted on purpose (`Chain.delete_records` rebuilds the entry).
- The seqs deleted on purpose (`trimmed/<sid>`: retention, a LangGraph prune), written only when records are
  deleted: a seq missing below the mark and not listed there was lost.
- The seq a commit key or a pack key names (`seq_of`, `range_of`): None for a stray key, so one damaged name
  never breaks a listing.
"""

from __future__ import annotations

from typing import Any

from ..errors import CorruptCheckpoint
from ..model import FORMAT
from ..stores.base import Store
from . import codec, session_index


def acknowledged(store: Store, segment: str) -> int:
    """The session's high-water mark: the newest seq its index entry says was committed (0 when unknown)."""
    entry = session_index.read(store, segment)
    head = entry.get("head") if isinstance(entry, dict) else None
    seq = head.get("seq") if isinstance(head, dict) else None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def trimmed(store: Store, key: str) -> set[int]:
    """The seqs listed under `key` as deleted on purpose; empty when none were."""
    blob = store.get(key)
    if blob is None:
        return set()
    doc = codec.load_sealed(blob, key)
    try:
        return {seq for first, last in doc["ranges"] for seq in range(int(first), int(last) + 1)}
    except (KeyError, TypeError, ValueError):
        raise CorruptCheckpoint(key, "the list of deleted seqs is not a list of ranges") from None


def note_trimmed(store: Store, key: str, seqs: set[int], head: int) -> None:
    """Add `seqs` (deleted on purpose) below the new `head` to the list under `key`; seqs above the head will be
    written again, so they leave it."""
    try:
        kept = trimmed(store, key)
    except CorruptCheckpoint:
        kept = set()
    doomed = sorted(seq for seq in kept | seqs if seq < head)
    if not doomed:
        store.delete(key)
        return
    ranges: list[list[int]] = []
    for seq in doomed:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1][1] = seq
        else:
            ranges.append([seq, seq])
    store.put(key, codec.seal(codec.dumps({"format": FORMAT, "ranges": ranges})))


def trim_imported(chain: Any) -> None:
    """After importing `chain` (a core.history.Chain): seqs below its oldest were deleted on purpose before the
    export (retention), not lost."""
    if (seqs := chain.seqs()) and seqs[0] > 1:
        chain.note_trimmed(set(range(1, seqs[0])), seqs[-1])


def seq_of(key: str) -> int | None:
    """The seq a commit key names, or None for a key that names none (a stray)."""
    name = key.rsplit("/", 1)[1]
    return int(name) if name.isdigit() and len(name) == 12 else None


def range_of(key: str) -> tuple[int, int] | None:
    """(first, last) a pack key names, or None for a key that names no range (a stray)."""
    first, _, last = key.rsplit("/", 1)[1].partition("-")
    if not (first.isdigit() and last.isdigit() and len(first) == len(last) == 12 and int(first) <= int(last)):
        return None
    return int(first), int(last)
