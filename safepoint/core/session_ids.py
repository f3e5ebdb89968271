"""Session ids: which strings can name a session, and the store key segment each one gets."""

from __future__ import annotations

import hashlib
import re
import unicodedata

from ..errors import InvalidSessionId

MAX_ID_LENGTH = 200

_PLAIN_ID = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]{0,127}")


def check_session_id(session_id: object) -> str:
    """Return the id if it can name a session; raise InvalidSessionId saying why otherwise."""
    if not isinstance(session_id, str):
        raise InvalidSessionId(f"session id must be a string, got {type(session_id).__name__}")
    problem = None
    if not session_id:
        problem = "is empty"
    elif session_id in (".", ".."):
        problem = "is '.' or '..'"
    elif len(session_id) > MAX_ID_LENGTH:
        problem = f"is {len(session_id)} characters long (the limit is {MAX_ID_LENGTH})"
    elif "/" in session_id or "\\" in session_id:
        problem = "contains a path separator ('/' or '\\')"
    elif any(unicodedata.category(ch) in ("Cc", "Cs") or ch in "\u2028\u2029" for ch in session_id):
        problem = "contains a NUL or another control character"
    if problem:
        raise InvalidSessionId(
            f"session id {session_id[:60]!r} {problem}; use up to {MAX_ID_LENGTH} printable characters "
            "without '/' or '\\', e.g. 'report-42'"
        )
    return session_id


def session_segment(session_id: str) -> str:
    """The key segment for a session: the id itself when it is a plain name, else a hash of it."""
    if _PLAIN_ID.fullmatch(session_id):
        return session_id
    return "~" + hashlib.sha256(session_id.encode()).hexdigest()[:40]
