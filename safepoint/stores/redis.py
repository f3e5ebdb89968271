"""`redis://host:6379/0?prefix=name` (or `rediss://` for TLS): every key a Redis string, plus a sorted-set index.

A store lives under one namespace (`prefix`, default `safepoint`): the value of key `k` is the string
`{prefix}:v:k` and the set of all keys is the sorted set `{prefix}:index` (every member scored 0, so members
sort bytewise and `list` is a ZRANGEBYLEX range, never a SCAN). The braces make the namespace a Redis Cluster
hash tag: all keys of one store live in one slot, so the scripts below may touch them together.

Every write is one Lua script (run with EVALSHA), and Redis runs a script atomically, so the index never
disagrees with the values. Reads and writes go to a connection of redis-py's pool directly, several in one write
when they belong to one round trip (`_send`): redis-py's per-command layer costs more than the script runs (only
`discard`, off the save path, uses its MULTI/EXEC pipeline).

- `put_if_absent` is `SET ... NX` plus ZADD: of any number of racing writers exactly one gets OK.
  It is the checkpoint commit point.
- compare-and-set reads, compares and writes inside one script.
- `commit` checks the fence (a lease), the floor and that the commit key is absent, then writes the objects,
  the commit key and the hints. Commit data of STAGE_MIN bytes or more is sent ahead by a plain SET to a
  staging key (with an expiry), in the same round trip, and the script renames it into place or deletes it:
  the one value that is not written by the script, and never visible under a store key until the script ran.

Durability is the server's, and safepoint says which it gets: on open it reads `CONFIG GET save` and
`appendonly`. With an append-only file (`appendonly yes`) a checkpoint survives a Redis restart (with
`appendfsync everysec`, the default, a crash of the whole machine can lose the last second; `always` loses
nothing). With RDB snapshots only, checkpoints since the last snapshot are lost when Redis stops; with neither,
everything is. In both cases the store sets `durable = False` and emits a `SafepointWarning`; the same when
`maxmemory-policy` lets Redis evict keys. Servers that forbid CONFIG (managed services) are trusted as
configured: `persistence` is then `"unknown"`. Redis is the fast home for small, short-lived state; keep what
must outlive the server in PostgreSQL, S3 or a file store.

Commands are not retried on a lost connection: a retried script could report "lost" for a commit that won.
The error is a StorageError, and the session finds its commit on the next save.
"""

from __future__ import annotations

import re
import secrets
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from ..errors import CorruptCheckpoint, FenceMismatch, SafepointError, SafepointWarning, StorageError
from . import UnknownStoreURL, redacted
from .base import ANY, Fence, Floor, Store, check_commit, check_key, check_prefix, prefix_end

DEFAULT_PREFIX = "safepoint"
CONNECT_TIMEOUT_SECONDS = 10.0
#: Long enough to move a large first checkpoint over a slow link.
SOCKET_TIMEOUT_SECONDS = 60.0
HEALTH_CHECK_SECONDS = 30
#: Commit data of at least this size travels by a plain SET to a staging key that the commit script renames:
#: Redis copies a script's arguments into Lua strings, which costs ~2 us per KiB (128 us for 64 KiB) on the
#: server, against ~0.02 us per KiB for a SET.
STAGE_MIN = 8 * 1024
STAGE_TTL_MS = 60_000

_PREFIX_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")

# KEYS: value key, index. ARGV: data, member.
_PUT_IF_ABSENT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  return 1
end
return 0
"""

# KEYS: value key, index. ARGV: data, member.
_PUT = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return 1
"""

# KEYS: value key, index. ARGV: data, member, expected value. GET of a missing key is false, never equal.
_COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], 0, ARGV[2])
  return 1
end
return 0
"""

# KEYS: value key, index. ARGV: member.
_DELETE = """
if redis.call('DEL', KEYS[1]) == 1 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 1
end
return 0
"""

# KEYS: index, commit value key, fence value key, floor value key, staging key (each of the last three is the
# commit key again when the commit has none), object value keys..., hint value keys... ARGV: object count,
# commit member, commit data ("" when staged), fence flag ("1": fenced), fence value, floor seq ("": none),
# staged flag ("1": the data waits under the staging key), then (member, data) per object, then per hint.
# Returns -1 when the fence key does not hold the value, -2 when the floor key holds something not a number.
# Objects, then the commit key, then hints: should a script fail halfway (out of memory: Redis does not roll
# scripts back), what it leaves is what a crash of the generic commit leaves, orphan objects at most.
_COMMIT = """
local staged = ARGV[7] == '1'
local function refuse(outcome)
  if staged then
    redis.call('DEL', KEYS[5])
  end
  return outcome
end
if ARGV[4] == '1' and redis.call('GET', KEYS[3]) ~= ARGV[5] then
  return refuse(-1)
end
if ARGV[6] ~= '' then
  local mark = redis.call('GET', KEYS[4])
  if mark then
    if not string.match(mark, '^%d+$') then
      return refuse(-2)
    end
    if tonumber(mark) >= tonumber(ARGV[6]) then
      return refuse(0)
    end
  end
end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return refuse(0)
end
local objects = tonumber(ARGV[1])
for i = 6, 5 + objects do
  local at = 8 + (i - 6) * 2
  redis.call('SET', KEYS[i], ARGV[at + 1], 'NX')
  redis.call('ZADD', KEYS[1], 0, ARGV[at])
end
if staged then
  redis.call('RENAME', KEYS[5], KEYS[2])
  redis.call('PERSIST', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[3])
end
redis.call('ZADD', KEYS[1], 0, ARGV[2])
for i = 6 + objects, #KEYS do
  local at = 8 + (i - 6) * 2
  redis.call('SET', KEYS[i], ARGV[at + 1])
  redis.call('ZADD', KEYS[1], 0, ARGV[at])
end
return 1
"""


class RedisStore(Store):
    """Keys as Redis strings under one namespace, indexed by a sorted set; as durable as the server's settings."""

    durable = True
    cheap_create = True
    head_hints = False  # `last` is an index lookup
    # Records are sent uncompressed (zstd would cost more than the round trip) and each finished keyframe
    # cycle is packed into one compressed value: memory is what a Redis store is paid in.
    pack_records = True
    #: What the server keeps on disk: "aof", "snapshots", "none", or "unknown" when CONFIG is forbidden.
    persistence = "unknown"

    def __init__(self, url: str) -> None:
        self.url = url
        connection_url, self.prefix = _parse_url(url)
        self._display = redacted(url)
        self._namespace = "{" + self.prefix + "}"
        self._index = f"{self._namespace}:index"
        with self._translate("open", None, writing=False):
            self._client = redis.Redis.from_url(
                connection_url,
                socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                health_check_interval=HEALTH_CHECK_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
            self._scripts = {
                name: self._client.register_script(source)
                for name, source in [
                    ("put_if_absent", _PUT_IF_ABSENT),
                    ("put", _PUT),
                    ("compare_and_set", _COMPARE_AND_SET),
                    ("delete", _DELETE),
                    ("commit", _COMMIT),
                ]
            }
            self._check_persistence()

    # --- the primitives -------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        with self._translate("read", key, writing=False):
            return self._reply(("GET", self._value_key(key)))

    def _put_if_absent(self, key: str, data: bytes) -> bool:
        return self._run("create", key, "put_if_absent", [data, key])

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        if expect is None:
            return self._put_if_absent(key, data)
        if expect is ANY:
            return self._run("write", key, "put", [data, key])
        if not isinstance(expect, bytes | bytearray | memoryview):
            return False  # no stored value can equal it
        return self._run("write", key, "compare_and_set", [data, key, bytes(expect)])

    def _list(self, prefix: str) -> list[str]:
        if prefix:
            low, high = b"[" + prefix.encode(), b"(" + prefix_end(prefix).encode()
        else:
            low, high = b"-", b"+"
        with self._translate("list", prefix or "<all keys>", writing=False):
            return [member.decode("ascii") for member in self._reply(("ZRANGEBYLEX", self._index, low, high))]

    def _delete(self, key: str) -> bool:
        return self._run("delete", key, "delete", [key])

    # --- fast paths -----------------------------------------------------------------------------
    def last(self, prefix: str) -> str | None:
        """One step back from the end of the prefix's range of the index."""
        low, high = b"[" + check_prefix(prefix).encode(), b"(" + prefix_end(prefix).encode()
        with self._translate("list", prefix, writing=False):
            found = self._reply(("ZREVRANGEBYLEX", self._index, high, low, "LIMIT", 0, 1))
        return found[0].decode("ascii") if found else None

    def present(self, keys: Iterable[str]) -> set[str]:
        """One pipelined EXISTS per key, sent in one write."""
        wanted = [check_key(key) for key in keys]
        if not wanted:
            return set()
        with self._translate("read", "<several keys>", writing=False):
            replies = _raise_refusal(self._send([("EXISTS", self._value_key(key)) for key in wanted]))
        return {key for key, reply in zip(wanted, replies, strict=True) if reply == 1}

    def exists(self, key: str) -> bool:
        """Whether `key` exists, without reading its value."""
        key = check_key(key)
        with self._translate("read", key, writing=False):
            return self._reply(("EXISTS", self._value_key(key))) == 1

    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        """Create `key` with its objects and hints in one script; when `key` exists, write nothing.

        The fence is compared inside the same script, so no lease change can fall between check and commit.
        """
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        fence_key, fence_value = fence or (key, b"")
        floor_key, floor_seq = (floor[0], str(floor[1])) if floor else (key, "")
        staged = len(data) >= STAGE_MIN
        stage_key = f"{self._namespace}:stage:{secrets.token_hex(8)}" if staged else self._value_key(key)
        keys = [self._index, self._value_key(key), self._value_key(fence_key), self._value_key(floor_key), stage_key]
        keys += [self._value_key(k) for k, _ in objects + hints]
        args: list[bytes | str | int] = [len(objects), key, b"" if staged else data, "1" if fence else "0"]
        args += [fence_value, floor_seq, "1" if staged else "0"]
        for member, value in objects + hints:
            args += [member, value]
        # Staged: the SET and the script in one write, so still one round trip.
        stage = [("SET", stage_key, data, "PX", STAGE_TTL_MS)] if staged else []
        with self._translate("commit", key):
            outcome = self._script("commit", keys, args, before=stage)
        if outcome == -1:
            raise FenceMismatch(fence_key)
        if outcome == -2:
            raise CorruptCheckpoint(floor_key, "floor is not a number")
        return outcome == 1

    def discard(self, keys: Iterable[str]) -> None:
        """Delete the keys and their index entries in one MULTI/EXEC (one round trip, all or none)."""
        members = [check_key(key) for key in keys]
        if not members:
            return
        with self._translate("discard", members[0]):
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(*(self._value_key(key) for key in members))
            pipe.zrem(self._index, *members)
            pipe.execute()

    def close(self) -> None:
        """Disconnect the connection pool; it reconnects on next use."""
        self._client.close()

    # --- helpers --------------------------------------------------------------------------------
    def _value_key(self, key: str) -> str:
        return f"{self._namespace}:v:{key}"

    def _script(self, name: str, keys: list[str], args: list, before: list[tuple] = ()) -> Any:
        """The reply of script `name`, run after the commands `before`, all in one round trip.

        EVALSHA, and when the server's script cache was flushed (NOSCRIPT), load the script and send it all
        again: a script that was not found ran nothing. The first error reply is raised: a refused staging SET
        (out of memory, say) before the script that then found no staging key.
        """
        script = self._scripts[name]
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        replies = self._send([*before, command])
        if isinstance(replies[-1], NoScriptError):
            self._reply(("SCRIPT", "LOAD", script.script))
            replies = self._send([*before, command])
        return _raise_refusal(replies)[-1]

    def _run(self, operation: str, key: str, script: str, args: list) -> bool:
        with self._translate(operation, key):
            return self._script(script, [self._value_key(key), self._index], args) == 1

    def _reply(self, command: tuple) -> Any:
        """The reply to one command (an error reply raised)."""
        return _raise_refusal(self._send([command]))[0]

    def _send(self, commands: list[tuple]) -> list[Any]:
        """Send `commands` in one write on a pooled connection and read their replies in order; a command the
        server refused comes back as its ResponseError, in its place.

        Underneath redis-py's command methods are these same connection calls; the layer above them (a retry
        wrapper, which is off here anyway, metrics hooks, reply callbacks) costs ~60 us a command on this
        machine, a fifth of a whole save.
        """
        pool = self._client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:  # the reply was read whole: the connection is in step
                    replies.append(exc)
            return replies
        except BaseException:
            conn.disconnect()  # a reply may be left half read: the connection must not be reused as it is
            raise
        finally:
            pool.release(conn)

    def _check_persistence(self) -> None:
        """Find what the server keeps on disk; warn when checkpoints would not survive a restart."""
        try:
            save = _config(self._client, "save")
            appendonly = _config(self._client, "appendonly")
            policy = _config(self._client, "maxmemory-policy")
        except redis.ResponseError:  # CONFIG is disabled or not permitted (managed Redis): trust the operator
            self.persistence = "unknown"
            self._client.ping()  # but do fail now if the server is not there at all
            return
        if appendonly == "yes":
            self.persistence = "aof"
        elif save.strip():
            self.persistence = "snapshots"
        else:
            self.persistence = "none"
        problems = []
        if self.persistence == "none":
            problems.append(
                'keeps nothing on disk (save "" and appendonly no): every checkpoint is lost when Redis restarts'
            )
        elif self.persistence == "snapshots":
            problems.append(
                "keeps only RDB snapshots (appendonly no): checkpoints saved since the last snapshot are lost "
                "when Redis stops"
            )
        if policy and policy != "noeviction":
            problems.append(f"may evict keys under memory pressure (maxmemory-policy {policy})")
        if problems:
            self.durable = False
            warnings.warn(
                SafepointWarning(
                    f"Redis store {self._display} is not durable: the server {'; and it '.join(problems)}. "
                    "Set `appendonly yes` and `maxmemory-policy noeviction`, or keep checkpoints that must "
                    "survive in PostgreSQL, S3 or a file store"
                ),
                stacklevel=4,
            )

    @contextmanager
    def _translate(self, operation: str, key: str | None, *, writing: bool = True) -> Iterator[None]:
        """Turn redis-py errors into StorageError naming the operation, the key, the store and what to do."""
        target = self._display if key is None else f"key {key!r} in {self._display}"
        try:
            yield
        except SafepointError:
            raise
        except redis.RedisError as exc:
            advice = _advice(exc)
            if writing:
                advice += "; if this was a save, the previous checkpoint is untouched"
            raise StorageError(f"cannot {operation} {target}: {exc}; {advice}") from exc


def _raise_refusal(replies: list[Any]) -> list[Any]:
    """The replies, unless one is an error reply: then the first of those is raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _config(client: redis.Redis, name: str) -> str:
    value = client.config_get(name).get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse_url(url: str) -> tuple[str, str]:
    """Split the safepoint option `prefix` off the URL; the rest goes to redis-py as it is."""
    parts = urlsplit(url)
    prefix = DEFAULT_PREFIX
    kept = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            prefix = value
        else:
            kept.append((name, value))
    if not _PREFIX_NAME.fullmatch(prefix):
        raise UnknownStoreURL(
            f"store URL {redacted(url)!r} has prefix {prefix!r}; use 1-100 characters of [A-Za-z0-9_.:-]"
        )
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote))), prefix


def _advice(exc: redis.RedisError) -> str:
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return "check the user name and password in the URL"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "check that the Redis server is running and reachable and that the URL is right, then retry"
    if text.startswith("OOM"):
        return "Redis reached maxmemory; free memory or raise maxmemory, then retry"
    if text.startswith("READONLY"):
        return "the server is a read-only replica; point the URL at the primary"
    if text.startswith("MISCONF"):
        return "Redis cannot write its snapshot to disk and refuses writes; check the server's disk and log"
    if text.startswith("NOPERM"):
        return "the Redis user lacks a permission (ACL); allow it EVALSHA, GET, EXISTS and ZRANGEBYLEX"
    return "check the Redis server log, then retry"
