#!/usr/bin/env python3
"""How low a Redis save can go: the first checkpoint of a 1 KiB and a 64 KiB state, written four ways, same run.

    python benchmarks/redis_floor.py              # 300 saves each way and size (about a minute)
    python benchmarks/redis_floor.py --out F.md   # also write the section "## Redis: how low a save can go"

1. raw SET of the state's canonical JSON (the floor of `benchmarks/fleet.py`);
2. format floor: the checkpoint's canonical JSON, its sha256, one SET: what any save in safepoint's format does;
3. hand-inlined save: the record a first save writes (the state spliced in as an `orjson.Fragment`), sealed,
   committed as `RedisStore.commit` commits it (a staging SET from 8 KiB, then the commit script with the lease
   fence and the packed floor) on one pooled connection, and nothing else: no Session, Chain, argument checks or
   Checkpoint. It reaches into RedisStore's internals on purpose: it is the least safepoint's commit can cost;
4. `session.save()` on a fresh session opened with its lease, as in the fleet benchmark.

The four take turns going first. What 3 costs over 1 is the format and the commit's checks; what 4 costs over 3 is
safepoint's own Python around them. Server: `--redis URL` (default $SAFEPOINT_TEST_REDIS_URL or the local one).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KIB, describe_machine, md_table, parser, write_out  # noqa: E402
from fleet import Redis  # noqa: E402
from workloads import Words, make_agent_state  # noqa: E402

from safepoint.core import codec  # noqa: E402
from safepoint.model import FORMAT  # noqa: E402
from safepoint.stores.redis import STAGE_MIN, STAGE_TTL_MS  # noqa: E402

WAYS = ("raw SET", "format floor", "hand-inlined save", "session.save()")
#: The lease record the hand-inlined saves are fenced by.
FENCE = ("leases/inlined", b"lease record")


def inlined_save(target: Redis, session_id: str, state: dict) -> None:
    """A first checkpoint of `state`, written as RedisStore.commit writes one, with nothing around it."""
    store = target.repo.store
    snapshot = codec.dumps({"runtime": {}, "state": state})
    record = {
        "format": FORMAT,
        "session": session_id,
        "seq": 1,
        "parent": None,
        "created_at": datetime.now(UTC).isoformat(),
        "step": "first",
        "status": "running",
        "schema_version": 1,
        "meta": {"schema": "dict"},
        "lease": 1,
        "base": 1,
        "since": 0,
        "size": len(snapshot),
        "artifacts": [],
        "root": {"k": "v", "v": orjson.Fragment(snapshot)},
    }
    sealed = codec.seal(codec.dumps(record), compress=False)
    key = f"commits/{session_id}/{1:012d}"
    staged = len(sealed) >= STAGE_MIN
    stage_key = f"{store._namespace}:stage:{session_id}" if staged else store._value_key(key)
    keys = [store._index, store._value_key(key), store._value_key(FENCE[0])]
    keys += [store._value_key(f"packed/{session_id}"), stage_key]
    args = [0, key, b"" if staged else sealed, "1", FENCE[1], "1", "1" if staged else "0"]
    before = [("SET", stage_key, sealed, "PX", STAGE_TTL_MS)] if staged else []
    assert store._script("commit", keys, args, before=before) == 1


def check_inlined_record(target: Redis) -> None:
    """The hand-inlined save writes a record with the fields, state and checksum envelope of a real save."""
    state = make_agent_state(KIB, Words(random.Random(0)))
    with target.repo.session("check-real", schema=dict) as session:
        session.state.update(state)
        session.save(step="first")
    inlined_save(target, "check-inlined", state)
    store = target.repo.store
    real, inlined = (
        codec.load_sealed(store.get(f"commits/{sid}/{1:012d}"), sid) for sid in ("check-real", "check-inlined")
    )
    assert sorted(real) == sorted(inlined) and real["root"] == inlined["root"], (real, inlined)


def one_round(target: Redis, tag: str, state: dict, turn: int) -> dict[str, float]:
    """Each way once for one state, starting with way number `turn`: the seconds each took."""
    blob = codec.dumps(state)
    with target.repo.session(tag, schema=dict) as session:
        session.state.update(state)
        runs: dict[str, Callable[[], object]] = {
            "raw SET": lambda: target.raw_write(tag, blob),
            "format floor": lambda: target.format_floor_write(tag, state),
            "hand-inlined save": lambda: inlined_save(target, f"inlined-{tag}", state),
            "session.save()": lambda: session.save(step="first"),
        }
        took = {}
        for way in WAYS[turn:] + WAYS[:turn]:
            started = time.perf_counter()
            runs[way]()
            took[way] = time.perf_counter() - started
    return took


def measure(target: Redis, size: int, saves: int, warmup: int) -> dict[str, float]:
    words = Words(random.Random(size))
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    for i in range(saves + warmup):
        took = one_round(target, f"s{size}-{i}", make_agent_state(size, words), i % len(WAYS))
        if i >= warmup:
            for way, seconds in took.items():
                times[way].append(seconds)
    return {way: statistics.median(values) for way, values in times.items()}


def markdown(results: dict[int, dict[str, float]], header: list[str], saves: int, elapsed: float) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["## Redis: how low a save can go", "", f"{when}: `python benchmarks/redis_floor.py`, {elapsed:.0f} s.", ""]
    lines += [f"- {line}" for line in header] + [""]
    lines += [
        f"First checkpoint of a fresh session, median of {saves} each, the four ways taking turns "
        "(see the script's docstring). Each cell: time, and its ratio to the raw SET.",
        "",
    ]
    rows = []
    for size, medians in results.items():
        raw = medians["raw SET"]
        rows.append(
            [f"{size // KIB} KiB"] + [f"{medians[way] * 1e3:.2f} ms ({medians[way] / raw:.2f}x)" for way in WAYS]
        )
    lines += md_table(["state", *WAYS], rows) + [""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__, redis="", out="also write the Markdown section to FILE")
    options.add_argument("--saves", type=int, default=300, help="timed saves per way and size (default 300)")
    args = options.parse_args(argv)
    started = time.perf_counter()
    target = Redis(args.redis)
    try:
        version = target.raw.info("server")["redis_version"]
        header = describe_machine(None)  # the stores are on the Redis server
        header.append(f"Redis {version} at {args.redis.split('@')[-1]}, {target.describe}")
        target.repo.store.put(*FENCE)
        check_inlined_record(target)
        results = {size: measure(target, size, args.saves, warmup=10) for size in (KIB, 64 * KIB)}
    finally:
        target.close()
    section = markdown(results, header, args.saves, time.perf_counter() - started)
    print(section)
    write_out(section, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
