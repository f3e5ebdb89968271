"""What the runtime's steps, effects, waits and drift checks need of the session they run in.

`safepoint.Session` provides it; the runtime depends only on this interface, so the session can import the
runtime's functions without the runtime importing the session back.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..model import Checkpoint, Status
from .retry import RetryPolicy


class RunContext(Protocol):
    """An open session as the runtime sees it: its records (`runtime`), its counters and `save()`."""

    #: safepoint's own records for this run: steps, effects, inputs, usage
    runtime: dict[str, Any]
    #: checkpoint after every durable step
    save_steps: bool
    #: default retry policy of the session's steps
    retry: RetryPolicy | None
    replayed_steps: int
    saved_usage: dict[str, float]
    call_counts: dict[str, int]

    @property
    def id(self) -> str: ...

    @property
    def seq(self) -> int: ...

    def save(self, step: str | None = None, *, status: Status | str = Status.RUNNING, **meta: Any) -> Checkpoint: ...

    def ensure_open(self) -> None: ...

    def unchanged(self, status: Status = Status.WAITING) -> bool: ...

    def wait_for(self, name: str, *, prompt: str, schema: Any = None) -> Any: ...
