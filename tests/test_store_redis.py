"""RedisStore against the shared store suite, plus its layout and persistence checks, verified with raw redis.

Needs a server: `SAFEPOINT_TEST_REDIS_URL` (default redis://127.0.0.1:6379/0). Every test gets a key prefix of
its own, whose keys are deleted afterwards. The test server usually keeps nothing on disk, so opening a store
warns: the warning is checked by the tests about it and ignored elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from crash_torture import torture
from services import fresh_name, redis_url, require_module, with_query

from safepoint.errors import FenceMismatch, SafepointWarning, StorageError
from safepoint.stores import UnknownStoreURL, open_store
from safepoint.stores.base import Store
from safepoint.testing import StoreTests

redis = require_module("redis", "redis")
redis_store = require_module("safepoint.stores.redis", "redis")
RedisStore = redis_store.RedisStore

pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")

CRASH_KILLS = 200


def raw_client() -> redis.Redis:
    return redis.Redis.from_url(redis_url())


def value_key(store: Store, key: str) -> str:
    return "{" + store.prefix + "}:v:" + key


def index_key(store: Store) -> str:
    return "{" + store.prefix + "}:index"


def remove_prefix(prefix: str) -> None:
    with raw_client() as client:
        for name in client.scan_iter(match="{" + prefix + "}:*", count=1000):
            client.delete(name)


@pytest.fixture
def prefix_url() -> Iterator[str]:
    prefix = fresh_name("redis")
    yield with_query(redis_url(), prefix=prefix)
    remove_prefix(prefix)


class TestRedisStore(StoreTests):
    @pytest.fixture
    def store(self, prefix_url: str) -> Iterator[Store]:
        with RedisStore(prefix_url) as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: Store) -> Callable[[], Store]:
        return lambda: RedisStore(store.url)

    def raw_get(self, store: Store, key: str) -> bytes | None:
        with raw_client() as client:
            return client.get(value_key(store, key))

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        with raw_client() as client:
            client.set(value_key(store, key), data)
            client.zadd(index_key(store), {key: 0})

    def raw_delete(self, store: Store, key: str) -> None:
        with raw_client() as client:
            client.delete(value_key(store, key))
            client.zrem(index_key(store), key)

    def raw_items(self, store: Store) -> dict[str, bytes]:
        with raw_client() as client:
            keys = [key.decode() for key in client.zrange(index_key(store), 0, -1)]
            values = client.mget([value_key(store, key) for key in keys]) if keys else []
        return {key: value for key, value in zip(keys, values, strict=True) if value is not None}


@pytest.fixture
def store(prefix_url: str) -> Iterator[RedisStore]:
    with RedisStore(prefix_url) as store:
        yield store


# --- the layout ------------------------------------------------------------------------------------------
def test_values_and_index_hold_exactly_the_keys(store: RedisStore) -> None:
    store.put_if_absent("sessions/s1", b"\x00info")
    store.commit([("objects/ab", b"obj")], "commits/s1/1", b"record", [("heads/s1", b"1")])
    with raw_client() as client:
        names = sorted(name.decode() for name in client.scan_iter(match="{" + store.prefix + "}:*"))
        assert names == sorted(
            [index_key(store)]
            + [value_key(store, k) for k in ["sessions/s1", "objects/ab", "commits/s1/1", "heads/s1"]]
        )
        assert client.zrange(index_key(store), 0, -1, withscores=True) == [
            (b"commits/s1/1", 0.0),
            (b"heads/s1", 0.0),
            (b"objects/ab", 0.0),
            (b"sessions/s1", 0.0),
        ]
        assert client.get(value_key(store, "sessions/s1")) == b"\x00info"
        assert client.ttl(value_key(store, "commits/s1/1")) == -1  # never expires
    assert store.delete("objects/ab") is True
    with raw_client() as client:
        assert client.get(value_key(store, "objects/ab")) is None
        assert client.zscore(index_key(store), "objects/ab") is None


def test_list_reads_the_index_not_the_keyspace(store: RedisStore) -> None:
    store.put("a/1", b"1")
    with raw_client() as client:
        client.set(value_key(store, "a/2"), b"written without the index")
    assert store.list("a/") == ["a/1"]
    assert store.get("a/2") == b"written without the index"


def test_losing_commit_writes_nothing(store: RedisStore) -> None:
    store.put_if_absent("commits/s/1", b"first")
    assert store.commit([("objects/new", b"x")], "commits/s/1", b"second", [("heads/s", b"1")]) is False
    with raw_client() as client:
        assert client.zrange(index_key(store), 0, -1) == [b"commits/s/1"]
        assert client.get(value_key(store, "objects/new")) is None
        assert client.get(value_key(store, "heads/s")) is None


def test_commit_is_one_script_call(store: RedisStore) -> None:
    """Redis runs a script atomically: the whole commit must be one EVALSHA, not a command per key."""
    with raw_client() as client:
        before = _evalsha_calls(client)
        objects = [(f"objects/{i:02d}", b"chunk %d" % i) for i in range(30)]
        assert store.commit(objects, "commits/s/1", b"record", [("heads/s", b"1")]) is True
        assert _evalsha_calls(client) - before == 1
    assert len(store.list()) == 32


def _staging_keys(client: redis.Redis, store: RedisStore) -> list[bytes]:
    return list(client.scan_iter(match="{" + store.prefix + "}:stage:*"))


def test_a_large_commit_is_staged_and_renamed_into_place(store: RedisStore) -> None:
    big = bytes(range(256)) * (redis_store.STAGE_MIN // 256 + 1)
    store.put("leases/s", b"lease")
    with raw_client() as client:
        before, renames = _evalsha_calls(client), _calls(client, "rename")
        assert store.commit([("objects/ab", b"obj")], "commits/s/1", big, fence=("leases/s", b"lease")) is True
        assert _evalsha_calls(client) - before == 1  # still one script: the check and the rename are atomic
        assert _calls(client, "rename") - renames == 1
        assert client.get(value_key(store, "commits/s/1")) == big
        assert client.ttl(value_key(store, "commits/s/1")) == -1  # the staging key's expiry is gone
        assert _staging_keys(client, store) == []
    assert store.list() == ["commits/s/1", "leases/s", "objects/ab"]


def test_a_refused_large_commit_leaves_no_staging_key(store: RedisStore) -> None:
    big = b"x" * redis_store.STAGE_MIN
    store.put("leases/s", b"lease")
    store.put("packed/s", b"000000000004")
    assert store.commit([], "commits/s/3", big, fence=("leases/s", b"lease"), floor=("packed/s", 3)) is False
    store.put_if_absent("commits/s/5", b"first")
    assert store.commit([], "commits/s/5", big, fence=("leases/s", b"lease")) is False
    with pytest.raises(FenceMismatch):
        store.commit([], "commits/s/6", big, fence=("leases/s", b"another lease"))
    with raw_client() as client:
        assert _staging_keys(client, store) == []
        assert client.get(value_key(store, "commits/s/5")) == b"first"
    assert store.list() == ["commits/s/5", "leases/s", "packed/s"]


def test_a_staged_commit_survives_a_flushed_script_cache(store: RedisStore) -> None:
    with raw_client() as client:
        client.script_flush()
    assert store.commit([], "commits/s/1", b"y" * redis_store.STAGE_MIN) is True
    assert store.get("commits/s/1") == b"y" * redis_store.STAGE_MIN


def test_a_refused_command_comes_back_in_its_place_and_the_connection_stays_in_step(store: RedisStore) -> None:
    key = value_key(store, "plain")
    replies = store._send([("SET", key, b"text"), ("INCR", key), ("GET", key)])
    assert replies[0] == b"OK" and replies[2] == b"text"
    assert isinstance(replies[1], redis.ResponseError) and "not an integer" in str(replies[1])
    assert store._send([("GET", key)]) == [b"text"]  # the next user of the connection reads its own reply


def test_a_connection_dropped_by_the_server_is_replaced(store: RedisStore) -> None:
    store.put("commits/s/1", b"first")
    (connection_id,) = store._send([("CLIENT", "ID")])
    with raw_client() as client:  # dropped while idle in the pool: replaced before the next command is sent
        assert client.client_kill_filter(_id=connection_id) == 1
    assert store.get("commits/s/1") == b"first"
    (connection_id,) = store._send([("CLIENT", "ID")])
    with pytest.raises(redis.ConnectionError):  # dropped after the first reply, the second never comes
        store._send([("CLIENT", "KILL", "ID", connection_id, "SKIPME", "no"), ("GET", value_key(store, "commits/s/1"))])
    assert store.commit([], "commits/s/2", b"second") is True  # on a new connection, nothing half read
    assert store.get("commits/s/1") == b"first"
    assert store.list() == ["commits/s/1", "commits/s/2"]


def _evalsha_calls(client: redis.Redis) -> int:
    return _calls(client, "evalsha")


def _calls(client: redis.Redis, command: str) -> int:
    stats = client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_prefixes_are_isolated(store: RedisStore) -> None:
    other_prefix = fresh_name("redis")
    try:
        with RedisStore(with_query(redis_url(), prefix=other_prefix)) as other:
            store.put("k", b"mine")
            other.put("k", b"theirs")
            assert store.get("k") == b"mine" and other.get("k") == b"theirs"
            assert store.list() == ["k"] and other.list() == ["k"]
    finally:
        remove_prefix(other_prefix)


# --- persistence and durability ---------------------------------------------------------------------------
def test_persistence_matches_the_server_config(store: RedisStore) -> None:
    with raw_client() as client:
        save = client.config_get("save")["save"]
        appendonly = client.config_get("appendonly")["appendonly"]
    expected = "aof" if appendonly == "yes" else "snapshots" if save.strip() else "none"
    assert store.persistence == expected
    if expected != "aof":
        assert store.durable is False


@pytest.mark.parametrize(
    ("config", "persistence", "durable", "warning"),
    [
        ({"save": "", "appendonly": "no", "maxmemory-policy": "noeviction"}, "none", False, "lost when Redis restarts"),
        ({"save": "3600 1", "appendonly": "no", "maxmemory-policy": "noeviction"}, "snapshots", False, "last snapshot"),
        ({"save": "", "appendonly": "yes", "maxmemory-policy": "allkeys-lru"}, "aof", False, "may evict"),
        ({"save": "", "appendonly": "yes", "maxmemory-policy": "noeviction"}, "aof", True, None),
    ],
)
def test_non_durable_servers_are_flagged_and_warned_about(
    prefix_url: str, monkeypatch: pytest.MonkeyPatch, config: dict, persistence: str, durable: bool, warning: str
) -> None:
    monkeypatch.setattr(redis_store, "_config", lambda client, name: config[name])
    if warning is None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error", SafepointWarning)
            opened = RedisStore(prefix_url)
    else:
        with pytest.warns(SafepointWarning, match=warning) as caught:
            opened = RedisStore(prefix_url)
        assert "not durable" in str(caught[0].message) and "appendonly yes" in str(caught[0].message)
    with opened:
        assert opened.persistence == persistence and opened.durable is durable


def test_server_that_forbids_config_is_trusted(prefix_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(client: redis.Redis, name: str) -> str:
        raise redis.ResponseError("ERR unknown command 'CONFIG'")

    monkeypatch.setattr(redis_store, "_config", forbidden)
    with RedisStore(prefix_url) as opened:
        assert opened.persistence == "unknown" and opened.durable is True
        assert opened.put_if_absent("k", b"v") is True


# --- URLs and errors -------------------------------------------------------------------------------------
def test_open_store_routes_redis_urls(prefix_url: str) -> None:
    with open_store(prefix_url) as opened:
        assert isinstance(opened, RedisStore) and opened.url == prefix_url
    with pytest.raises(StorageError, match=r"cannot open rediss://127\.0\.0\.1:1/0"):
        open_store("rediss://127.0.0.1:1/0")


@pytest.mark.parametrize("prefix", ["", "has space", "a{b}", "x" * 101])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(UnknownStoreURL, match="prefix"):
        RedisStore(f"redis://127.0.0.1:6379/0?prefix={prefix}")


def test_unreachable_server_is_a_storage_error_without_the_password() -> None:
    with pytest.raises(StorageError) as caught:
        RedisStore("redis://user:hunter2@127.0.0.1:1/0")
    message = str(caught.value)
    assert "cannot open redis://user:***@127.0.0.1:1/0" in message
    assert "Redis server is running" in message and "hunter2" not in message


@pytest.mark.parametrize(
    ("reply", "advice"),
    [
        ("OOM command not allowed when used memory > 'maxmemory'", "maxmemory"),
        ("READONLY You can't write against a read only replica", "primary"),
        ("MISCONF Redis is configured to save RDB snapshots", "disk"),
        ("NOPERM this user has no permissions", "ACL"),
    ],
)
def test_server_refusals_get_advice(reply: str, advice: str) -> None:
    assert advice in redis_store._advice(redis.ResponseError(reply))


# --- crash torture ---------------------------------------------------------------------------------------
def test_sigkill_at_random_moments_loses_nothing_acknowledged() -> None:
    base = redis_url()
    prefixes: list[str] = []

    def fresh_url(kill: int) -> str:
        prefixes.append(fresh_name("crash"))
        return with_query(base, prefix=prefixes[-1])

    try:
        acknowledged = torture(fresh_url, kills=CRASH_KILLS, max_delay=0.08)
    finally:
        for prefix in prefixes:
            remove_prefix(prefix)
    assert acknowledged > CRASH_KILLS, "the child should get several saves in between kills"
