"""A JSON value as a tree of content-addressed objects, so unchanged parts are stored once and shared.

A node is a small JSON object:

    {"k": "v", "v": value, "g": [[key_or_index, hash], ...]}   a value; big children are grafted in by hash
    {"k": "l", "p": [hash, ...]}                                a long list: the concatenation of its pages
    {"k": "d", "p": [hash, ...]}                                a big dict: the union of its key groups
    {"k": "s", "p": [hash, ...]}                                a huge string: the concatenation of its pieces

List pages and dict groups end at content-defined boundaries (a checksum of the item decides), so inserting
or appending one item changes one page, not every page after it. Encoding is deterministic: the same value
always gives the same objects, which is what lets forks and later keyframes share them.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from ..errors import CorruptCheckpoint
from . import codec

# A child bigger than this (encoded) becomes its own object instead of staying inline in its parent.
INLINE_MAX = 128 * 1024
# A list, dict or string bigger than this is split into pages.
NODE_MAX = 128 * 1024
# Page sizes (encoded bytes): a boundary may fall after PAGE_MIN, must fall by PAGE_MAX.
PAGE_MIN = 16 * 1024
PAGE_MAX = 64 * 1024
# A page boundary falls after an item whose checksum is divisible by this (once PAGE_MIN is reached).
PAGE_DIVISOR = 4
# Index nodes ("l"/"d"/"s") hold about this many child hashes; more are grouped into another level.
FANOUT = 32
FANOUT_MAX = 128
STRING_PIECE = 32 * 1024

Node = dict[str, Any]


def object_key(digest: str) -> str:
    return f"objects/{digest[:2]}/{digest}"


def size_inline(size: int) -> bool:
    """Whether a value of this encoded size is stored inline in its root node, whole."""
    return size <= INLINE_MAX


def _size(value: Any) -> int:
    return len(orjson.dumps(value))


class TreeWriter:
    """Encodes values into nodes, collecting the objects that are not yet in the store."""

    def __init__(self, exists: Callable[[str], bool] | None, known: set[str]) -> None:
        # `exists` (None: skip the check) avoids rewriting objects a cheap lookup finds already stored.
        self._exists = exists
        self.known = known
        self.new_objects: dict[str, bytes] = {}
        self.referenced: set[str] = set()

    def root(self, value: Any, size: int | None = None) -> Node:
        """The root node of `value` (`size`: its encoded size, if known); the caller stores it inline."""
        return self._node(value, _size(value) if size is None else size)

    def _put(self, node: Node) -> str:
        payload = codec.dumps(node)
        raw_digest = hashlib.sha256(payload).digest()
        digest = raw_digest.hex()
        self.referenced.add(digest)
        if digest not in self.known and digest not in self.new_objects:
            key = object_key(digest)
            if self._exists is not None and self._exists(key):
                self.known.add(digest)
            else:
                self.new_objects[key] = codec.seal(payload, digest=raw_digest)
        return digest

    def _node(self, value: Any, size: int) -> Node:
        if size_inline(size):
            return {"k": "v", "v": value}
        if isinstance(value, str):
            if size <= NODE_MAX:
                return {"k": "v", "v": value}
            pieces = [value[i : i + STRING_PIECE] for i in range(0, len(value), STRING_PIECE)]
            return self._index("s", [self._put({"k": "v", "v": p}) for p in pieces])
        if isinstance(value, list):
            # Canonical bytes (sorted keys): page boundaries must not depend on the order keys were inserted.
            encoded = [orjson.dumps(item, option=orjson.OPT_SORT_KEYS) for item in value]
            sizes = [len(e) for e in encoded]
            pages = list(_pages(value, encoded, sizes)) if size > NODE_MAX else []
            if len(pages) > 1:
                return self._index("l", [self._put(self._node(page, n)) for page, n in pages])
            return self._graft(list(value), enumerate(value), sizes)
        if isinstance(value, dict):
            keys = sorted(value)
            sizes = [_size(value[k]) + len(k) + 4 for k in keys]
            groups = list(_pages(keys, [k.encode() for k in keys], sizes)) if sum(sizes) > NODE_MAX else []
            if len(groups) > 1:
                return self._index("d", [self._put(self._node({k: value[k] for k in group}, n)) for group, n in groups])
            return self._graft(dict(value), ((k, value[k]) for k in keys), sizes)
        return {"k": "v", "v": value}

    def _graft(self, shell: Any, children: Iterator[tuple[Any, Any]], sizes: list[int]) -> Node:
        grafts = []
        for (key, child), size in zip(children, sizes, strict=True):
            if size > INLINE_MAX and isinstance(child, dict | list | str):
                grafts.append([key, self._put(self._node(child, size))])
                shell[key] = None
        node: Node = {"k": "v", "v": shell}
        if grafts:
            node["g"] = grafts
        return node

    def _index(self, kind: str, digests: list[str]) -> Node:
        # Group hashes into further index levels until one node holds few enough.
        while len(digests) > FANOUT_MAX:
            groups, current = [], []
            for digest in digests:
                current.append(digest)
                if len(current) >= FANOUT_MAX or (len(current) >= FANOUT // 4 and int(digest[:8], 16) % FANOUT == 0):
                    groups.append(current)
                    current = []
            if current:
                groups.append(current)
            digests = [self._put({"k": kind, "p": group}) for group in groups]
        return {"k": kind, "p": digests}


def _pages(items: list[Any], marks: list[bytes], sizes: list[int]) -> Iterator[tuple[list[Any], int]]:
    """Split items into pages at content-defined boundaries (decided by each item's `mark` bytes)."""
    page: list[Any] = []
    page_size = 0
    for item, mark, size in zip(items, marks, sizes, strict=True):
        page.append(item)
        page_size += size + 1
        if page_size >= PAGE_MAX or (page_size >= PAGE_MIN and zlib.crc32(mark) % PAGE_DIVISOR == 0):
            yield page, page_size
            page, page_size = [], 0
    if page:
        yield page, page_size


class TreeReader:
    """Decodes nodes back into values, verifying every object it reads."""

    def __init__(self, get: Callable[[str], bytes | None], known: set[str] | None = None) -> None:
        self._get = get
        self.known = known if known is not None else set()

    def read(self, node: Node) -> Any:
        kind = node.get("k")
        if kind == "v":
            value = node["v"]
            for key, digest in node.get("g", ()):
                value[key] = self.read(self.fetch(digest))
            return value
        if kind == "l":
            out: list[Any] = []
            for digest in node["p"]:
                out.extend(self.read(self.fetch(digest)))
            return out
        if kind == "d":
            merged: dict[str, Any] = {}
            for digest in node["p"]:
                merged.update(self.read(self.fetch(digest)))
            return merged
        if kind == "s":
            return "".join(self.read(self.fetch(digest)) for digest in node["p"])
        raise CorruptCheckpoint("tree node", f"unknown node kind {kind!r}")

    def fetch(self, digest: str) -> Node:
        key = object_key(digest)
        blob = self._get(key)
        if blob is None:
            raise CorruptCheckpoint(key, "object is missing")
        if codec.payload_digest(blob) != digest:
            raise CorruptCheckpoint(key, "object content does not match its name")
        node = codec.load_sealed(blob, key)
        self.known.add(digest)
        return node


def child_digests(node: Node) -> list[str]:
    """The object hashes a node points to directly (for gc, fsck and export)."""
    if node.get("k") == "v":
        return [digest for _, digest in node.get("g", ())]
    return list(node.get("p", ()))
