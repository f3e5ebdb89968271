"""`s3://bucket/prefix`: every key an object in an S3-compatible bucket, through fsspec and s3fs.

The key `k` is the object `<prefix>/k`. Endpoint and credentials come from the standard variables
(`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`...)
or, for the endpoint, the URL: `s3://bucket/prefix?endpoint_url=http://127.0.0.1:8333`. The bucket must exist.

- The commit point is a conditional create: `PutObject` with `If-None-Match: *`. The server stores the object
  only if the key is absent and answers `412 Precondition Failed` otherwise, so of racing writers exactly one
  wins. Objects are immutable; a commit uploads them concurrently (also create-only), then creates the commit
  key, then writes the hints.
- Compare-and-set reads the value with its ETag and writes with `If-Match: <etag>`; a 412 means someone
  wrote in between, and it reads again.
- Not every S3-compatible server honours these headers, and one that ignores them would let two writers fork
  a session's chain. So before its first write a store probes the bucket: it creates a random key twice
  (the second create must fail) and overwrites it with a wrong `If-Match` (which must fail too), then
  deletes it. A server that fails the probe gets no writes, only a StorageError saying why; reading works.
- A conditional write is never retried after a connection broke mid-request: a retry could report "lost"
  for a create that won. It raises StorageError instead, and the session finds its commit on the next save.
  Idempotent requests (reads, lists, plain writes, deletes) are retried a few times.

Durability is the service's: S3 acknowledges a PUT once the object is stored redundantly. `delete` reads
then deletes: two concurrent deletes of one key may both report True. Artifacts are stored in 4 MiB chunks
above the store, so each object is one plain PUT. Other fsspec filesystems (GCS, Azure) have their own
conditional-write primitives and are not supported yet.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import fsspec
from aiobotocore.session import AioSession
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
)
from fsspec.asyn import sync

from ..errors import SafepointError, StorageError
from . import UnknownStoreURL
from .base import _SEGMENT, ANY, Fence, Floor, Store, check_commit, check_key, floor_value

#: Idempotent requests are tried this many times on throttling, 5xx answers and broken connections.
ATTEMPTS = 5
#: Compare-and-set and delete re-read after a concurrent change at most this many times.
RACE_ATTEMPTS = 100
#: Concurrent uploads of one commit's objects.
UPLOADS = 16
CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
PROBE_PREFIX = ".safepoint-probe-"
#: `sweep` removes probe objects older than this (left behind by a writer killed mid-probe).
STALE_PROBE = timedelta(hours=1)

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_NEVER_SENT = (EndpointConnectionError, ConnectTimeoutError)  # the request never reached the server
_RETRY_CODES = {"SlowDown", "ServiceUnavailable", "Throttling", "RequestTimeout", "InternalError"}
_T = TypeVar("_T")


class _Ambiguous(Exception):
    """A conditional write whose connection broke after sending: it may or may not have happened."""


class ObjectStore(Store):
    """Keys as objects under a prefix of an S3 bucket; commits are conditional creates (`If-None-Match: *`)."""

    durable = True
    cheap_create = True  # a create of an existing object is one request, like the existence check

    #: (endpoint, bucket) pairs this process has already probed for conditional writes.
    _probed: set[tuple[str | None, str]] = set()
    _probe_lock = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        self.bucket, prefix = parts.netloc, parts.path.strip("/")
        options = dict(parse_qsl(parts.query))
        unknown = sorted(set(options) - {"endpoint_url"})
        if not _BUCKET.fullmatch(self.bucket) or unknown:
            raise UnknownStoreURL(
                f"store URL {url!r} needs a bucket name of 3-63 characters [a-z0-9.-] and knows only the "
                f"option endpoint_url (got bucket {self.bucket!r}, options {unknown}); "
                "use s3://bucket/prefix?endpoint_url=http://host:port"
            )
        if prefix:
            check_key(prefix)
        self._root = prefix + "/" if prefix else ""
        self.endpoint_url = (
            options.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        )
        # botocore's own retries are off: a retried conditional PUT could turn a win into a 412. Idempotent
        # requests are retried by `_request` instead.
        self._fs = fsspec.filesystem(
            "s3",
            endpoint_url=self.endpoint_url,
            session=_session(),
            skip_instance_cache=True,
            config_kwargs={
                "retries": {"mode": "standard", "total_max_attempts": 1},
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "read_timeout": READ_TIMEOUT_SECONDS,
                "max_pool_connections": UPLOADS * 2,
            },
        )
        self._writable = False

    # --- the primitives -------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        with self._translate("read", key, writing=False):
            found = self._run(self._read(key))
        return None if found is None else found[0]

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        self._check_writable()
        with self._translate("create", key):
            return self._run(self._create(key, data))

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        if expect is None:
            return self._put_if_absent(key, data)
        self._check_writable()
        with self._translate("write", key):
            if expect is ANY:
                self._run(self._request("put_object", Key=self._root + key, Body=data))
                return True
            if not isinstance(expect, bytes | bytearray | memoryview):
                return False  # no stored value can equal it
            return self._run(self._compare_and_set(key, data, bytes(expect)))

    def _list(self, prefix: str) -> list[str]:
        with self._translate("list", prefix or "<all keys>", writing=False):
            names = self._run(self._names(self._root + prefix))
        keys = (name[len(self._root) :] for name, _ in names)
        return sorted(key for key in keys if all(_SEGMENT.fullmatch(part) for part in key.split("/")))

    def _delete(self, key: str) -> bool:
        with self._translate("delete", key):
            if self._run(self._head(key)) is None:
                return False
            self._run(self._request("delete_object", Key=self._root + key))
            return True

    # --- fast paths -----------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        """Whether `key` exists (a HEAD request)."""
        key = check_key(key)
        with self._translate("read", key, writing=False):
            return self._run(self._head(key)) is not None

    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        """Upload the objects concurrently, then create `key` (the commit point), then write the hints."""
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        self._check_writable()
        self.check_fence(fence)  # a read: S3 has no conditional write across two keys
        with self._translate("commit", key):
            return self._run(self._commit(objects, key, data, hints, floor))

    def sweep(self) -> int:
        """Remove probe objects of writers that died mid-probe (older than an hour); return how many."""
        removed = 0
        cutoff = datetime.now(UTC) - STALE_PROBE
        with self._translate("sweep", "<probe objects>"):
            for name, modified in self._run(self._names(self._root + PROBE_PREFIX)):
                if modified < cutoff:
                    self._run(self._request("delete_object", Key=name))
                    removed += 1
        return removed

    def close(self) -> None:
        """Close the HTTP connections; the store reconnects on next use."""
        client = getattr(self._fs, "_s3", None)
        if client is not None:
            try:
                sync(self._fs.loop, client.close)
            except Exception:  # noqa: BLE001 - closing is best effort; the connector is dropped with the client
                pass

    # --- the requests (coroutines on fsspec's event loop thread) ---------------------------------
    async def _read(self, key: str) -> tuple[bytes, str] | None:
        """The value and ETag of `key`, or None."""
        try:
            response = await self._request("get_object", Key=self._root + key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        async with response["Body"] as body:
            return await body.read(), response["ETag"]

    async def _head(self, key: str) -> str | None:
        """The ETag of `key`, or None when it is absent."""
        try:
            return (await self._request("head_object", Key=self._root + key))["ETag"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    async def _create(self, key: str, data: bytes) -> bool:
        """The commit point: create `key` only if absent. True when this request created it."""
        try:
            await self._request("put_object", conditional=True, Key=self._root + key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if _status(exc) == 412:
                return False
            raise
        return True

    async def _compare_and_set(self, key: str, data: bytes, expect: bytes) -> bool:
        for _ in range(RACE_ATTEMPTS):
            current = await self._read(key)
            if current is None or current[0] != expect:
                return False
            try:
                await self._request("put_object", conditional=True, Key=self._root + key, Body=data, IfMatch=current[1])
            except ClientError as exc:
                if _status(exc) == 412:
                    continue  # written in between: compare with the new value
                raise
            return True
        raise StorageError(f"compare-and-set of {key!r} kept losing to other writers; retry later")

    async def _commit(
        self,
        objects: list[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: list[tuple[str, bytes]],
        floor: Floor | None,
    ) -> bool:
        limit = asyncio.Semaphore(UPLOADS)

        async def upload(write: Callable[[str, bytes], Awaitable[Any]], item: tuple[str, bytes]) -> None:
            async with limit:
                await write(*item)

        await asyncio.gather(*(upload(self._create, item) for item in objects))  # immutable: 412 is fine
        if not await self._create(key, data):
            return False
        if floor is not None:  # after the create, as in `Store.undo_below_floor`
            current = await self._read(floor[0])
            if floor_value(current and current[0], floor[0]) >= floor[1]:
                await self._request("delete_object", Key=self._root + key)
                return False
        await asyncio.gather(*(upload(self._plain_put, item) for item in hints))
        return True

    async def _plain_put(self, key: str, data: bytes) -> None:
        await self._request("put_object", Key=self._root + key, Body=data)

    async def _names(self, prefix: str) -> list[tuple[str, datetime]]:
        """(object name, last modified) of every object whose name starts with `prefix`."""
        names: list[tuple[str, datetime]] = []
        token: dict[str, str] = {}
        while True:
            page = await self._request("list_objects_v2", Prefix=prefix, **token)
            names += [(item["Key"], item["LastModified"]) for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return names
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def _request(self, method: str, *, conditional: bool = False, **kwargs: Any) -> Any:
        """One S3 call on this bucket, retried when that is safe (see the module docstring)."""
        client = await self._fs.set_session()
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            try:
                return await getattr(client, method)(Bucket=self.bucket, **kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                # 409: a concurrent conditional write of the same key is in flight; ours did nothing yet.
                throttled = code in ("SlowDown", "ConditionalRequestConflict") or _status(exc) in (409, 503)
                if last or not (throttled or (not conditional and code in _RETRY_CODES)):
                    raise
            except _NEVER_SENT:
                if last:
                    raise
            except (BotoCoreError, OSError) as exc:
                if conditional:
                    raise _Ambiguous(str(exc)) from exc
                if last:
                    raise
            await asyncio.sleep(min(0.05 * 2**attempt, 2.0))
        raise AssertionError("unreachable")  # pragma: no cover

    # --- helpers --------------------------------------------------------------------------------
    def _run(self, coroutine: Awaitable[_T]) -> _T:
        async def wrapped() -> _T:
            return await coroutine

        return sync(self._fs.loop, wrapped)

    def _check_writable(self) -> None:
        """Probe once per process and bucket that the server honours conditional writes; refuse otherwise."""
        target = (self.endpoint_url, self.bucket)
        if self._writable or target in self._probed:
            self._writable = True
            return
        with self._probe_lock, self._translate("probe conditional writes in", None):
            if target not in self._probed:
                self._run(self._probe())
                self._probed.add(target)
        self._writable = True

    async def _probe(self) -> None:
        key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
        name = self._root + key
        if not await self._create(key, b"1"):
            raise StorageError(f"the probe object {name} existed before it was created; retry")
        try:
            honoured = not await self._create(key, b"2")
            if honoured:
                try:
                    await self._request("put_object", conditional=True, Key=name, Body=b"3", IfMatch='"0"')
                    honoured = False
                except ClientError as exc:
                    if _status(exc) != 412:
                        raise
        finally:
            await self._request("delete_object", Key=name)
        if not honoured:
            raise StorageError(
                f"refusing to write to {self.url}: the server ignored a conditional write (If-None-Match: * or "
                "If-Match) on a probe object, so two writers could fork a session's chain. Use a server that "
                "honours conditional writes (AWS S3, SeaweedFS...); reading this store still works"
            )

    @contextmanager
    def _translate(self, operation: str, key: str | None, *, writing: bool = True) -> Iterator[None]:
        """Turn botocore and fsspec errors into StorageError naming the operation, the key and what to do."""
        target = self.url if key is None else f"key {key!r} in {self.url}"
        try:
            yield
        except SafepointError:
            raise
        except _Ambiguous as exc:
            raise StorageError(
                f"cannot {operation} {target}: the connection broke after the request was sent ({exc}), so it "
                "may or may not have been written; reopen the session, it continues after whatever was committed"
            ) from exc
        except (ClientError, BotoCoreError, OSError) as exc:
            advice = _advice(exc, self.bucket)
            if writing:
                advice += "; if this was a save, the previous checkpoint is untouched"
            raise StorageError(f"cannot {operation} {target}: {exc}; {advice}") from exc


_shared_session: list[AioSession] = []


def _session() -> AioSession:
    """One botocore session per process (inherited by forks): it parses the S3 service model only once,
    which otherwise costs every store handle a few hundred milliseconds on its first request."""
    if not _shared_session:
        _shared_session.append(AioSession())
    return _shared_session[0]


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _missing(exc: ClientError) -> bool:
    return _status(exc) == 404 and exc.response.get("Error", {}).get("Code") != "NoSuchBucket"


def _advice(exc: Exception, bucket: str) -> str:
    if isinstance(exc, NoCredentialsError):
        return "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or another botocore credential source)"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return "check that the endpoint is reachable (AWS_ENDPOINT_URL or ?endpoint_url=) and retry"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return f"bucket {bucket!r} does not exist; create it first (safepoint does not create buckets)"
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return "check the credentials and the bucket policy"
        if code in ("SlowDown", "ServiceUnavailable", "503"):
            return "the service is throttling requests; retry later"
    return "check the service and the network, then retry"
