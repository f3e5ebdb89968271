"""How values are shown: times, durations, numbers, ids in URLs and the state as a collapsible tree.

Templates are rendered with autoescaping on (every value, however hostile, is text); nothing here marks a
string safe.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.templating import Jinja2Templates

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: Children shown per object or list in the state tree before "... n more".
TREE_CHILDREN = 200


def age(when: datetime | None, now: datetime | None = None) -> str:
    if when is None:
        return ""
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    return duration(seconds) + " ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def when(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def number(value: float | int | None) -> str:
    if not value:
        return "0"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return f"{int(value):,}"


def sid(session_id: str) -> str:
    """A session id as one URL path segment (ids may hold any printable character but '/')."""
    return quote(session_id, safe="")


def scalar(value: Any) -> str:
    """A leaf of the state tree as JSON text (strings quoted, so `"1"` and `1` differ)."""
    return json.dumps(value, ensure_ascii=False)


def is_tree(value: Any) -> bool:
    return isinstance(value, dict | list)


def children(value: Any) -> list[tuple[str, Any]]:
    """(label, child) pairs of an object or list, the first TREE_CHILDREN of them."""
    items = list(value.items()) if isinstance(value, dict) else [(f"[{i}]", v) for i, v in enumerate(value)]
    return [(str(k), v) for k, v in items[:TREE_CHILDREN]]


def templates() -> Jinja2Templates:
    env = Jinja2Templates(directory=str(TEMPLATES))
    env.env.filters.update(age=age, duration=duration, when=when, number=number, sid=sid, scalar=scalar)
    env.env.globals.update(is_tree=is_tree, children=children, tree_limit=TREE_CHILDREN, len=len)
    return env
