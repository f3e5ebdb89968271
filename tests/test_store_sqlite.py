"""SQLiteStore against the shared store suite, plus checks on the database file itself."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from safepoint.errors import SchemaTooNew, StorageError
from safepoint.stores import open_store
from safepoint.stores.base import Store
from safepoint.stores.sqlite import FORMAT_VERSION, SQLiteStore
from safepoint.testing import StoreTests


def raw(store: Store) -> sqlite3.Connection:
    return sqlite3.connect(store.url.removeprefix("sqlite:///"))


class TestSQLiteStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SQLiteStore]:
        with SQLiteStore(tmp_path / "db" / "store.db") as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: SQLiteStore) -> Callable[[], Store]:
        return lambda: SQLiteStore(store.path)

    def raw_get(self, store: Store, key: str) -> bytes | None:
        if not Path(store.url.removeprefix("sqlite:///")).exists():
            return None
        with raw(store) as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        store.put("unrelated", b"")  # let the store create its tables first
        with closing(raw(store)) as conn, conn:
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, data))
        store.delete("unrelated")

    def raw_delete(self, store: Store, key: str) -> None:
        if not Path(store.url.removeprefix("sqlite:///")).exists():
            return
        with closing(raw(store)) as conn, conn:
            conn.execute("DELETE FROM kv WHERE key = ?", (key,))

    def raw_items(self, store: Store) -> dict[str, bytes]:
        if not Path(store.url.removeprefix("sqlite:///")).exists():
            return {}
        with closing(raw(store)) as conn:
            return {key: bytes(value) for key, value in conn.execute("SELECT key, value FROM kv")}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "store.db") as store:
        yield store


def test_database_is_wal_with_full_sync_and_a_long_busy_timeout(store: SQLiteStore) -> None:
    store.put_if_absent("k", b"v")
    with raw(store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()[0] == str(FORMAT_VERSION)
    own = store._connection(writing=False)  # per-connection settings: ask the store's own connection
    assert own is not None
    assert own.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert own.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000


def test_row_holds_exactly_the_bytes(store: SQLiteStore) -> None:
    data = bytes(range(256))
    store.put_if_absent("sessions/s1/0", data)
    with raw(store) as conn:
        assert conn.execute("SELECT key, value FROM kv").fetchall() == [("sessions/s1/0", data)]
    assert store.url == "sqlite:///" + str(store.path)
    assert open_store(store.url).get("sessions/s1/0") == data


def test_new_files_use_a_rowid_table_and_older_without_rowid_files_keep_working(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    store.put("a", b"1")
    with raw(store) as conn:
        ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'kv'").fetchone()[0]
    assert "WITHOUT ROWID" not in ddl
    store.close()
    # A file written by the first layout: the same columns in a WITHOUT ROWID table.
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        conn.execute("INSERT INTO meta VALUES ('format', '1')")
        conn.execute("INSERT INTO kv VALUES ('l/1', X'6c65617365'), ('f/1', '3'), ('s/1/1', X'6f6c64')")
    conn.close()
    old = SQLiteStore(tmp_path / "old.db")
    assert old.get("s/1/1") == b"old" and old.last("s/1/") == "s/1/1"
    assert old.commit([("o/1", b"obj")], "s/1/4", b"four", fence=("l/1", b"lease"), floor=("f/1", 4)) is True
    assert old.commit([], "s/1/2", b"two", fence=("l/1", b"lease"), floor=("f/1", 2)) is False
    assert old.list() == ["f/1", "l/1", "o/1", "s/1/1", "s/1/4"]
    old.close()


def test_reading_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/nowhere/store.db")
    assert store.get("a") is None and store.exists("a") is False
    assert store.list() == [] and store.delete("a") is False
    assert list(tmp_path.iterdir()) == []
    assert store.put_if_absent("a", b"1") is True
    assert (tmp_path / "nowhere" / "store.db").is_file()


def test_losing_commit_writes_nothing(store: SQLiteStore) -> None:
    store.put_if_absent("s/1/0", b"first")
    assert store.commit([("o/1", b"obj")], "s/1/0", b"second", [("s/head", b"1")]) is False
    assert store.list() == ["s/1/0"]


def test_commit_checks_every_key_before_writing(store: SQLiteStore) -> None:
    with pytest.raises(ValueError):
        store.commit([("o/1", b"obj")], "s/1/0", b"data", [("../head", b"1")])
    assert store.list() == []


def test_not_a_database_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"cannot read key 'a' in sqlite:///.*junk\.db.*not a SQLite database"):
        SQLiteStore(path).get("a")


def test_newer_format_refuses_to_open(store: SQLiteStore) -> None:
    store.put("a", b"1")
    with raw(store) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'format'", (str(FORMAT_VERSION + 1),))
    with pytest.raises(SchemaTooNew, match="upgrade safepoint"):
        SQLiteStore(store.path).get("a")


def test_threads_get_their_own_connection(store: SQLiteStore) -> None:
    import threading

    store.put("a", b"1")
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append((store.get("a"), store._connection(writing=False))))
    thread.start()
    thread.join()
    assert seen[0][0] == b"1"
    assert seen[0][1] is not store._connection(writing=False)
