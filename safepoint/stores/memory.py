"""`memory://`: a dict behind a lock. The reference model for the conformance suite; keeps nothing."""

from __future__ import annotations

import threading

from .base import ANY, Store


class MemoryStore(Store):
    """In-process store. Named stores (`memory://name`) are shared within the process; bare `memory://` is private."""

    durable = False
    # name -> (data, lock): handles on one named store share both, so their compare-and-sets exclude each other
    _named: dict[str, tuple[dict[str, bytes], threading.Lock]] = {}
    _named_lock = threading.Lock()

    def __init__(self, name: str = "") -> None:
        self.url = f"memory://{name}"
        if name:
            with self._named_lock:
                self._data, self._lock = self._named.setdefault(name, ({}, threading.Lock()))
        else:
            self._data, self._lock = {}, threading.Lock()

    def _get(self, key: str) -> bytes | None:
        return self._data.get(key)

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = data
            return True

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        with self._lock:
            if expect is not ANY and self._data.get(key) != expect:
                return False
            self._data[key] = data
            return True

    def _list(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(k for k in self._data if k.startswith(prefix))

    def _delete(self, key: str) -> bool:
        with self._lock:
            return self._data.pop(key, None) is not None
