"""The stores the framework adapters' tests run on: a directory, SQLite, and (cheaply) PostgreSQL and Redis.

    pytest_plugins = ["adapter_stores"]  # in a test module: its fixture `store_url` is then available

PostgreSQL gets a fresh schema and Redis a fresh key prefix per test, both removed afterwards; without the
servers those cases skip (and fail under CI=true, see services.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from services import fresh_name, postgres_url, redis_url, with_query

KINDS = ["dir", "sqlite", "postgres", "redis"]


@pytest.fixture(params=KINDS)
def store_url(request, tmp_path) -> Iterator[str]:
    kind = request.param
    if kind == "dir":
        yield str(tmp_path / "store")
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    elif kind == "postgres":
        import psycopg

        base, schema = postgres_url(), fresh_name("pg")
        yield with_query(base, schema=schema)
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))
    else:
        import redis

        prefix = fresh_name("redis")
        yield with_query(redis_url(), prefix=prefix)
        with redis.Redis.from_url(redis_url()) as client:
            for name in client.scan_iter(match="{" + prefix + "}:*", count=1000):
                client.delete(name)
