"""`postgresql://user@host:5432/db?schema=name`: every key a row of one table, in a schema of its own.

The table is `<schema>.kv (key text COLLATE "C" PRIMARY KEY, value bytea)`; the schema (default `safepoint`)
is created and upgraded by the versioned steps registered below with `@migration`, each recorded in
`<schema>.migrations` with its version, name and the time it was applied. Openers run the pending steps under
a transaction-scoped advisory lock, so any number of processes may open a new or old store at once.

- The commit point is the primary key: `INSERT ... ON CONFLICT DO NOTHING` creates a key only if absent, and
  of any number of racing writers exactly one sees a row count of 1.
- `commit` writes the commit key, its objects and its hints in ONE transaction: a losing commit writes
  nothing, a winning one appears whole.
- Compare-and-set is a conditional `UPDATE ... WHERE value = expected` (or the insert above when the key must
  be absent); PostgreSQL re-checks the condition after waiting for a concurrent writer's row lock.
- `list` is a range scan of the primary key; the "C" collation makes its order bytewise, like every store's.

Durability is PostgreSQL's: a commit returns once its WAL record is flushed. The store forces
`synchronous_commit = on` on its connections when the server's default is `off`, and when the server runs with
`fsync = off` it sets `durable = False` and warns. Connections come from a `psycopg_pool.ConnectionPool`.
`listen(channel)` / `notify(channel, payload)` carry LISTEN/NOTIFY, so a worker can wake waiting sessions.
"""

from __future__ import annotations

import hashlib
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import FenceMismatch, SafepointWarning, SchemaTooNew, StorageError
from . import UnknownStoreURL, redacted
from .base import ANY, Fence, Floor, Store, check_commit, check_key, check_prefix, floor_value, prefix_end

DEFAULT_SCHEMA = "safepoint"
#: Connections per store handle; more threads than this wait for one (up to POOL_TIMEOUT_SECONDS).
POOL_SIZE = 8
POOL_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10
#: A commit that hits a deadlock or serialization failure (rolled back, nothing written) is retried this often.
COMMIT_ATTEMPTS = 5
#: PostgreSQL identifiers (and so channel names) are cut at 63 bytes; longer ones are refused instead.
MAX_IDENTIFIER = 63
MAX_PAYLOAD = 7999

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_CHANNEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*")


# --- migrations: a registry of named, versioned steps ------------------------------------------------
@dataclass(frozen=True)
class Migration:
    """One step of the table layout: `apply(conn, schema)` runs inside the migrating transaction."""

    version: int
    name: str
    apply: Callable[[psycopg.Connection, sql.Identifier], None]


MIGRATIONS: dict[int, Migration] = {}


def migration(version: int, name: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as step `version` (1, 2, 3 ... without gaps) of the layout."""

    def register(apply: Callable[[psycopg.Connection, sql.Identifier], None]) -> Callable:
        if version in MIGRATIONS:
            raise ValueError(f"PostgreSQL store migration {version} is registered twice")
        MIGRATIONS[version] = Migration(version, name, apply)
        return apply

    return register


@migration(1, "create the key-value table")
def _create_kv(conn: psycopg.Connection, schema: sql.Identifier) -> None:
    # "C" collation: keys compare bytewise, so ORDER BY and the range scan of `list` match every other store.
    conn.execute(sql.SQL('CREATE TABLE {}.kv (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)').format(schema))


def latest_version() -> int:
    """The layout version this code writes."""
    return max(MIGRATIONS)


# --- the store --------------------------------------------------------------------------------------
class PostgresStore(Store):
    """Keys as rows of `<schema>.kv` in PostgreSQL; durable, shared by any number of processes and hosts."""

    durable = True
    head_hints = False  # `last` is an index lookup
    can_notify = True
    cheap_create = True  # an INSERT ... ON CONFLICT DO NOTHING costs one round trip, like an exists check

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.conninfo, self.schema = _parse_url(url)
        self._display = redacted(url)
        self._schema = sql.Identifier(self.schema)
        self._force_sync = False
        self._table = sql.SQL("{}.kv").format(self._schema)
        self._queries: dict[str, bytes] = {}
        with self._translate("open", None, writing=False):
            with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS) as conn:
                self._migrate(conn)
                self._check_settings(conn)
            self._pool = ConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                configure=self._configure,
                timeout=POOL_TIMEOUT_SECONDS,
                name=f"safepoint:{self.schema}",
                open=True,
            )
        self._closed = False
        self._close_lock = threading.Lock()

    # --- the primitives -------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        row = self._one("read", key, "SELECT value FROM {} WHERE key = %s", (key,))
        return None if row is None else bytes(row[0])

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        query = "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
        return self._count("create", key, query, (key, data)) == 1

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        if expect is None:
            return self._put_if_absent(key, data)
        if expect is ANY:
            query = "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            return self._count("write", key, query, (key, data)) == 1
        if not isinstance(expect, bytes | bytearray | memoryview):
            return False  # no stored value can equal it
        # READ COMMITTED re-evaluates the WHERE clause on the newest row version after a concurrent update.
        query = "UPDATE {} SET value = %s WHERE key = %s AND value = %s"
        return self._count("write", key, query, (data, key, bytes(expect))) == 1

    def _list(self, prefix: str) -> list[str]:
        if not prefix:
            rows = self._all("list", "<all keys>", "SELECT key FROM {} ORDER BY key", ())
        else:
            query = "SELECT key FROM {} WHERE key >= %s AND key < %s ORDER BY key"
            rows = self._all("list", prefix, query, (prefix, prefix_end(prefix)))
        return [key for (key,) in rows]

    def _delete(self, key: str) -> bool:
        return self._count("delete", key, "DELETE FROM {} WHERE key = %s", (key,)) == 1

    # --- fast paths -----------------------------------------------------------------------------
    def last(self, prefix: str) -> str | None:
        """One backward step of the primary key index."""
        query = "SELECT key FROM {} WHERE key >= %s AND key < %s ORDER BY key DESC LIMIT 1"
        row = self._one("list", prefix, query, (check_prefix(prefix), prefix_end(prefix)))
        return None if row is None else row[0]

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """One range scan of the primary key index."""
        query = "SELECT key, value FROM {} WHERE key >= %s AND key < %s ORDER BY key"
        rows = self._all("list", prefix or "<all keys>", query, (check_prefix(prefix), prefix_end(prefix)))
        return [(key, bytes(value)) for key, value in rows]

    def present(self, keys: Iterable[str]) -> set[str]:
        """One query for all of them."""
        wanted = [check_key(key) for key in keys]
        if not wanted:
            return set()
        rows = self._all("read", "<several keys>", "SELECT key FROM {} WHERE key = ANY(%s)", (wanted,))
        return {key for (key,) in rows}

    def exists(self, key: str) -> bool:
        """Whether `key` exists, without reading its value."""
        key = check_key(key)
        return self._one("read", key, "SELECT 1 FROM {} WHERE key = %s", (key,)) is not None

    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        """Create `key` with its objects and hints in one transaction; when `key` exists, write nothing.

        One statement, so one round trip: data-modifying CTEs insert the commit key and, only if that
        inserted a row, the objects and hints. A statement outside BEGIN is a transaction of its own. The
        fence row is read `FOR SHARE` in the same statement: a worker taking the lease over waits for this
        commit to end, and a commit that finds the lease changed inserts nothing.
        """
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        # Sorted, so two commits sharing new objects lock them in the same order and cannot deadlock.
        objects, hints = sorted(dict(objects).items()), sorted(dict(hints).items())
        batch = _Commit(objects, key, data, hints, fence, floor)
        names = {key, *(k for k, _ in objects), *(k for k, _ in hints)}
        with self._translate("commit", key):
            for attempt in range(COMMIT_ATTEMPTS):
                try:
                    if floor is not None:
                        won, fenced = self._commit_transaction(batch)  # sessions here do not pack: rare
                    elif not objects and not hints:
                        won, fenced = self._commit_alone(batch)  # most saves: a delta, or a small keyframe
                    elif len(names) == 1 + len(objects) + len(hints):
                        won, fenced = self._commit_statement(batch)
                    else:
                        won, fenced = self._commit_transaction(batch)  # a key repeats: rare
                except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                    if attempt == COMMIT_ATTEMPTS - 1:
                        raise
                    continue
                if not fenced:
                    raise FenceMismatch(fence[0])  # type: ignore[index]
                return won
        raise AssertionError("unreachable")  # pragma: no cover

    def _commit_alone(self, batch: _Commit) -> tuple[bool, bool]:
        """(won, fence held) for a commit key with nothing else to write: one plain INSERT, the fence in its
        WHERE clause. Only a refused insert asks again which of the two it was."""
        if batch.fence is None:
            query = self._query("INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING")
            params: tuple = (batch.key, batch.data)
        else:
            query = self._query(
                "INSERT INTO {t} (key, value) SELECT %s::text, %s::bytea WHERE EXISTS "
                "(SELECT FROM {t} WHERE key = %s AND value = %s FOR SHARE) ON CONFLICT (key) DO NOTHING"
            )
            params = (batch.key, batch.data, *batch.fence)
        with _Borrowed(self._pool) as conn:
            if conn.execute(query, params).rowcount == 1:
                return True, True
        return False, batch.fence is None or self._get(batch.fence[0]) == batch.fence[1]

    def _commit_statement(self, batch: _Commit) -> tuple[bool, bool]:
        """(won, fence held), in one statement."""
        objects, hints, fence = batch.objects, batch.hints, batch.fence
        query = self._query(
            "WITH fence AS ("
            + ("SELECT FROM {t} WHERE key = %s AND value = %s FOR SHARE" if fence else "SELECT")
            + "), won AS (INSERT INTO {t} (key, value) SELECT %s::text, %s::bytea WHERE EXISTS (SELECT FROM fence) "
            "ON CONFLICT (key) DO NOTHING RETURNING key), "
            "objects AS (INSERT INTO {t} (key, value) SELECT k, v FROM unnest(%s::text[], %s::bytea[]) AS o(k, v) "
            "WHERE EXISTS (SELECT FROM won) ON CONFLICT (key) DO NOTHING), "
            "hints AS (INSERT INTO {t} (key, value) SELECT k, v FROM unnest(%s::text[], %s::bytea[]) AS h(k, v) "
            "WHERE EXISTS (SELECT FROM won) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value) "
            "SELECT EXISTS (SELECT FROM won), EXISTS (SELECT FROM fence)"
        )
        params = (
            *(fence or ()),
            batch.key,
            batch.data,
            [k for k, _ in objects],
            [v for _, v in objects],
            [k for k, _ in hints],
            [v for _, v in hints],
        )
        with _Borrowed(self._pool) as conn:
            won, fenced = conn.execute(query, params).fetchone()
            return won, fenced

    def _commit_transaction(self, batch: _Commit) -> tuple[bool, bool]:
        """(won, fence held), statement by statement in one transaction."""
        insert = sql.SQL("INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING")
        upsert = sql.SQL(
            "INSERT INTO {} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        )
        fenced = True
        with _Borrowed(self._pool) as conn, conn.transaction() as tx, conn.cursor() as cur:
            if batch.fence is not None:
                cur.execute(self._query("SELECT FROM {} WHERE key = %s AND value = %s FOR SHARE"), batch.fence)
                fenced = cur.rowcount == 1
                if not fenced:
                    raise psycopg.Rollback(tx)
            # The commit key first: a racing writer of the same key waits here for our outcome.
            cur.execute(insert.format(self._table), (batch.key, batch.data))
            if cur.rowcount != 1:
                raise psycopg.Rollback(tx)  # leaves the block; the transaction wrote nothing
            if batch.floor is not None:
                # After the insert, in a statement of its own (a snapshot of its own): as in
                # `Store.undo_below_floor`, an insert that only succeeded because a packed record was discarded
                # sees the floor that was raised before.
                cur.execute(self._query("SELECT value FROM {} WHERE key = %s"), (batch.floor[0],))
                row = cur.fetchone()
                if floor_value(row and row[0], batch.floor[0]) >= batch.floor[1]:
                    raise psycopg.Rollback(tx)
            if batch.objects:
                cur.executemany(insert.format(self._table), batch.objects)
            if batch.hints:
                cur.executemany(upsert.format(self._table), batch.hints)
            return True, True
        return False, fenced

    # --- LISTEN / NOTIFY ------------------------------------------------------------------------
    def notify(self, channel: str, payload: str = "") -> None:
        """Send `payload` to everyone listening on `channel` of this store (delivered when it is sent)."""
        name = self._channel(channel)
        if len(payload.encode()) > MAX_PAYLOAD:
            raise ValueError(f"notify payload for channel {channel!r} is over {MAX_PAYLOAD} bytes; send a key instead")
        with self._translate(f"notify channel {name!r} of", None, writing=False), _Borrowed(self._pool) as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (name, payload))

    def listen(self, channel: str) -> NotifyListener:
        """Start listening on `channel`; notifications sent from now on are kept until `Listener.wait`."""
        name = self._channel(channel)
        with self._translate(f"listen on channel {name!r} of", None, writing=False):
            return NotifyListener(self.conninfo, name, self._display)

    def _channel(self, channel: str) -> str:
        """Channels are namespaced by schema: stores in other schemas of the database do not hear them."""
        name = f"{self.schema}.{channel}"
        if not _CHANNEL_NAME.fullmatch(channel) or len(name.encode()) > MAX_IDENTIFIER:
            raise ValueError(
                f"channel {channel!r} must be [A-Za-z0-9_.:-] and, with the schema name, at most "
                f"{MAX_IDENTIFIER} bytes; pick a shorter name"
            )
        return name

    def close(self) -> None:
        """Close the connection pool; the handle cannot be used afterwards."""
        with self._close_lock:
            if not self._closed:
                self._closed = True
                self._pool.close()

    # --- helpers --------------------------------------------------------------------------------
    def _migrate(self, conn: psycopg.Connection) -> None:
        """Bring the schema to `latest_version()`, one recorded step at a time, under an advisory lock."""
        latest = latest_version()
        if sorted(MIGRATIONS) != list(range(1, latest + 1)):
            raise AssertionError(f"PostgreSQL store migrations must be numbered 1..n, got {sorted(MIGRATIONS)}")
        if self._applied(conn) == latest:
            return  # the common case, without taking the lock
        with conn.transaction():
            # Transaction-scoped: released at COMMIT/ROLLBACK, and by the server if this process dies.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_id(self.schema),))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._schema))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.migrations (version integer PRIMARY KEY, name text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._schema)
            )
            applied = self._applied(conn) or 0  # raises SchemaTooNew when a newer safepoint got there first
            for version in range(applied + 1, latest + 1):
                step = MIGRATIONS[version]
                step.apply(conn, self._schema)
                conn.execute(
                    sql.SQL("INSERT INTO {}.migrations (version, name) VALUES (%s, %s)").format(self._schema),
                    (step.version, step.name),
                )

    def _applied(self, conn: psycopg.Connection) -> int | None:
        """The newest recorded migration; None when the schema or its migrations table does not exist."""
        query = sql.SQL("SELECT max(version) FROM {}.migrations").format(self._schema)
        try:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                row = conn.execute(query).fetchone()
            else:
                with conn.transaction():  # a savepoint: a missing table must not abort the migration
                    row = conn.execute(query).fetchone()
        except (pg_errors.UndefinedTable, pg_errors.InvalidSchemaName):
            return None
        version = None if row is None else row[0]
        if version is not None and version > latest_version():
            raise SchemaTooNew(
                f"PostgreSQL store {self._display} has layout version {version}, newer than this safepoint "
                f"reads ({latest_version()}); upgrade safepoint to open it"
            )
        return version

    def _check_settings(self, conn: psycopg.Connection) -> None:
        if conn.execute("SHOW fsync").fetchone()[0] == "off":
            self.durable = False
            warnings.warn(
                SafepointWarning(
                    f"PostgreSQL server of {self._display} runs with fsync = off: checkpoints can be lost or "
                    "damaged if the server machine crashes; turn fsync on for durable checkpoints"
                ),
                stacklevel=4,
            )
        self._force_sync = conn.execute("SHOW synchronous_commit").fetchone()[0] == "off"

    def _configure(self, conn: psycopg.Connection) -> None:
        """Run on each new pooled connection: a save is durable when it returns, whatever the server default."""
        if self._force_sync:
            conn.execute("SET synchronous_commit = on")

    def _query(self, text: str) -> bytes:
        """`text` with `{}` / `{t}` naming this store's table, rendered once per handle (a save would spend
        more time composing its statement than PostgreSQL spends parsing it). The schema name is checked
        against [A-Za-z_][A-Za-z0-9_]*, so quoting it needs no connection."""
        rendered = self._queries.get(text)
        if rendered is None:
            rendered = self._queries[text] = sql.SQL(text).format(self._table, t=self._table).as_bytes(None)
        return rendered

    def _one(self, operation: str, key: str, query: str, params: tuple) -> tuple | None:
        with self._translate(operation, key, writing=False), _Borrowed(self._pool) as conn:
            return conn.execute(self._query(query), params).fetchone()

    def _all(self, operation: str, key: str, query: str, params: tuple) -> list[tuple]:
        with self._translate(operation, key, writing=False), _Borrowed(self._pool) as conn:
            return conn.execute(self._query(query), params).fetchall()

    def _count(self, operation: str, key: str, query: str, params: tuple) -> int:
        with self._translate(operation, key), _Borrowed(self._pool) as conn:
            return conn.execute(self._query(query), params).rowcount

    @contextmanager
    def _translate(self, operation: str, key: str | None, *, writing: bool = True) -> Iterator[None]:
        """Turn psycopg errors into StorageError naming the operation, the key, the store and what to do."""
        target = self._display if key is None else f"key {key!r} in {self._display}"
        try:
            yield
        except (StorageError, SchemaTooNew):
            raise
        except psycopg.Error as exc:
            advice = _advice(exc, self.schema)
            if writing:
                advice += "; the previous checkpoint is untouched"
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(f"cannot {operation} {target}: {detail}; {advice}") from exc


class _Borrowed:
    """A pooled connection for the length of a `with` block, handed back as it is: the connections run in
    autocommit, so psycopg's own `with pool.connection()` (which also ends a transaction) only adds work."""

    __slots__ = ("pool", "conn")

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def __enter__(self) -> psycopg.Connection:
        self.conn = self.pool.getconn()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.pool.putconn(self.conn)  # a broken or mid-transaction connection is rolled back or replaced there


@dataclass(frozen=True)
class _Commit:
    """One checkpoint's writes, keys checked: the objects and hints sorted, the fence (key, value) or None, the
    floor (key, seq) or None."""

    objects: list[tuple[str, bytes]]
    key: str
    data: bytes
    hints: list[tuple[str, bytes]]
    fence: Fence | None
    floor: Floor | None = None


class NotifyListener:
    """LISTEN on one channel over a connection of its own (a pooled one would carry it to other users)."""

    def __init__(self, conninfo: str, channel: str, display: str) -> None:
        self.channel = channel
        self._display = display
        self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def wait(self, timeout: float | None = None) -> list[str]:
        """The payloads received, waiting up to `timeout` seconds for the first; [] when none came."""
        try:
            got = [note.payload for note in self._conn.notifies(timeout=timeout, stop_after=1)]
            if got:  # take whatever else has arrived too, without waiting
                got += [note.payload for note in self._conn.notifies(timeout=0)]
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot wait for notifications on channel {self.channel!r} of {self._display}: {exc}; "
                "listen again once the server is reachable"
            ) from exc
        return got

    def close(self) -> None:
        """Stop listening and close the connection."""
        self._conn.close()

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _parse_url(url: str) -> tuple[str, str]:
    """Split the safepoint options (`schema`) off the URL; the rest goes to libpq as it is."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = DEFAULT_SCHEMA
    kept = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            kept.append((name, value))
    if not _SCHEMA_NAME.fullmatch(schema):
        raise UnknownStoreURL(
            f"store URL {redacted(url)!r} names schema {schema!r}; use 1-63 characters of "
            "[A-Za-z0-9_], not starting with a digit"
        )
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote))), schema


def _lock_id(schema: str) -> int:
    """A signed 64-bit advisory lock key for migrating `schema`."""
    digest = hashlib.sha256(f"safepoint.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _advice(exc: psycopg.Error, schema: str) -> str:
    if isinstance(exc, PoolTimeout):
        return (
            f"no connection became free within {POOL_TIMEOUT_SECONDS:.0f} s (the server is unreachable, or "
            "every pooled connection is busy); check the server and retry"
        )
    if isinstance(exc, pg_errors.DiskFull):
        return "the database server's disk is full; free space there and retry"
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return f"grant the database user CREATE on the database and USAGE on schema {schema!r}"
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        return "the server is a read-only replica; point the URL at the primary"
    if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
        return f"schema {schema!r} was dropped while the store was open; open the store again to recreate it"
    if isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure):
        return "concurrent writers kept colliding; retry"
    if isinstance(exc, psycopg.OperationalError):
        return "check that the PostgreSQL server is running and reachable and that the URL is right, then retry"
    return "check the PostgreSQL server log, then retry"
