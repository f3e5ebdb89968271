"""Waking workers: on a store that can notify (PostgreSQL's LISTEN/NOTIFY), say at once that a session can go on.

Workers poll every `--poll` seconds anyway; a notification only makes them look now. It is sent when an answer
makes a waiting session ready, and when a writer closes a session it left running (a worker stopping on
SIGTERM, a script that ends mid-way), so another worker may take it on without waiting for its next scan.
"""

from __future__ import annotations

import warnings

from ..errors import SafepointWarning, StorageError
from ..stores.base import Store

#: The channel the notifications go out on; the payload is the session id.
WAKE_CHANNEL = "wake"


def wake(store: Store, session_id: str) -> None:
    """Tell listening workers that `session_id` can go on now. Best effort: they find it on their next poll."""
    try:
        store.notify(WAKE_CHANNEL, session_id)
    except StorageError as exc:
        warnings.warn(
            f"could not wake workers for session {session_id!r} ({exc}); they find it at their next scan",
            SafepointWarning,
            stacklevel=2,
        )
