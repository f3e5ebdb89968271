"""How the LangGraph saver keeps values: LangGraph's own serializer, stored as JSON; and lazy containers.

A checkpoint is stored as a state: its channel values, versions and the rest as JSON (its id and time ride in the
commit record).

A value goes through the saver's serializer (`dumps_typed`, LangGraph's JsonPlusSerializer by default). Its
msgpack output is kept as JSON: plain data stays as it is (readable in `safepoint show`, diffable), and what JSON
cannot say is tagged with `{"__lg__": ...}`: a class instance (LangGraph's msgpack extension: module, class,
fields), bytes, a non-finite float, a dict with non-string keys. Reading checks every class a value names against
the saver's allow-list (`_langgraph_types`), then packs it back and hands it to the same serializer. Pickle is
refused both ways.
"""

from __future__ import annotations

import base64
import math
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import orjson
import ormsgpack
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.base import SerializerProtocol

from ..errors import NotSerializable
from ._langgraph_types import TypeGuard

TAG = "__lg__"  # marks JSON that stands for something JSON cannot say (a class, bytes, a NaN...)
_IN_RECORD = ("channel_values", "id", "ts")  # checkpoint keys not stored as state values (id and ts: the record)


class _Ext:
    """A msgpack extension (how LangGraph's serializer writes a class instance), while it is JSON."""

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: Any) -> None:
        self.code, self.data = code, data


def _unpack(data: bytes) -> Any:
    return ormsgpack.unpackb(
        data, ext_hook=lambda code, body: _Ext(code, _unpack(body)), option=ormsgpack.OPT_NON_STR_KEYS
    )


def _pack(value: Any) -> bytes:
    return ormsgpack.packb(value, option=ormsgpack.OPT_NON_STR_KEYS)


def _to_json(value: Any, tagged: list[bool]) -> Any:
    """A decoded msgpack tree as JSON; `tagged[0]` becomes True when a tag had to stand in for something."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None or (kind is float and math.isfinite(value)):
        return value
    if kind is list or kind is tuple:
        return [_to_json(item, tagged) for item in value]
    if kind is dict and TAG not in value and all(type(key) is str for key in value):
        return {key: _to_json(item, tagged) for key, item in value.items()}
    tagged[0] = True
    if kind is dict:
        return {TAG: "map", "items": [[_to_json(k, tagged), _to_json(v, tagged)] for k, v in value.items()]}
    if kind is _Ext:  # "data" holds plain msgpack data; "tagged" data holds tags of its own
        inner = [False]
        data = _to_json(value.data, inner)
        return {TAG: "ext", "code": value.code, "tagged" if inner[0] else "data": data}
    if kind is bytes:
        return {TAG: "bin", "b64": base64.b64encode(value).decode()}
    if kind is float:
        return {TAG: "float", "v": repr(value)}
    raise TypeError(f"unexpected {kind.__name__} in a msgpack tree")


def _from_json(value: Any) -> Any:
    """The inverse of `_to_json`: plain data and `ormsgpack.Ext` objects, ready to pack."""
    kind = type(value)
    if kind is list:
        return [_from_json(item) for item in value]
    if kind is not dict:
        return value
    tag = value.get(TAG)
    if tag is None:
        return {key: _from_json(item) for key, item in value.items()}
    if tag == "ext":
        data = value["data"] if "data" in value else _from_json(value["tagged"])
        return ormsgpack.Ext(value["code"], _pack(data))
    if tag == "map":
        return {_hashable(_from_json(k)): _from_json(v) for k, v in value["items"]}
    if tag == "bin":
        return base64.b64decode(value["b64"])
    if tag == "float":
        return float(value["v"])
    raise ValueError(f"unknown value tag {tag!r} in a LangGraph checkpoint")


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


_content = operator.attrgetter("content")


@dataclass
class Seen:
    """A list of messages as last saved, so the next save encodes only the messages it has not seen.

    Saved messages are values, as LangGraph's DeltaChannel treats them: the same message object with the same
    `content` object is not encoded again (a message edited in place with `message.content = ...` is)."""

    items: list[Any]  # the list as saved (a copy)
    contents: list[Any]  # each message's content object then
    json: list[Any]  # each message's JSON as stored (the writer's base): the next delta skips it by identity


def list_items(stored: Any) -> Any:
    return stored["v"] if type(stored) is dict and stored.get(TAG) == "msgpack" else stored


def seen_messages(values: Any, stored: Any, before: Seen | None = None) -> Seen | None:
    """The messages of a list channel as stored now; `before` spares checking those it already holds."""
    stored = list_items(stored)
    if type(values) is not list or type(stored) is not list or len(values) != len(stored) or not values:
        return None
    known = 0
    if before is not None and len(before.items) <= len(values) and all(map(operator.is_, before.items, values)):
        if all(map(operator.is_, before.contents, map(_content, islice(values, len(before.items))))):
            known = len(before.items)
    if not all(isinstance(value, BaseMessage) for value in islice(values, known, None)):
        return None
    contents = before.contents[:known] if known else []
    return Seen(list(values), contents + list(map(_content, islice(values, known, None))), list(stored))


class Values:
    """Values through a LangGraph serializer (`dumps_typed`), stored as JSON. Pickle is refused both ways."""

    def __init__(self, serde: SerializerProtocol, guard: TypeGuard) -> None:
        self.serde = serde
        self.guard = guard  # checked before the serializer sees a value: it would import what a value names

    def dumps(self, value: Any, path: str) -> tuple[str, bytes]:
        try:
            kind, data = self.serde.dumps_typed(value)
        except Exception as exc:  # noqa: BLE001 - any serializer failure is the same problem for the user
            raise NotSerializable(path, value, f"LangGraph's serializer cannot encode it ({exc})") from None
        if kind == "pickle":
            raise NotSerializable(path, value, "the serializer fell back to pickle, which safepoint never stores")
        return kind, data

    def encode(self, value: Any, path: str) -> Any:
        return self.wrap(*self.dumps(value, path))

    def wrap(self, kind: str, data: bytes) -> Any:
        if kind == "null":
            return None
        if kind == "msgpack":
            tagged = [False]
            tree = _to_json(_unpack(data), tagged)
            return {TAG: "msgpack", "v": tree} if tagged[0] else tree
        return {TAG: "blob", "type": kind, "b64": base64.b64encode(bytes(data)).decode()}

    def encode_list(self, items: list[Any], path: str, seen: Seen | None) -> Any:
        """A list item by item: the same JSON as `encode`, but messages in `seen` are not encoded again."""
        out: list[Any] = []
        tagged, start, lookup = [False], 0, None
        if seen is not None and len(seen.items) <= len(items):
            count = len(seen.items)
            same = all(map(operator.is_, seen.items, items))
            if same and all(map(operator.is_, seen.contents, map(_content, islice(items, count)))):
                out, start, tagged[0] = list(seen.json), count, True  # the usual case: messages appended
        if seen is not None and start == 0:
            lookup = {
                id(item): (item, content, j)
                for item, content, j in zip(seen.items, seen.contents, seen.json, strict=True)
            }
        for index in range(start, len(items)):
            item = items[index]
            hit = lookup.get(id(item)) if lookup is not None else None
            if hit is not None and hit[0] is item and hit[1] is item.content:
                out.append(hit[2])
                tagged[0] = True
                continue
            kind, data = self.dumps(item, f"{path}[{index}]")
            if kind == "null":
                out.append(None)
            elif kind == "msgpack":
                out.append(_to_json(_unpack(data), tagged))
            else:
                return self.encode(items, path)
        return {TAG: "msgpack", "v": out} if tagged[0] else out

    def encode_state(
        self, checkpoint: dict[str, Any], new_versions: dict[str, Any], base: dict[str, Any], seen: dict[str, Any]
    ) -> tuple[dict[str, Any], list[str]]:
        """The checkpoint as JSON. Channels unchanged since `base` (the head's stored state) reuse its JSON (the
        same objects, so the delta skips them at once); list channels encode only messages not in `seen`.
        Returns the state and the channels encoded anew."""
        base_values, base_versions = base.get("channel_values") or {}, base.get("channel_versions") or {}
        versions = checkpoint["channel_versions"]
        values: dict[str, Any] = {}
        encoded: list[str] = []
        for channel, value in checkpoint["channel_values"].items():
            version = versions.get(channel)
            if channel not in new_versions and version is not None and base_versions.get(channel) == version:
                if channel in base_values:
                    values[channel] = base_values[channel]
                    continue
            path = f"channel_values.{channel}"
            if type(value) is list:
                values[channel] = self.encode_list(value, path, seen.get(channel))
            else:
                values[channel] = self.encode(value, path)
            encoded.append(channel)
        state = {key: self.encode(value, key) for key, value in checkpoint.items() if key not in _IN_RECORD}
        state["channel_values"] = values
        return state, encoded

    def decode_state(
        self,
        state: dict[str, Any],
        checkpoint_id: str,
        ts: str,
        *,
        seen: bool = False,
        decode_channel: Callable[[Any], Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, Seen | None]]:
        """The checkpoint back from its stored state; with `seen`, also the messages of its list channels.
        `decode_channel` decodes the channel values instead of `decode` (a listing's, sharing messages)."""
        checkpoint = {"id": checkpoint_id, "ts": ts}
        checkpoint.update((key, self.decode(value)) for key, value in state.items() if key != "channel_values")
        channel_values, messages = {}, {}
        for channel, stored in (state.get("channel_values") or {}).items():
            channel_values[channel] = value = (decode_channel or self.decode)(stored)
            if seen:
                messages[channel] = seen_messages(value, stored)
        checkpoint["channel_values"] = channel_values
        return checkpoint, messages

    def decode(self, stored: Any, *, copy: bool = True) -> Any:
        """The value back; plain data is copied unless `copy=False` (the caller owns `stored`)."""
        if type(stored) is dict and TAG in stored:
            if stored[TAG] == "msgpack":
                self.guard.check(stored["v"], TAG)
                return self.serde.loads_typed(("msgpack", _pack(_from_json(stored["v"]))))
            if stored[TAG] == "blob" and stored["type"] != "pickle":
                data = base64.b64decode(stored["b64"])
                if stored["type"] == "msgpack":  # not written so by the saver, but it would decode the same
                    self.guard.check(_to_json(_unpack(data), [False]), TAG)
                elif stored["type"] == "json":
                    self.guard.check_json(data)
                return self.serde.loads_typed((stored["type"], data))
            raise ValueError(f"cannot decode a stored value tagged {stored[TAG]!r}")
        if copy and (type(stored) is dict or type(stored) is list):
            return orjson.loads(orjson.dumps(stored))  # a private copy: the stored one may back the next delta
        return stored

    def decode_item(self, item: Any) -> Any:
        """One item of a stored `{"__lg__": "msgpack", "v": [...]}` list back, as decoding the whole list gives it."""
        self.guard.check(item, TAG)
        return self.serde.loads_typed(("msgpack", _pack(_from_json(item))))


class _Lazy:
    """Mixin: a container that fills itself on first use (`list()` hands out checkpoints and pending writes
    that are read from the store only when someone looks at them)."""

    __slots__ = ()

    def _ready(self) -> Any:
        if self._fill is not None:  # type: ignore[attr-defined]
            with self._lock:  # type: ignore[attr-defined]
                if self._fill is not None:  # type: ignore[attr-defined]
                    self._load(self._fill())  # type: ignore[attr-defined]
                    self._fill = None
        return self

    def __eq__(self, other: object) -> bool:
        other = other._ready() if isinstance(other, _Lazy) else other
        return self._base.__eq__(self._ready(), other)  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __reduce_ex__(self, protocol: Any) -> Any:  # copy, deepcopy and pickle give a plain container
        return (self._base, (self._base.copy(self._ready()),))  # type: ignore[attr-defined]


def _lazy(base: type, load: str, names: tuple[str, ...]) -> type:
    def init(self: Any, fill: Callable[[], Any]) -> None:
        base.__init__(self)
        self._fill, self._lock = fill, threading.Lock()

    def filled(name: str) -> Callable[..., Any]:
        method = getattr(base, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return method(self._ready(), *args, **kwargs)

        call.__name__ = name
        return call

    namespace: dict[str, Any] = {"__slots__": ("_fill", "_lock"), "__init__": init, "_base": base}
    namespace["_load"] = getattr(base, load)
    namespace.update({name: filled(name) for name in names})
    return type(f"Lazy{base.__name__.capitalize()}", (_Lazy, base), namespace)


_COMMON = ("__getitem__", "__setitem__", "__delitem__", "__contains__", "__iter__", "__reversed__", "__len__",
           "__repr__", "pop", "clear", "copy")  # fmt: skip
#: A dict filled by `fill()` on first use.
LazyDict = _lazy(dict, "update", (*_COMMON, "__or__", "__ror__", "__ior__", "get", "keys", "values", "items",
                                  "popitem", "setdefault", "update"))  # fmt: skip
#: A list filled by `fill()` on first use.
LazyList = _lazy(list, "extend", (*_COMMON, "__add__", "__iadd__", "__mul__", "__rmul__", "__imul__", "__lt__",
                                  "__le__", "__gt__", "__ge__", "append", "extend", "insert", "remove", "index",
                                  "count", "sort", "reverse"))  # fmt: skip
