"""The summary index checked against the chains, for listings that must be exact (`safepoint ls`, `sessions()`).

An entry is a hint (see `core.session_index`): on the directory and object stores it is written after the commit
key, so a writer killed between the two leaves it one commit behind, and a deletion of a session's newest
checkpoints leaves it ahead. `current` finds both without reading any chain: an entry naming head seq S is
current when the commit key of S exists and that of S + 1 does not (commits are created in order, and the head
is always a loose record), which all entries ask of the store at once (`Store.present`: one query on SQL
stores, a stat each on the directory store). Any other entry is looked at in its chain, and rebuilt when the
chain's head is newer; an entry newer than its chain is the high-water mark of a loss (a deliberate deletion
lowers the entry itself) and is listed marked `damaged`, never rebuilt over, so that fsck still reports it.
An entry of a session without checkpoints is always looked at (there is no seq to test).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..stores.base import Store
from .history import Chain, commit_key
from .session_ids import session_segment


def current(
    store: Store, docs: list[dict[str, Any]], rebuild: Callable[[str], dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """`docs` (index entries) with each entry that disagrees with its chain's head replaced by `rebuild(info_key)`
    (left out when that gives None: the session's own record is damaged or gone)."""
    probes = []
    for doc in docs:
        segment = session_segment(doc["id"])
        seq = (doc.get("head") or {}).get("seq", 0)
        probes.append((doc, segment, seq, commit_key(segment, seq), commit_key(segment, seq + 1)))
    found = store.present(key for _, _, seq, head, after in probes for key in ((head, after) if seq else ()))
    out = []
    for doc, segment, seq, head, after in probes:
        if seq and head in found and after not in found:
            out.append(doc)
        elif (head_seq := Chain(store, doc["id"]).head_seq()) == seq:
            out.append(doc)  # (its head is packed, or it has no checkpoint yet)
        elif head_seq < seq:
            # Ahead: a deletion on purpose lowers the entry itself (Chain.delete_records), so this is a loss. The
            # entry is the high-water mark fsck reports it by: listed marked, never rebuilt over.
            out.append({**doc, "damaged": f"checkpoint {seq} was acknowledged but is missing (safepoint fsck)"})
        elif (fresh := rebuild(f"sessions/{segment}")) is not None:
            out.append(fresh)
    return out
