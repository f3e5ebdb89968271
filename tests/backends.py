"""Every backend as a URL plus a raw reader of everything it holds, for tests that scan the stored bytes.

`raw_bytes()` reads the backend behind safepoint's back, the way an attacker with access to the disk, the
database or the bucket would: every file of a directory store, the SQLite database file with its WAL and shm,
every row of the PostgreSQL table, every Redis value under the prefix, every S3 object under the prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from services import fresh_name, postgres_url, redis_url, with_query

from safepoint.stores.memory import MemoryStore

KINDS = ["memory", "file", "sqlite", "postgres", "redis", "s3"]
LOCAL_KINDS = ["memory", "file", "sqlite"]


@dataclass
class Backend:
    kind: str
    url: str
    raw_bytes: Callable[[], bytes]


def _files(root: Path) -> bytes:
    return b"\n".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def _memory(name: str) -> bytes:
    data, _lock = MemoryStore._named[name]
    return b"\n".join(data.values())


def _postgres(base: str, schema: str) -> bytes:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        query = psycopg.sql.SQL("SELECT key, value FROM {}.kv").format(psycopg.sql.Identifier(schema))
        rows = conn.execute(query).fetchall()
    return b"\n".join(key.encode() + b"=" + bytes(value) for key, value in rows)


def _drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))


def _redis_client(base: str):  # noqa: ANN202 - redis is optional
    import redis

    return redis.Redis.from_url(base)


def _redis(base: str, prefix: str) -> bytes:
    out: list[bytes] = []
    with _redis_client(base) as client:
        for name in client.scan_iter(match="{" + prefix + "}:*", count=1000):
            kind = client.type(name)
            if kind == b"string":
                out.append(client.get(name) or b"")
            elif kind == b"hash":
                out.extend(k + b"=" + v for k, v in client.hgetall(name).items())
            elif kind == b"zset":
                out.extend(client.zrange(name, 0, -1))
            elif kind == b"set":
                out.extend(client.smembers(name))
            elif kind == b"list":
                out.extend(client.lrange(name, 0, -1))
            out.append(name)
    return b"\n".join(out)


def _redis_cleanup(base: str, prefix: str) -> None:
    with _redis_client(base) as client:
        for name in client.scan_iter(match="{" + prefix + "}:*", count=1000):
            client.delete(name)


@pytest.fixture
def make_backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Backend]]:
    """A factory: `make_backend(kind)` -> a fresh, empty Backend of that kind, removed after the test."""
    cleanups: list[Callable[[], None]] = []

    def make(kind: str) -> Backend:
        name = fresh_name(kind)
        if kind == "memory":
            MemoryStore(name)
            cleanups.append(lambda: MemoryStore._named.pop(name, None))
            return Backend(kind, f"memory://{name}", lambda: _memory(name))
        if kind == "file":
            root = tmp_path / name
            return Backend(kind, str(root), lambda: _files(root))
        if kind == "sqlite":
            directory = tmp_path / name
            directory.mkdir()
            return Backend(kind, f"sqlite:///{directory / 'store.db'}", lambda: _files(directory))
        if kind == "postgres":
            base = postgres_url()
            cleanups.append(lambda: _drop_schema(base, name))
            return Backend(kind, with_query(base, schema=name), lambda: _postgres(base, name))
        if kind == "redis":
            base = redis_url()
            cleanups.append(lambda: _redis_cleanup(base, name))
            return Backend(kind, with_query(base, prefix=name), lambda: _redis(base, name))
        if kind == "s3":
            seaweed = request.getfixturevalue("seaweed")
            from test_store_s3 import BUCKET, remove_prefix

            prefix = name.replace("_", "-")
            cleanups.append(lambda: remove_prefix(seaweed, prefix))

            def objects() -> bytes:
                client = seaweed.client()
                out = []
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
                    for item in page.get("Contents", []):
                        body = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                        out.append(item["Key"].encode() + b"=" + body)
                return b"\n".join(out)

            return Backend(kind, f"s3://{BUCKET}/{prefix}?endpoint_url={seaweed.endpoint_url}", objects)
        raise ValueError(kind)

    yield make
    for cleanup in reversed(cleanups):
        cleanup()
