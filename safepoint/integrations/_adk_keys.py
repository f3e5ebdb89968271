"""Names the ADK session service gives things: the safepoint sessions of ADK sessions and of app / user state.

    <app>.<user>.<session id>          an ADK session (its parts escaped, so the name is unambiguous)
    adk-app:<app>                      the app's `app:` state, shared by all its sessions
    adk-user:<app>.<user>              a user's `user:` state, shared by that user's sessions of the app
    adk/sessions/<app>/<user>/<id>     index entries (hashes of the names), so listing reads no state

A name longer than a session id may be is replaced by a hash of it.
"""

from __future__ import annotations

import hashlib
import re

from ..core.history import check_session_id
from ..errors import InvalidSessionId

_ESCAPE = re.compile(r"[%.:/\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape(text: str) -> str:
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}" if ord(m.group()) < 256 else f"%u{ord(m.group()):04X}", text)


def _named(name: str, *parts: str) -> str:
    try:
        return check_session_id(name)
    except InvalidSessionId:
        digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return f"#adk-{digest}"


def session_id_for(app_name: str, user_id: str, session_id: str) -> str:
    """The safepoint session holding one ADK session."""
    return _named(f"{_escape(app_name)}.{_escape(user_id)}.{_escape(session_id)}", "s", app_name, user_id, session_id)


def app_state_id(app_name: str) -> str:
    return _named(f"adk-app:{_escape(app_name)}", "a", app_name)


def user_state_id(app_name: str, user_id: str) -> str:
    return _named(f"adk-user:{_escape(app_name)}.{_escape(user_id)}", "u", app_name, user_id)


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def index_key(app_name: str, user_id: str, session_id: str) -> str:
    return f"adk/sessions/{_h(app_name)}/{_h(user_id)}/{_h(session_id)}"


def index_prefix(app_name: str, user_id: str | None = None) -> str:
    return f"adk/sessions/{_h(app_name)}/" + (f"{_h(user_id)}/" if user_id is not None else "")
