"""The command line's logging: `--log-level LEVEL` and `--log-json` (or `SAFEPOINT_LOG=LEVEL[,json]`) print
safepoint's log events (the `safepoint.*` loggers) to stderr, as text or as one JSON object a line.

    safepoint --log-level info --log-json worker --agents ./agents.py 2>>worker.log
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import typer

from ..core.tracing import RECORD_FIELDS

LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the event's fields (`session`, `seq`...)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((key, value) for key, value in vars(record).items() if key not in RECORD_FIELDS)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def parse(setting: str) -> tuple[str, bool]:
    """`SAFEPOINT_LOG`'s value (`info`, `debug,json`, `json`) as (level, json)."""
    parts = [part.strip().lower() for part in setting.split(",") if part.strip()]
    levels = [part for part in parts if part != "json"]
    if len(levels) > 1 or any(level not in LEVELS for level in levels):
        raise typer.BadParameter(f"SAFEPOINT_LOG={setting!r}: give one of {', '.join(LEVELS)}, optionally with ',json'")
    return (levels[0] if levels else "info"), "json" in parts


def setup(level: str | None, as_json: bool, setting: str) -> None:
    """Apply `--log-level`/`--log-json` over `SAFEPOINT_LOG`; with none of them, leave logging alone."""
    if level is not None and level.lower() not in LEVELS:
        raise typer.BadParameter(f"--log-level {level!r}: give one of {', '.join(LEVELS)}")
    if level is None and not as_json and not setting:
        return
    default_level, default_json = parse(setting) if setting else ("info", False)
    configure((level or default_level).lower(), as_json or default_json)


def configure(level: str, as_json: bool) -> None:
    """Send the `safepoint` loggers' events at `level` and above to stderr (replacing an earlier setup)."""
    root = logging.getLogger("safepoint")
    for handler in [h for h in root.handlers if getattr(h, "_safepoint_cli", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._safepoint_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
