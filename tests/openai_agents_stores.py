"""The stores the OpenAI Agents SDK tests run on: a fixture giving a fresh URL of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services import fresh_name, postgres_url, redis_url, with_query


@pytest.fixture(params=["memory", "directory", "sqlite", "postgres", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store of each kind (PostgreSQL gets a schema of its own, Redis a prefix, both removed after)."""
    kind = request.param
    if kind == "memory":
        yield f"memory://{fresh_name('oai')}"
    elif kind == "directory":
        yield str(tmp_path / "store")
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'agents.db'}"
    elif kind == "postgres":
        import psycopg

        schema = fresh_name("oai")
        yield with_query(postgres_url(), schema=schema)
        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(psycopg.sql.Identifier(schema)))
    else:
        import redis

        prefix = fresh_name("oai")
        yield with_query(redis_url(), prefix=prefix)
        client = redis.Redis.from_url(redis_url())
        for name in client.scan_iter(match="{" + prefix + "}:*", count=1000):
            client.delete(name)
        client.close()
