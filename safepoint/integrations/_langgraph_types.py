"""Which Python types a stored LangGraph value may rebuild: an allow-list, checked before anything is decoded.

LangGraph's serializer writes a class instance as a msgpack extension naming its module and class, and on load
imports that module and calls what it names with the stored arguments. Unless `LANGGRAPH_STRICT_MSGPACK=true`,
it calls whatever is named, so a store written by someone else (a shared database, an imported bundle) could
run `os.system` on `graph.get_state()`. The saver therefore checks every stored value against its own list
first, whatever LangGraph's setting: LangGraph's built-in safe types (messages, datetimes, UUIDs, `Send`...),
the types LangGraph derives from a graph's state schema when it asks (`with_allowlist`), and those the user
names (`SafepointSaver(..., allowed_types=[MyModel])`). A value naming anything else raises UntrustedType;
nothing is imported or called.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Iterable
from inspect import isclass
from typing import Any

import orjson
from langgraph.checkpoint.serde._msgpack import SAFE_MSGPACK_METHODS, SAFE_MSGPACK_TYPES
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from ..errors import UntrustedType

#: A type to allow: the class itself, or (module, name) as LangGraph writes it.
AllowedType = type | tuple[str, str]

_CONSTRUCTORS = (0, 1, 2, 4, 5)  # LangGraph's ext codes that call `module.name(...)`
_METHOD = 3  # calls `module.name.method(arg)`
_PLAIN = (6, 7)  # a numpy array from bytes; a wrapper of another value (checked inside)


def allowed_names(types: Iterable[AllowedType]) -> frozenset[tuple[str, str]]:
    """(module, name) of each allowed type, checked for shape."""
    names = set()
    for entry in types:
        if isclass(entry):
            names.add((entry.__module__, entry.__qualname__))
        elif isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(p, str) and p for p in entry):
            names.add((entry[0], entry[1]))
        else:
            raise TypeError(f"allowed_types takes classes or (module, name) pairs, not {entry!r}")
    return frozenset(names)


class TypeGuard:
    """Refuses stored values that name a type or callable outside the allow-list."""

    def __init__(self, allowed: frozenset[tuple[str, str]]) -> None:
        self.allowed = allowed

    def check(self, tree: Any, tag: str) -> None:
        """Walk a stored JSON tree (as `_langgraph_values` writes it) for extension values; raise on a refused one."""
        _walk(tree, lambda node: self._ext(node) if node.get(tag) == "ext" else node.values())

    def _ext(self, node: dict[str, Any]) -> Iterable[Any]:
        """Check one extension value; return the parts of it that may hold more."""
        code, body = node.get("code"), node.get("data", node.get("tagged"))
        if code in _PLAIN:
            return [body]
        if code not in _CONSTRUCTORS and code != _METHOD or type(body) is not list or len(body) < 3:
            raise UntrustedType(f"a msgpack extension of code {code!r}", _HOW)
        module, name = body[0], body[1]
        if not isinstance(module, str) or not isinstance(name, str):
            raise UntrustedType(f"a msgpack extension naming {module!r}.{name!r}", _HOW)
        if code == _METHOD:
            method = body[3] if len(body) > 3 else None
            if (module, name, method) not in SAFE_MSGPACK_METHODS:
                raise UntrustedType(f"the method {module}.{name}.{method}", _HOW)
        else:
            self._check_type(module, name)
        return body[2:]

    def check_json(self, data: bytes) -> None:
        """LangChain's constructor-style JSON (`{"lc": .., "type": "constructor", "id": [...]}`) in a "json" value:
        only allowed types; a "secret" (read from the environment) or any other `lc` object is refused."""
        try:
            tree = orjson.loads(data)
        except orjson.JSONDecodeError:
            return  # the serializer rejects it itself, without running anything
        _walk(tree, self._lc)

    def _lc(self, node: dict[str, Any]) -> Iterable[Any]:
        if "lc" in node:
            ident = node.get("id")
            if node.get("type") != "constructor" or type(ident) is not list or len(ident) < 2:
                raise UntrustedType(f"a LangChain {node.get('type')!r} object", _HOW)
            self._check_type(".".join(map(str, ident[:-1])), str(ident[-1]))
        return node.values()

    def _check_type(self, module: str, name: str) -> None:
        if (module, name) not in SAFE_MSGPACK_TYPES and (module, name) not in self.allowed:
            raise UntrustedType(f"{module}.{name}", _allow(module, name))


def _walk(tree: Any, visit: Callable[[dict[str, Any]], Iterable[Any]]) -> None:
    """Every dict in a JSON tree goes to `visit`, which raises or returns the values to walk on (no recursion: a
    hostile value may nest deeper than Python's stack)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(node)
        elif type(node) is dict:
            stack.extend(visit(node))


_HOW = "LangGraph's serializer does not write such a value for any allowed type: nothing was run"


def _allow(module: str, name: str) -> str:
    return (
        f"if it is a type of your graph's state, allow it: SafepointSaver(..., allowed_types=[({module!r}, {name!r})])"
    )


class TypeGuarded:
    """Mixin for the saver: its allow-list, LangGraph's serializer set to it, and `with_allowlist` extending it."""

    _guard: TypeGuard

    def _guarded_serde(self, serde: SerializerProtocol | None, types: Iterable[AllowedType]) -> SerializerProtocol:
        """Set the allow-list; return the serializer to use: `serde`, or LangGraph's in strict mode with that list
        (whatever `LANGGRAPH_STRICT_MSGPACK` says), so it would not rebuild anything else even if asked."""
        self._guard = TypeGuard(allowed_names(types))
        if serde is not None:
            return serde
        return JsonPlusSerializer(allowed_msgpack_modules=sorted(self._guard.allowed) or None)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> Any:
        """A copy allowing the types LangGraph derives from a graph's state schema too (it asks when compiling a
        graph in strict mode)."""
        clone = super().with_allowlist(extra_allowlist)  # type: ignore[misc]
        clone = copy.copy(self) if clone is self else clone
        extra = [tuple(entry) for entry in extra_allowlist if len(entry) == 2]
        clone._guard = TypeGuard(self._guard.allowed | allowed_names(extra))  # type: ignore[arg-type]
        return clone
