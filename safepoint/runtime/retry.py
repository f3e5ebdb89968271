"""Retrying transient failures (rate limits, 5xx, timeouts, dropped connections) with back-off and jitter.

Which errors are transient is a function you may replace (`RetryPolicy(transient=...)`). The default reads
the HTTP status from the exception the way common clients expose it (`status_code`, `status`,
`response.status_code`) and honours a `Retry-After` header (seconds or an HTTP date) or a `retry_after`
attribute. The waiting itself is tenacity's.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_TRANSIENT_NAMES = ("Timeout", "TimedOut", "ConnectError", "ConnectionError", "RemoteProtocolError")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "http_status"):
            value = getattr(holder, attr, None)
            if isinstance(value, int):
                return value
    return None


def is_transient(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth retrying; the rest is not."""
    status = status_of(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return any(part in type(exc).__name__ for part in _TRANSIENT_NAMES)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (Retry-After), if it said."""
    value = getattr(exc, "retry_after", None)
    if value is None:
        for holder in (exc, getattr(exc, "response", None)):
            headers = getattr(holder, "headers", None)
            if headers is not None and hasattr(headers, "get"):
                value = headers.get("Retry-After") or headers.get("retry-after")
                if value is not None:
                    break
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        try:
            when = email.utils.parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    """How a step retries: up to `attempts` tries, exponential back-off from `initial` to `maximum` seconds
    with full jitter, never sooner than a Retry-After asks."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    transient: Callable[[BaseException], bool] = is_transient
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def call(self, fn: Callable[..., Any], args: tuple, kwargs: dict, on_retry: Callable[[int, BaseException], None]):
        """Run `fn`; on a transient error wait and try again. Returns (result, attempts)."""
        jitter = tenacity.wait_random_exponential(multiplier=self.initial, max=self.maximum)

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            asked = retry_after(exc) if exc is not None else None
            return max(jitter(state), asked or 0.0)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            on_retry(state.attempt_number, state.outcome.exception())

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(self.transient),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        result = retrying(fn, *args, **kwargs)
        return result, retrying.statistics.get("attempt_number", 1)


NO_RETRY = RetryPolicy(attempts=1)
