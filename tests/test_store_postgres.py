"""PostgresStore against the shared store suite, plus what only PostgreSQL can get wrong, checked with raw SQL.

Needs a server: `SAFEPOINT_TEST_POSTGRES_URL` (default postgresql://postgres@127.0.0.1:5432/test). Every test
gets a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from crash_torture import torture
from services import fresh_name, postgres_url, require_module, with_query

from safepoint.errors import SchemaTooNew, StorageError
from safepoint.stores import UnknownStoreURL, open_store
from safepoint.stores.base import Store
from safepoint.testing import StoreTests

psycopg = require_module("psycopg", "postgres")
postgres = require_module("safepoint.stores.postgres", "postgres")
PostgresStore = postgres.PostgresStore

CRASH_KILLS = 200


def raw(store: Store) -> psycopg.Connection:
    """A connection of our own, outside the store's pool."""
    assert isinstance(store, PostgresStore)
    return psycopg.connect(store.conninfo, autocommit=True)


def drop_schema(schema: str) -> None:
    with psycopg.connect(postgres_url(), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


@pytest.fixture
def schema_url() -> Iterator[tuple[str, str]]:
    """(url, schema) of a fresh schema, dropped after the test."""
    schema = fresh_name("pg")
    yield with_query(postgres_url(), schema=schema), schema
    drop_schema(schema)


class TestPostgresStore(StoreTests):
    @pytest.fixture
    def store(self, schema_url: tuple[str, str]) -> Iterator[Store]:
        with PostgresStore(schema_url[0]) as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: Store) -> Callable[[], Store]:
        return lambda: PostgresStore(store.url)

    def raw_get(self, store: Store, key: str) -> bytes | None:
        with raw(store) as conn:
            query = psycopg.sql.SQL("SELECT value FROM {}.kv WHERE key = %s").format(
                psycopg.sql.Identifier(store.schema)
            )
            row = conn.execute(query, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        with raw(store) as conn:
            query = psycopg.sql.SQL(
                "INSERT INTO {}.kv VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ).format(psycopg.sql.Identifier(store.schema))
            conn.execute(query, (key, data))

    def raw_delete(self, store: Store, key: str) -> None:
        with raw(store) as conn:
            query = psycopg.sql.SQL("DELETE FROM {}.kv WHERE key = %s").format(psycopg.sql.Identifier(store.schema))
            conn.execute(query, (key,))

    def raw_items(self, store: Store) -> dict[str, bytes]:
        with raw(store) as conn:
            query = psycopg.sql.SQL("SELECT key, value FROM {}.kv").format(psycopg.sql.Identifier(store.schema))
            return {key: bytes(value) for key, value in conn.execute(query)}


@pytest.fixture
def store(schema_url: tuple[str, str]) -> Iterator[PostgresStore]:
    with PostgresStore(schema_url[0]) as store:
        yield store


def sql(store: PostgresStore, query: str, params: tuple = ()) -> list[tuple]:
    with raw(store) as conn:
        cursor = conn.execute(query.replace("{schema}", f'"{store.schema}"'), params)
        return cursor.fetchall() if cursor.description else []


# --- the layout and its migrations ------------------------------------------------------------------------
def test_migrations_are_recorded_once_with_name_and_time(store: PostgresStore) -> None:
    rows = sql(store, "SELECT version, name, applied_at FROM {schema}.migrations ORDER BY version")
    assert [(v, n) for v, n, _ in rows] == [(m.version, m.name) for m in sorted(postgres.MIGRATIONS.values())]
    assert all(applied is not None for _, _, applied in rows)
    PostgresStore(store.url).close()  # opening again applies nothing
    assert sql(store, "SELECT version, name, applied_at FROM {schema}.migrations ORDER BY version") == rows


def test_keys_use_bytewise_collation_and_a_primary_key(store: PostgresStore) -> None:
    columns = sql(
        store,
        "SELECT column_name, collation_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = 'kv' ORDER BY ordinal_position",
        (store.schema,),
    )
    assert columns == [("key", "C", "text"), ("value", None, "bytea")]
    constraints = sql(
        store,
        "SELECT constraint_type FROM information_schema.table_constraints WHERE table_schema = %s "
        "AND table_name = 'kv'",
        (store.schema,),
    )
    assert ("PRIMARY KEY",) in constraints


def test_concurrent_openers_of_a_new_schema_migrate_once(schema_url: tuple[str, str]) -> None:
    url, schema = schema_url
    barrier, errors, stores = threading.Barrier(8), [], []

    def open_it() -> None:
        try:
            barrier.wait(timeout=30)
            stores.append(PostgresStore(url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(stores) == 8
    assert stores[0].put_if_absent("k", b"v") and stores[7].get("k") == b"v"
    assert sql(stores[0], "SELECT count(*) FROM {schema}.migrations") == [(len(postgres.MIGRATIONS),)]
    for opened in stores:
        opened.close()


def test_a_new_registered_step_is_applied_and_recorded(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put("kept", b"1")
    version = postgres.latest_version() + 1
    steps = dict(postgres.MIGRATIONS)
    monkeypatch.setattr(postgres, "MIGRATIONS", steps)

    @postgres.migration(version, "add a test column")
    def add_column(conn: psycopg.Connection, schema: psycopg.sql.Identifier) -> None:
        conn.execute(psycopg.sql.SQL("ALTER TABLE {}.kv ADD COLUMN note text").format(schema))

    with pytest.raises(ValueError, match="registered twice"):
        postgres.migration(version, "again")(add_column)
    with PostgresStore(store.url) as upgraded:
        assert upgraded.get("kept") == b"1"
    rows = sql(store, "SELECT version, name FROM {schema}.migrations ORDER BY version")
    assert rows[-1] == (version, "add a test column")
    assert ("note",) in sql(
        store, "SELECT column_name FROM information_schema.columns WHERE table_schema = %s", (store.schema,)
    )


def test_a_newer_layout_refuses_to_open(store: PostgresStore) -> None:
    sql(store, "INSERT INTO {schema}.migrations (version, name) VALUES (99, 'from the future')")
    with pytest.raises(SchemaTooNew, match="layout version 99.*upgrade safepoint"):
        PostgresStore(store.url)


# --- the commit transaction ------------------------------------------------------------------------------
def test_commit_is_one_transaction(store: PostgresStore) -> None:
    """A failure on the last row written (a trigger refuses one hint) leaves nothing at all behind."""
    sql(
        store,
        "CREATE FUNCTION {schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.key = 'heads/boom' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; "
        "RETURN NEW; END $$",
    )
    sql(store, "CREATE TRIGGER refuse BEFORE INSERT ON {schema}.kv FOR EACH ROW EXECUTE FUNCTION {schema}.refuse()")
    objects = [(f"objects/{i:02d}", b"chunk %d" % i) for i in range(20)]
    with pytest.raises(StorageError, match=r"cannot commit key 'commits/s/1'.*refused by test trigger"):
        store.commit(objects, "commits/s/1", b"record", [("heads/boom", b"1")])
    assert sql(store, "SELECT count(*) FROM {schema}.kv") == [(0,)]
    assert store.commit(objects, "commits/s/1", b"record", [("heads/s", b"1")]) is True
    assert sql(store, "SELECT count(*) FROM {schema}.kv") == [(22,)]


def test_losing_commit_writes_nothing(store: PostgresStore) -> None:
    store.put_if_absent("commits/s/1", b"first")
    assert store.commit([("objects/new", b"x")], "commits/s/1", b"second", [("heads/s", b"1")]) is False
    assert sql(store, "SELECT key, value FROM {schema}.kv") == [("commits/s/1", b"first")]


def test_commit_with_repeated_keys_matches_the_generic_commit(store: PostgresStore) -> None:
    """Repeated keys cannot go through the one-statement commit; the transaction path gives the same result."""
    from safepoint.stores.memory import MemoryStore

    model = MemoryStore()
    for target in (store, model):
        assert target.commit([("o/1", b"x"), ("o/1", b"x")], "c/1", b"d", [("h", b"1")]) is True
        assert target.commit([("o/2", b"y")], "c/2", b"d", [("o/2", b"hint wins")]) is True
    assert {k: store.get(k) for k in store.list()} == {k: model.get(k) for k in model.list()}


def test_racing_commits_sharing_objects_never_deadlock(store: PostgresStore) -> None:
    """Writers of different sessions insert the same new objects in one transaction each."""
    shared = [(f"objects/{i:03d}", b"same %d" % i) for i in range(50)]
    barrier, results = threading.Barrier(8), []

    def commit(i: int) -> None:
        barrier.wait(timeout=30)
        mine = shared[::-1] if i % 2 else shared
        results.append(store.commit(mine, f"commits/s{i}/1", b"r", [(f"heads/s{i}", b"1")]))

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [True] * 8
    assert len(store.list("objects/")) == 50


def test_synchronous_commit_is_forced_on(schema_url: tuple[str, str]) -> None:
    url = with_query(schema_url[0], options="-c%20synchronous_commit%3Doff")
    with PostgresStore(url) as store:
        with store._pool.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert store.durable is True


# --- URLs and errors -------------------------------------------------------------------------------------
def test_open_store_routes_both_schemes(schema_url: tuple[str, str]) -> None:
    url = schema_url[0]
    for variant in (url, url.replace("postgresql://", "postgres://", 1)):
        with open_store(variant) as opened:
            assert isinstance(opened, PostgresStore) and opened.url == variant
            opened.put("k", b"v")
            assert opened.get("k") == b"v"


def test_default_schema_is_safepoint() -> None:
    assert postgres._parse_url("postgresql://u@h/db?sslmode=disable") == (
        "postgresql://u@h/db?sslmode=disable",
        "safepoint",
    )


@pytest.mark.parametrize("schema", ["1abc", "a-b", "x" * 64, ""])
def test_bad_schema_names_are_refused(schema: str) -> None:
    with pytest.raises(UnknownStoreURL, match="schema"):
        PostgresStore(f"postgresql://u@127.0.0.1/db?schema={schema}")


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    with pytest.raises(StorageError) as caught:
        PostgresStore("postgresql://user:hunter2@127.0.0.1:1/test?schema=x")
    message = str(caught.value)
    assert "cannot open postgresql://user:***@127.0.0.1:1/test" in message
    assert "PostgreSQL server is running" in message and "hunter2" not in message


def test_dropped_schema_is_a_clear_error(store: PostgresStore) -> None:
    drop_schema(store.schema)
    with pytest.raises(StorageError, match=r"cannot read key 'k'.*was dropped.*open the store again"):
        store.get("k")


# --- LISTEN / NOTIFY -------------------------------------------------------------------------------------
def test_listen_and_notify(store: PostgresStore) -> None:
    with store.listen("wake") as listener, PostgresStore(store.url) as other:
        assert listener.wait(timeout=0.05) == []
        other.notify("wake", "session-1")
        other.notify("wake", "session-2")
        other.notify("other-channel", "not for us")
        received = listener.wait(timeout=5)
        while len(received) < 2:
            more = listener.wait(timeout=5)
            assert more, f"only {received} arrived"
            received += more
        assert received == ["session-1", "session-2"]
        assert listener.wait(timeout=0.05) == []


def test_channels_are_per_schema(store: PostgresStore, schema_url: tuple[str, str]) -> None:
    other_schema = fresh_name("pg")
    try:
        with PostgresStore(with_query(postgres_url(), schema=other_schema)) as neighbour:
            with store.listen("wake") as listener:
                neighbour.notify("wake", "for the neighbour's workers")
                assert listener.wait(timeout=0.3) == []
                store.notify("wake", "ours")
                assert listener.wait(timeout=5) == ["ours"]
    finally:
        drop_schema(other_schema)


@pytest.mark.parametrize("channel", ["", "has space", "x" * 60, "semi;colon"])
def test_bad_channel_names_are_refused(store: PostgresStore, channel: str) -> None:
    with pytest.raises(ValueError, match="channel"):
        store.notify(channel, "x")
    with pytest.raises(ValueError, match="channel"):
        store.listen(channel)


def test_payload_size_is_checked(store: PostgresStore) -> None:
    with pytest.raises(ValueError, match="payload"):
        store.notify("wake", "x" * 8000)


# --- crash torture ---------------------------------------------------------------------------------------
def test_sigkill_at_random_moments_loses_nothing_acknowledged() -> None:
    base = postgres_url()
    schemas: list[str] = []

    def fresh_url(kill: int) -> str:
        schemas.append(fresh_name("crash"))
        return with_query(base, schema=schemas[-1])

    try:
        acknowledged = torture(fresh_url, kills=CRASH_KILLS, max_delay=0.12)
    finally:
        for schema in schemas:
            drop_schema(schema)
    assert acknowledged > CRASH_KILLS, "the child should get several saves in between kills"


def test_a_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import safepoint.stores as stores

    def missing(name: str, package: str | None = None) -> None:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(
        ImportError, match=r"PostgresStore needs the 'postgres' extra: pip install 'safepoint\[postgres\]'"
    ):
        stores.PostgresStore  # noqa: B018 - the attribute access is what imports
