"""EncryptedStore against the shared store suite: the wrapper keeps every backend's contract.

Raw helpers go behind the wrapper (to the inner store) and seal / unseal themselves, so the suite still checks
results against what the backend holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safepoint.stores.base import Store
from safepoint.stores.encrypted import EncryptedStore
from safepoint.stores.keys import Key
from safepoint.stores.memory import MemoryStore
from safepoint.stores.sqlite import SQLiteStore
from safepoint.testing import StoreTests

KEY = Key(bytes(range(32)))


class _RawThroughInner:
    def raw_get(self, store: Store, key: str) -> bytes | None:
        assert isinstance(store, EncryptedStore)
        blob = store.inner.get(store.name(key))
        return None if blob is None else store._in(key, blob)

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        assert isinstance(store, EncryptedStore)
        store.inner.put(store.name(key), store._out(key, data))

    def raw_delete(self, store: Store, key: str) -> None:
        assert isinstance(store, EncryptedStore)
        store.inner.delete(store.name(key))

    def raw_items(self, store: Store) -> dict[str, bytes]:
        # The plaintext under every key (the wrapper's own listing maps the keyed names back): damage to it is
        # then sealed again, so the trials reach the format checks behind the decryption.
        return {key: blob for key in store.list() if (blob := self.raw_get(store, key)) is not None}

    @pytest.fixture
    def store_url(self) -> None:
        return None  # other processes would open the inner store without the key


class TestEncryptedMemoryStore(_RawThroughInner, StoreTests):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        inner = MemoryStore()
        with EncryptedStore(inner, [KEY]) as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: EncryptedStore) -> Callable[[], Store]:
        return lambda: EncryptedStore(store.inner, [KEY])


class TestEncryptedSQLiteStore(_RawThroughInner, StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with EncryptedStore(SQLiteStore(tmp_path / "store.db"), [KEY]) as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: EncryptedStore) -> Callable[[], Store]:
        return lambda: EncryptedStore(SQLiteStore(store.inner.path), [KEY])
