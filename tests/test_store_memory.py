"""MemoryStore against the shared store suite (it is also the suite's reference model)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from safepoint.stores.base import Store
from safepoint.stores.memory import MemoryStore
from safepoint.testing import StoreTests


class TestMemoryStore(StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[MemoryStore]:
        name = f"test-{uuid.uuid4().hex}"
        with MemoryStore(name) as store:
            yield store
        MemoryStore._named.pop(name, None)  # named stores live as long as the process otherwise

    @pytest.fixture
    def store_factory(self, store: MemoryStore) -> Callable[[], Store]:
        name = store.url.removeprefix("memory://")
        return lambda: MemoryStore(name)

    @pytest.fixture
    def store_url(self) -> None:
        return None  # a memory store cannot be shared with another process

    def raw_get(self, store: Store, key: str) -> bytes | None:
        return MemoryStore._named[store.url.removeprefix("memory://")][0].get(key)

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        MemoryStore._named[store.url.removeprefix("memory://")][0][key] = data

    def raw_delete(self, store: Store, key: str) -> None:
        MemoryStore._named[store.url.removeprefix("memory://")][0].pop(key, None)

    def raw_items(self, store: Store) -> dict[str, bytes]:
        return dict(MemoryStore._named[store.url.removeprefix("memory://")][0])


def test_unnamed_stores_are_private() -> None:
    first, second = MemoryStore(), MemoryStore()
    first.put("k", b"1")
    assert second.get("k") is None
    assert first.durable is False
