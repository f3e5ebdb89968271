"""Observability: OpenTelemetry spans and structured log events for runs, steps, effects, waits and saves.

    with tracing.span("safepoint.step", {"safepoint.step.name": name}) as span:
        ...
        span.set_attribute("safepoint.step.outcome", "executed")

Spans go to whatever tracer provider the program configured with the OpenTelemetry SDK (safepoint never sets
up exporters). Without the `opentelemetry-api` package (`pip install safepoint[otel]`), or with it but no tracer
provider set, `span()` hands back one shared object whose methods do nothing, so an untraced program pays well
under a microsecond per span (see BENCHMARKS.md).

Log events go through the standard `logging` module under `safepoint.*` loggers, with their fields as
`extra=` attributes of the record (`record.session`, `record.seq`...). Neither spans nor logs carry state
values, step outputs or answers; error texts pass through `scrub()`, which masks known credential formats.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

from ..errors import Interrupted, Suspended
from ..version import __version__
from . import credentials

try:
    from opentelemetry import trace as _trace
except ImportError:  # the `otel` extra is not installed: every span is the no-op one
    _trace = None  # type: ignore[assignment]

# A proxy until the program sets its tracer provider, then that provider's tracer.
_tracer = _trace.get_tracer("safepoint", __version__) if _trace is not None else None
# The providers the API gives while the program has set none (or set the no-op one): nothing would be recorded,
# and skipping the API's no-op spans saves several microseconds each.
_IDLE = tuple(getattr(_trace, name) for name in ("ProxyTracerProvider", "NoOpTracerProvider") if hasattr(_trace, name))
_UNKNOWN = object()
# A provider named in the environment is loaded on first use by `get_tracer_provider()`.
_PROVIDER_FROM_ENV = bool(os.environ.get("OTEL_PYTHON_TRACER_PROVIDER"))


def idle() -> bool:
    """True when spans go nowhere: OpenTelemetry is not installed, or no tracer provider that records is set."""
    return _trace is None or _idle()


def _idle() -> bool:
    # `get_tracer_provider()` looks the environment up on every call (~3 us); the module global it reads is the
    # fast answer while it exists, and the public call the fallback.
    provider = getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _PROVIDER_FROM_ENV:
        return True
    if provider is None or provider is _UNKNOWN:
        provider = _trace.get_tracer_provider()
    return isinstance(provider, _IDLE)


#: Exceptions that stop a run on purpose (waiting for a human, a requested shutdown): not errors.
QUIET = (Suspended, Interrupted)

#: Fields a LogRecord has of its own: everything else on a record came in through `extra=`.
RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def logger(part: str) -> logging.Logger:
    """The logger of one part of safepoint (`safepoint.runtime`, `safepoint.store`)."""
    return logging.getLogger(f"safepoint.{part}")


def scrub(text: str, limit: int = 2000) -> str:
    """`text` (an error message, a traceback) with known credential formats masked, at most `limit` characters."""
    text = text[:limit]
    found = list(credentials.find(text))
    for start, end, name in reversed(found):
        text = f"{text[:start]}[redacted:{name}]{text[end:]}"
    return text


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception, scrubbed."""
    return scrub("".join(traceback.format_exception_only(type(exc), exc)).strip())


def store_kind(store: Any) -> str:
    """The scheme of a store's URL (`file`, `sqlite`, `postgresql`...): never its host, path or password."""
    url = getattr(store, "url", "") or ""
    return url.partition("://")[0] if "://" in url else type(store).__name__


class _NoSpan:
    """What `span()` gives without OpenTelemetry: accepts everything, records nothing."""

    __slots__ = ()

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        return None

    def add_event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        return None

    def fail(self, description: str) -> None:
        return None


NO_SPAN = _NoSpan()


class _Span:
    """A span of the configured tracer, current while the block runs; an exception escaping the block (other
    than a deliberate stop, see QUIET) is recorded on it, scrubbed, and sets its status to error."""

    __slots__ = ("_manager", "_span", "_name", "_attributes")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self._name, self._attributes = name, attributes

    def __enter__(self) -> _Span:
        self._manager = _tracer.start_as_current_span(
            self._name, attributes=self._attributes, record_exception=False, set_status_on_exception=False
        )
        self._span = self._manager.__enter__()
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and not isinstance(exc, QUIET) and self._span.is_recording():
            self._span.record_exception(
                exc,
                attributes={
                    "exception.message": scrub(str(exc)),
                    "exception.stacktrace": scrub("".join(traceback.format_exception(exc)), limit=8000),
                },
            )
            self.fail(describe(exc))
        self._manager.__exit__(kind, exc, tb)

    def set_attribute(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self._span.set_attributes({key: value for key, value in attributes.items() if value is not None})

    def add_event(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        self._span.add_event(name, attributes or {})

    def fail(self, description: str) -> None:
        """Mark the span as failed (a run that ended failed without an exception escaping it)."""
        self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, description))


def span(name: str, attributes: dict[str, Any]) -> _Span | _NoSpan:
    """A context manager for span `name` (a child of the current one) with `attributes` (None values dropped)."""
    if idle():
        return NO_SPAN
    return _Span(name, {key: value for key, value in attributes.items() if value is not None})
