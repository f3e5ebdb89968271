"""`sqlite:///path.db`: every key a row of one SQLite table. One file, many threads and processes.

The database runs in WAL mode with `synchronous=FULL`, so a committed write survives a power cut, readers never
block the writer, and writers from other processes wait up to BUSY_TIMEOUT_SECONDS for the lock. Each thread
gets its own connection. `commit` writes objects, the commit key and the hints in one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from ..errors import FenceMismatch, SchemaTooNew, StorageError
from .base import ANY, Fence, Floor, Store, check_commit, check_key, check_prefix, floor_value, prefix_end
from .modes import dir_mode, file_mode, make_dirs

#: Version of the table layout below; a store written by a newer layout refuses to open.
FORMAT_VERSION = 1
BUSY_TIMEOUT_SECONDS = 60.0

_SCHEMA = (
    # A rowid table: values are often tens of KiB, and SQLite writes such rows faster to a rowid table's
    # overflow pages than into a WITHOUT ROWID b-tree (~20% per 64 KiB insert here). Files made before keep
    # their WITHOUT ROWID table; every statement below works on both.
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
)

# What a commit checks before it writes: the fence key's value and the floor key's value. Read inside the
# commit's transaction, not folded into the INSERT: `INSERT ... SELECT` from the same table copies the row
# through a temporary table first (~10% of a 64 KiB commit).
_GUARDS = "SELECT (SELECT value FROM kv WHERE key = ?), (SELECT value FROM kv WHERE key = ?)"

# Keyed by the primary result code (`SQLITE_IOERR_WRITE` -> `SQLITE_IOERR`).
_ADVICE = {
    "SQLITE_FULL": "free disk space and retry",
    "SQLITE_BUSY": f"another process held the write lock for over {BUSY_TIMEOUT_SECONDS:.0f} s; retry",
    "SQLITE_LOCKED": "another connection holds a conflicting lock; retry",
    "SQLITE_READONLY": "the database file or its directory is read-only; check the permissions",
    "SQLITE_IOERR": "the disk reported an I/O error; check it before retrying",
    "SQLITE_CANTOPEN": "check that the directory exists and is writable",
    "SQLITE_PERM": "check the permissions of the database file",
    "SQLITE_NOTADB": "the file is not a SQLite database; point safepoint at another path",
    "SQLITE_CORRUPT": "the database file is damaged; restore it from a backup",
}


class SQLiteStore(Store):
    """Keys as rows of a SQLite table in WAL mode; durable, safe across threads and processes."""

    durable = True
    head_hints = False  # `last` is an index lookup
    # Records of finished keyframe cycles are packed: one compressed row instead of 32 small ones (each with
    # its own key in the index), and compression stays off the save path.
    pack_records = True

    def __init__(self, path: str | os.PathLike[str], *, mode: int | str | None = None) -> None:
        """`mode`: the permissions of the database file (default 0600), which SQLite gives its -wal and -shm
        files too; a directory it creates gets 0700. See stores/modes.py."""
        # Nothing touches the disk here: the file (and its directory) appear on the first write.
        self.path = Path(os.path.abspath(path))
        self.url = "sqlite:///" + str(self.path)
        self.mode = file_mode(mode)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # --- the primitives -------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        with self._translate("read", key, writing=False):
            conn = self._connection(writing=False)
            if conn is None:
                return None
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        with self._translate("create", key):
            conn = self._connection(writing=True)
            return conn.execute("INSERT OR IGNORE INTO kv VALUES (?, ?)", (key, data)).rowcount == 1

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        # Each statement runs in its own (autocommit) transaction, which takes the write lock before it reads:
        # the conditional UPDATE / INSERT OR IGNORE below is a compare-and-set without an explicit BEGIN.
        with self._translate("write", key):
            conn = self._connection(writing=True)
            if expect is ANY:
                conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, data))
                return True
            if expect is None:
                return conn.execute("INSERT OR IGNORE INTO kv VALUES (?, ?)", (key, data)).rowcount == 1
            if not isinstance(expect, bytes | bytearray | memoryview):
                return False  # no stored value can equal it
            sql = "UPDATE kv SET value = ? WHERE key = ? AND value = ?"
            return conn.execute(sql, (data, key, bytes(expect))).rowcount == 1

    def _list(self, prefix: str) -> list[str]:
        with self._translate("list", prefix or "<all keys>", writing=False):
            conn = self._connection(writing=False)
            if conn is None:
                return []
            if not prefix:
                rows = conn.execute("SELECT key FROM kv ORDER BY key")
            else:
                # Keys are ASCII and compare bytewise, so [prefix, prefix with its last char + 1) is the range.
                query = "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key"
                rows = conn.execute(query, (prefix, prefix_end(prefix)))
            return [key for (key,) in rows]

    def _delete(self, key: str) -> bool:
        with self._translate("delete", key):
            conn = self._connection(writing=False)
            return conn is not None and conn.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount == 1

    # --- fast paths -----------------------------------------------------------------------------
    def last(self, prefix: str) -> str | None:
        """One backward step of the primary key index."""
        check_prefix(prefix)
        with self._translate("list", prefix, writing=False):
            conn = self._connection(writing=False)
            if conn is None:
                return None
            query = "SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key DESC LIMIT 1"
            row = conn.execute(query, (prefix, prefix_end(prefix))).fetchone()
        return None if row is None else row[0]

    def present(self, keys: Iterable[str]) -> set[str]:
        """Index lookups in a few statements (SQLite takes at most 999 parameters in one)."""
        wanted = [check_key(key) for key in keys]
        found: set[str] = set()
        with self._translate("read", "<several keys>", writing=False):
            conn = self._connection(writing=False)
            if conn is None:
                return found
            for start in range(0, len(wanted), 900):
                batch = wanted[start : start + 900]
                query = f"SELECT key FROM kv WHERE key IN ({', '.join('?' * len(batch))})"
                found.update(key for (key,) in conn.execute(query, batch))
        return found

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """One range scan of the primary key index."""
        check_prefix(prefix)
        with self._translate("list", prefix or "<all keys>", writing=False):
            conn = self._connection(writing=False)
            if conn is None:
                return []
            query = "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key"
            return [(key, bytes(value)) for key, value in conn.execute(query, (prefix, prefix_end(prefix)))]

    def exists(self, key: str) -> bool:
        """Whether `key` exists, without reading its value."""
        key = check_key(key)
        with self._translate("read", key, writing=False):
            conn = self._connection(writing=False)
            if conn is None:
                return False
            return conn.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None

    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        """Create `key`, its objects and hints in one transaction; when `key` exists, write nothing.

        The fence and the floor are read inside the transaction, which holds the write lock: neither can
        change before the commit ends.
        """
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        fence_key = fence[0] if fence is not None else ""
        floor_key = floor[0] if floor is not None else ""
        with self._translate("commit", key):
            conn = self._connection(writing=True)
            with self._transaction(conn):
                if fence is not None or floor is not None:
                    # Both in one statement (a missing or empty key reads as NULL), before anything is written.
                    lease, mark = conn.execute(_GUARDS, (fence_key, floor_key)).fetchone()
                    if fence is not None and lease != fence[1]:
                        raise FenceMismatch(fence_key)
                    if floor is not None and floor_value(mark, floor_key) >= floor[1]:
                        return False
                if conn.execute("INSERT OR IGNORE INTO kv VALUES (?, ?)", (key, data)).rowcount != 1:
                    return False  # rolled back: nothing written
                if objects:
                    conn.executemany("INSERT OR IGNORE INTO kv VALUES (?, ?)", objects)
                if hints:
                    conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", hints)
                conn.execute("COMMIT")
            return True

    def discard(self, keys: Iterable[str]) -> None:
        """Delete the keys in one transaction (one sync, not one per key)."""
        doomed = [(check_key(key),) for key in keys]
        with self._translate("discard", doomed[0][0] if doomed else "<no keys>"):
            conn = self._connection(writing=False)
            if conn is None or not doomed:
                return
            with self._transaction(conn):
                conn.executemany("DELETE FROM kv WHERE key = ?", doomed)
                conn.execute("COMMIT")
            # Give the freed pages back to the disk (a no-op on files made before auto_vacuum was set). As a
            # script, because `execute` steps the pragma once and so frees one page.
            conn.executescript("PRAGMA incremental_vacuum")

    def check(self) -> list[tuple[str, str]]:
        """SQLite's own integrity check: damaged pages, and index entries that disagree with the table (which
        would hide keys from listings). Each finding is reported under the database file."""
        where = str(self.path)
        try:
            with self._translate("check", "<integrity>", writing=False):
                conn = self._connection(writing=False)
                if conn is None:
                    return []
                rows = [row[0] for row in conn.execute("PRAGMA integrity_check(20)")]
        except StorageError as exc:
            return [(where, f"the database cannot be checked: {exc}")]
        if rows == ["ok"]:
            return []
        return [(where, f"SQLite integrity check failed: {'; '.join(map(str, rows))}; {_ADVICE['SQLITE_CORRUPT']}")]

    def close(self) -> None:
        """Close every thread's connection; the store reopens them on next use."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()

    # --- helpers --------------------------------------------------------------------------------
    def _connection(self, *, writing: bool) -> sqlite3.Connection | None:
        """This thread's connection; None when reading a database that does not exist yet."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        if not writing and not self.path.exists():
            return None
        if writing:
            self._create_file()
        # isolation_level=None: autocommit, we issue BEGIN IMMEDIATE ourselves when one statement is not enough.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        with self._connections_lock:
            self._connections.append(conn)
        local.conn, local.pid = conn, os.getpid()  # a forked child must not reuse its parent's connection
        return conn

    def _create_file(self) -> None:
        """Create the database file empty with the store's mode before SQLite opens it (SQLite would make it
        0644); SQLite then creates the -wal and -shm files with the database file's permissions."""
        if self.path.exists():
            return
        make_dirs(self.path.parent, dir_mode(self.mode))
        with suppress(FileExistsError):  # another thread or process made it first: it is the same file
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode))

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Set the pragmas; create the tables and check the format version of the file."""
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
        if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
            # Only on a new, empty file (afterwards it needs a VACUUM, and setting it would write the header
            # on every open): pages freed by packing go back to the disk (see `discard`).
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self._use_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        try:
            row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
        except sqlite3.OperationalError:  # no such table: a new database
            row = None
        if row is None:
            with self._transaction(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
                conn.execute("COMMIT")
            row = conn.execute("SELECT value FROM meta WHERE name = 'format'").fetchone()
        if int(row[0]) > FORMAT_VERSION:
            raise SchemaTooNew(
                f"SQLite store {self.path} has format {row[0]}, newer than this safepoint reads "
                f"({FORMAT_VERSION}); upgrade safepoint to open it"
            )

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL mode (persistent, so once per file), waiting out other processes doing it."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                # The switch needs an exclusive lock and SQLite returns BUSY at once instead of waiting:
                # another process is opening this new file right now.
                busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
                if not busy or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            if mode != "wal":
                raise StorageError(
                    f"cannot open {self.url}: SQLite refused WAL mode (got {mode!r}); "
                    "put the database on a local filesystem"
                )
            return

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
        """BEGIN IMMEDIATE (take the write lock now); roll back unless the body COMMITs."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")

    @contextmanager
    def _translate(self, operation: str, key: str, *, writing: bool = True) -> Iterator[None]:
        """Turn sqlite3 and OS errors into StorageError naming the operation, the key and what to do next."""
        try:
            yield
        except StorageError:
            raise
        except (sqlite3.Error, OSError) as exc:
            name = getattr(exc, "sqlite_errorname", "") or ""
            primary = "_".join(name.split("_")[:2])
            advice = _ADVICE.get(primary, "check the database file and the disk, then retry")
            if writing:
                advice += "; the previous checkpoint is untouched"
            raise StorageError(f"cannot {operation} key {key!r} in {self.url}: {exc}; {advice}") from exc
