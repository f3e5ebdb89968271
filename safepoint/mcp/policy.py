"""What an MCP client may do: read-only or not, which sessions (an allow-list of patterns), how big a payload.

Every refusal is a `ToolError`: the client gets `is_error` with one sentence saying what to do, and the
check runs before anything is written.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from ..core import codec
from ..errors import SafepointError

F = TypeVar("F", bound=Callable[..., Any])

#: Largest state, change list, answer, effect result or artifact a client may send (bytes of JSON or data).
DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024
#: Artifacts up to this size come back inline (base64); larger ones as a resource link.
DEFAULT_INLINE_ARTIFACT = 256 * 1024


@dataclass(frozen=True)
class Policy:
    """The limits of one MCP server."""

    read_only: bool = False
    #: fnmatch patterns of the session ids a client may touch (`team-a-*`); empty: every session
    sessions: Sequence[str] = field(default_factory=tuple)
    max_payload: int = DEFAULT_MAX_PAYLOAD
    inline_artifact: int = DEFAULT_INLINE_ARTIFACT

    def allows(self, session_id: str) -> bool:
        return not self.sessions or any(fnmatchcase(session_id, pattern) for pattern in self.sessions)

    def check_session(self, session_id: str) -> str:
        """The id, if this server may touch the session; otherwise a ToolError (which names no other session)."""
        if not self.allows(session_id):
            patterns = ", ".join(repr(p) for p in self.sessions)
            raise ToolError(
                f"session {session_id!r} is outside this server's allow-list ({patterns}); "
                "use a session id that matches it"
            )
        return session_id

    def check_size(self, what: str, value: Any = None, *, size: int | None = None) -> None:
        """Refuse a payload over `max_payload` bytes (its canonical JSON, or `size` when given)."""
        if size is None:
            try:
                size = len(codec.dumps(value, root=what))
            except SafepointError:
                return  # no JSON form: the write itself refuses it, naming the path inside the state
        if size > self.max_payload:
            raise ToolError(
                f"{what} is {size:,} bytes, over this server's limit of {self.max_payload:,} bytes "
                "(safepoint mcp --max-payload); nothing was written: save large content with put_artifact "
                "and keep its reference in the state"
            )


def tool_errors(fn: F) -> F:
    """Turn a safepoint error into a tool error (`is_error`, its one-line message), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SafepointError as exc:
            raise ToolError(" ".join(str(exc).split("\n"))) from None
        except OSError as exc:  # the store's disk or server failed under a call safepoint did not wrap
            raise ToolError(
                f"the store failed ({exc}); a save lands whole or not at all: check with load_checkpoint and retry"
            ) from None

    # The SDK reads the tool's schema from its annotations: resolve them where the tool was written.
    wrapper.__annotations__ = typing.get_type_hints(fn, include_extras=True)
    wrapper.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
