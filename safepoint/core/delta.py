"""Structural differences between two JSON values: computed, applied, and shown to people.

A delta is a list of operations on paths (a path is a list of dict keys and list indices):

    ["s", path, value]                     set (path [] replaces the whole value)
    ["d", path]                            delete a dict key
    ["x", path, start, count, items]       list splice: replace `count` items at `start` with `items`

`diff` walks only where the two values differ: equal subtrees are skipped with C-level work (`==`, then
their canonical JSON, since `==` takes True, 1 and 1.0 for one value), so the Python-level cost follows the
change, not the state. List items inserted or removed at several places (a sliding window) are aligned on
items that occur once in each list, so the delta holds only what moved in or out.
"""

from __future__ import annotations

import bisect
import copy
import operator
from collections import Counter
from typing import Any

import orjson

from ..errors import NotSerializable
from . import codec

Path = list[str | int]
_BLOCK = 64
Op = list[Any]


def diff(old: Any, new: Any) -> list[Op]:
    """Operations that turn `old` into `new`."""
    ops: list[Op] = []
    _diff(old, new, [], ops)
    return ops


def _same(a: Any, b: Any) -> bool:
    """Equal as stored. `==` alone would take True, 1 and 1.0 (or 0.0 and -0.0) for the same value, even deep
    inside containers; where it finds two containers or floats equal, their canonical JSON decides."""
    if a is b:
        return True  # one object is one stored value
    if type(a) is not type(b) or a != b:
        return False
    if type(a) is list and all(map(operator.is_, a, b)):
        return True  # the same objects in the same places (a slice of items the writer shares with its base)
    if type(a) in (dict, list, float):
        try:
            return _canonical(a) == _canonical(b)
        except TypeError:  # no JSON form: let the walk find it (the encoder names the path)
            return False
    return True


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _diff(old: Any, new: Any, path: Path, ops: list[Op]) -> None:
    if type(old) is dict and type(new) is dict:
        for key in old:
            if key not in new:
                ops.append(["d", [*path, key]])
        for key, value in new.items():
            if key not in old:
                if type(key) is not str:  # a path step would carry it past the encoder: refuse it here
                    raise NotSerializable(f"{format_path(path)}[{key!r}]", key, "dict keys must be strings")
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
    while start + _BLOCK <= limit and _same(old[start : start + _BLOCK], new[start : start + _BLOCK]):
        start += _BLOCK
    while start < limit and _same(old[start], new[start]):
        start += 1
    if start == n == m:
        return
    end = 0  # length of the common suffix, not overlapping the prefix
    room = limit - start
    while end + _BLOCK <= room and _same(old[n - end - _BLOCK : n - end], new[m - end - _BLOCK : m - end]):
        end += _BLOCK
    while end < room and _same(old[n - 1 - end], new[m - 1 - end]):
        end += 1
    a, b = old[start : n - end], new[start : m - end]
    if not a or not b:
        ops.append(["x", path, start, len(a), b])
        return
    if len(a) == len(b):
        changed = [i for i in range(len(a)) if not _same(a[i], b[i])]
        if len(changed) <= max(2, len(a) // 4):
            # Edits in place: recurse into each changed item so an edit inside one item stays small.
            for i in changed:
                _diff(a[i], b[i], [*path, start + i], ops)
            return
    _diff_moved(a, b, start, path, ops)


def _diff_moved(a: list[Any], b: list[Any], offset: int, path: Path, ops: list[Op]) -> None:
    """Items inserted and removed at several places (a sliding window drops the oldest and appends): align
    the lists on items that occur once in each, in order, and diff only the gaps between those anchors."""
    try:
        keys_a = [_canonical(item) for item in a]
        keys_b = [_canonical(item) for item in b]
    except TypeError:  # a value with no JSON form: one splice, whose encoding names it
        ops.append(["x", path, offset, len(a), b])
        return
    i = j = 0
    for next_i, next_j in [*_anchors(keys_a, keys_b), (len(a), len(b))]:
        while i < next_i and j < next_j and keys_a[i] == keys_b[j]:
            i, j = i + 1, j + 1
        stop_i, stop_j = next_i, next_j
        while stop_i > i and stop_j > j and keys_a[stop_i - 1] == keys_b[stop_j - 1]:
            stop_i, stop_j = stop_i - 1, stop_j - 1
        # Indices are positions in the list as it is when each operation applies: `b`'s, up to here.
        if stop_i - i == stop_j - j:
            for k in range(stop_i - i):
                if keys_a[i + k] != keys_b[j + k]:
                    _diff(a[i + k], b[j + k], [*path, offset + j + k], ops)
        else:
            ops.append(["x", path, offset + j, stop_i - i, b[j:stop_j]])
        i, j = next_i + 1, next_j + 1


def _anchors(keys_a: list[bytes], keys_b: list[bytes]) -> list[tuple[int, int]]:
    """The longest in-order run of pairs (i, j) with keys_a[i] == keys_b[j] unique in both (patience diff)."""
    count_a, count_b = Counter(keys_a), Counter(keys_b)
    where_b = {key: j for j, key in enumerate(keys_b) if count_b[key] == 1}
    pairs = [(i, where_b[key]) for i, key in enumerate(keys_a) if count_a[key] == 1 and key in where_b]
    tails: list[int] = []  # tails[k]: smallest j that ends an increasing run of k + 1 pairs
    ends: list[int] = []  # the pair that does
    before = [-1] * len(pairs)
    for p, (_, j) in enumerate(pairs):
        k = bisect.bisect_left(tails, j)
        if k:
            before[p] = ends[k - 1]
        if k == len(tails):
            tails.append(j)
            ends.append(p)
        else:
            tails[k], ends[k] = j, p
    run = []
    p = ends[-1] if ends else -1
    while p != -1:
        run.append(pairs[p])
        p = before[p]
    return run[::-1]


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
        if not out and not isinstance(step, int):
            out = str(step)
            continue
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
    ops = diff(old, new)
    # Operations after a list splice index the list as it then is: follow along on a copy.
    current = copy.deepcopy(old) if any(op[0] == "x" for op in ops[:-1]) else old
    for op in ops:
        kind, path = op[0], op[1]
        where = format_path(path, root)
        if kind == "d":
            lines.append(f"- {where}: {_short(_at(current, path), width)}")
        elif kind == "s":
            before = _at(current, path, missing=_MISSING)
            if before is _MISSING:
                lines.append(f"+ {where}: {_short(op[2], width)}")
            else:
                lines.append(f"~ {where}: {_short(before, width)} -> {_short(op[2], width)}")
        else:
            start, count, items = op[2], op[3], op[4]
            removed = _at(current, path)[start : start + count]
            for i, item in enumerate(removed):
                lines.append(f"- {where}[{start + i}]: {_short(item, width)}")
            for i, item in enumerate(items):
                lines.append(f"+ {where}[{start + i}]: {_short(item, width)}")
        if current is not old:
            current = apply(current, [op])
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
    text = orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 3] + "..."


def encode_ops(ops: list[Op]) -> tuple[bytes, list[Op]]:
    """The canonical JSON of `ops` and its decoded copy, which must equal them: NotSerializable names the path
    inside the state (not inside the operation list) of a value that would not load back the same."""
    try:
        encoded = codec.dumps(ops)
        decoded = codec.loads(encoded)
        if decoded == ops:
            return encoded, decoded
    except NotSerializable:
        pass
    for op in ops:
        if op[0] == "s":
            codec.copy(op[2], root=format_path(op[1], root=""))
        elif op[0] == "x":
            for offset, item in enumerate(op[4]):
                codec.copy(item, root=format_path([*op[1], op[2] + offset], root=""))
    raise codec.unfaithful(ops, "state")
