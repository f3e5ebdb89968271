"""Paths into a state (`data.notes[0]`, `mission.goal`) and `PATH=VALUE` assignments, as every front end takes them."""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

from ..errors import InvalidState

_PATH_STEP = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]|\['([^']*)'\]")


def parse_path(path: str) -> list[str | int]:
    """`data.notes[0]` -> ["data", "notes", 0]; `data["odd key"]` works too. A leading `state.` is optional."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _PATH_STEP.match(path, pos)
        if not match or (pos == 0 and path.startswith(".")):
            raise InvalidState(f"cannot parse path {path!r} at {path[pos:]!r}; write it like data.notes[0]")
        name, index, dq, sq = match.groups()
        steps.append(int(index) if index is not None else (name or dq or sq or ""))
        pos = match.end()
    if steps[:1] == ["state"]:
        steps = steps[1:]
    if not steps:
        raise InvalidState(f"path {path!r} names no value inside the state")
    return steps


def assign(state: Any, path: str, value: Any, session_id: str) -> None:
    """Set the value at `path` inside `state` in place; InvalidState when the path does not lead into it."""
    steps = parse_path(path)
    target = state
    try:
        for step in steps[:-1]:
            target = target[step]
        last = steps[-1]
        fits = isinstance(last, int) if isinstance(target, list) else isinstance(target, dict) and isinstance(last, str)
        if not fits:
            raise TypeError
        target[last] = value
    except (KeyError, IndexError, TypeError):
        raise InvalidState(
            f"cannot set {path!r} in session {session_id!r}: the path does not lead into the state; "
            "see `safepoint show` for its shape"
        ) from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def parse_json(text: str) -> Any:
    """Strict JSON: NaN and Infinity are refused (ValueError), as they have no JSON form."""
    return json.loads(text, parse_constant=_reject_constant)


def parse_value(text: str) -> Any:
    """JSON when it parses (`3`, `true`, `"x"`, `[1]`), else the text itself as a string."""
    try:
        return parse_json(text)
    except ValueError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """`data.notes[0]=3` -> ("data.notes[0]", 3); the path ends at the first `=` where it parses."""
    positions = [i for i, ch in enumerate(text) if ch == "="]
    if not positions:
        raise InvalidState(f"{text!r} has no '='; write PATH=VALUE, e.g. data.status=done")
    first_error = None
    for i in positions:
        try:
            parse_path(text[:i])
        except InvalidState as exc:
            first_error = first_error or exc
            continue
        return text[:i], parse_value(text[i + 1 :])
    raise first_error  # type: ignore[misc]
