"""Structural differences between two JSON values: computed, applied, and shown to people.

A delta is a list of operations on paths (a path is a list of dict keys and list indices):

    ["s", path, value]                     set (path [] replaces the whole value)
    ["d", path]                            delete a dict key
    ["x", path, start, count, items]       list splice: replace `count` items at `start` with `items`

`diff` walks only where the two values differ: equal subtrees are skipped with one C-level comparison, so
the cost follows the change, not the state. Python's `==` treats True, 1 and 1.0 as equal, so a change
between those inside an otherwise equal container is not seen; scalars compared directly check the type too.
"""

from __future__ import annotations

from typing import Any

Path = list[str | int]
_BLOCK = 64
Op = list[Any]


def diff(old: Any, new: Any) -> list[Op]:
    """Operations that turn `old` into `new`."""
    ops: list[Op] = []
    _diff(old, new, [], ops)
    return ops


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _diff(old: Any, new: Any, path: Path, ops: list[Op]) -> None:
    if type(old) is dict and type(new) is dict:
        for key in old:
            if key not in new:
                ops.append(["d", [*path, key]])
        for key, value in new.items():
            if key not in old:
                ops.append(["s", [*path, key], value])
            elif type(value) is list and type(old[key]) is list:
                _diff_list(old[key], value, [*path, key], ops)  # its scan finds equality as fast as == would
            elif not _same(old[key], value):
                _diff(old[key], value, [*path, key], ops)
    elif type(old) is list and type(new) is list:
        _diff_list(old, new, path, ops)
    elif not _same(old, new):
        ops.append(["s", path, new])


def _diff_list(old: list[Any], new: list[Any], path: Path, ops: list[Op]) -> None:
    n, m = len(old), len(new)
    limit = min(n, m)
    # Skip equal runs a block at a time: slice comparison runs in C, a Python loop per item would not.
    start = 0
    while start + _BLOCK <= limit and old[start : start + _BLOCK] == new[start : start + _BLOCK]:
        start += _BLOCK
    while start < limit and _same(old[start], new[start]):
        start += 1
    if start == n == m:
        return
    end = 0  # length of the common suffix, not overlapping the prefix
    room = limit - start
    while end + _BLOCK <= room and old[n - end - _BLOCK : n - end] == new[m - end - _BLOCK : m - end]:
        end += _BLOCK
    while end < room and _same(old[n - 1 - end], new[m - 1 - end]):
        end += 1
    if n == m:
        # Same length: recurse into each changed item so an edit inside one item stays small.
        for i in range(start, n - end):
            if not _same(old[i], new[i]):
                _diff(old[i], new[i], [*path, i], ops)
        return
    ops.append(["x", path, start, n - end - start, new[start : m - end]])


def apply(value: Any, ops: list[Op]) -> Any:
    """Apply operations in order, mutating `value` in place where it can; returns the result."""
    for op in ops:
        kind, path = op[0], op[1]
        if kind == "s" and not path:
            value = op[2]
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1] if path else None
        if kind == "s":
            parent[last] = op[2]
        elif kind == "d":
            del parent[last]
        elif kind == "x":
            target = parent[last] if path else value
            start, count, items = op[2], op[3], op[4]
            target[start : start + count] = items
        else:
            raise ValueError(f"unknown delta operation {kind!r}")
    return value


def format_path(path: Path, root: str = "state") -> str:
    """`["data", "tools", 3, "callback"]` -> `state.data.tools[3].callback`."""
    out = root
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step.isidentifier():
            out += f".{step}"
        else:
            out += f"[{step!r}]"
    return out


def describe(old: Any, new: Any, *, root: str = "state", width: int = 100) -> list[str]:
    """A readable structural diff: one line per change, `+` added, `-` removed, `~` changed."""
    lines: list[str] = []
    for op in diff(old, new):
        kind, path = op[0], op[1]
        where = format_path(path, root)
        if kind == "d":
            lines.append(f"- {where}: {_short(_at(old, path), width)}")
        elif kind == "s":
            before = _at(old, path, missing=_MISSING)
            if before is _MISSING:
                lines.append(f"+ {where}: {_short(op[2], width)}")
            else:
                lines.append(f"~ {where}: {_short(before, width)} -> {_short(op[2], width)}")
        else:
            start, count, items = op[2], op[3], op[4]
            removed = _at(old, path)[start : start + count]
            for i, item in enumerate(removed):
                lines.append(f"- {where}[{start + i}]: {_short(item, width)}")
            for i, item in enumerate(items):
                lines.append(f"+ {where}[{start + i}]: {_short(item, width)}")
    return lines


_MISSING = object()


def _at(value: Any, path: Path, missing: Any = None) -> Any:
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return missing
    return value


def _short(value: Any, width: int) -> str:
    import orjson

    text = orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 3] + "..."
