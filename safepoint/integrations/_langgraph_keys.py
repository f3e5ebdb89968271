"""Names the LangGraph saver gives things: the session of a thread, and the saver's own keys in the store.

    langgraph/threads/<hash of thread id>/<hash of namespace>      which session holds a thread's namespace
    langgraph/ids/<session>/<checkpoint id>                        hint: the seq of a checkpoint id
    langgraph/writes/<session>/<checkpoint id>/<task>.w            pending writes (`_langgraph_writes`)

A checkpoint or task id that is not a plain key segment is named by a hash of it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..core.history import check_session_id
from ..errors import InvalidSessionId

_ESCAPE = re.compile(r"[%/\\#\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _escape(text: str) -> str:
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}" if ord(m.group()) < 256 else f"%u{ord(m.group()):04X}", text)


def session_id_for(thread_id: Any, checkpoint_ns: str = "") -> str:
    """The safepoint session holding a LangGraph thread's checkpoints in one namespace (the thread id itself for
    the root namespace, when it makes a valid session id)."""
    name = _escape(str(thread_id)) + (f"#{_escape(checkpoint_ns)}" if checkpoint_ns else "")
    try:
        return check_session_id(name)
    except InvalidSessionId:
        digest = hashlib.sha256(f"{thread_id}\0{checkpoint_ns}".encode("utf-8", "surrogatepass")).hexdigest()
        return f"#langgraph-{digest[:40]}"


def text_hash(text: str) -> str:
    """32 hex digits naming `text` in a key."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def key_segment(text: str) -> str:
    """A store key segment naming `text` (a checkpoint or task id): itself when plain, else a hash."""
    return text if _PLAIN_SEGMENT.fullmatch(text) else "~" + text_hash(text)


def thread_key(thread_id: str, ns: str = "") -> str:
    return f"langgraph/threads/{text_hash(thread_id)}/{text_hash(ns)}"


def threads_prefix(thread_id: str | None = None) -> str:
    """The index keys of one thread (all its namespaces), or of every thread."""
    return thread_key(thread_id).rsplit("/", 1)[0] + "/" if thread_id is not None else "langgraph/threads/"


def writes_prefix(segment: str, checkpoint_id: str | None = None) -> str:
    """The pending writes of a session (`segment`), or of one of its checkpoints."""
    return f"langgraph/writes/{segment}/" + (f"{key_segment(checkpoint_id)}/" if checkpoint_id is not None else "")


def id_key(segment: str, checkpoint_id: str) -> str:
    return f"langgraph/ids/{segment}/{key_segment(checkpoint_id)}"


def ids_prefix(segment: str) -> str:
    return f"langgraph/ids/{segment}/"
