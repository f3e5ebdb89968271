#!/usr/bin/env python3
"""What a checkpoint costs through MCP: `save_checkpoint` round trips over stdio and streamable HTTP against a
direct `session.save()`, on one directory store.

    python benchmarks/mcp_roundtrip.py                    # 300 saves each way (about a minute on 2 cores)
    python benchmarks/mcp_roundtrip.py --quick            # 40 each: a smoke test
    python benchmarks/mcp_roundtrip.py --markdown BENCHMARKS.md   # write (or replace) its section there

Four ways, each on a session of its own holding the same ~1 KiB agent state (`schema=dict`), each save
changing two values (`data.step` and a ~100-byte `data.note`):

1. `session.save()` in process, on a session held open with its lease: what a Python agent pays;
2. `save_checkpoint` through the real SDK client connected in process to the server (`mcp.Client(server)`):
   the tool's own work (checks, opening the session under its lease, the save, closing it) plus the SDK's
   dispatch, without a transport;
3. the same over stdio, to a `safepoint mcp` subprocess;
4. the same over streamable HTTP, to a `safepoint mcp --http` subprocess on loopback;
5. (diagnostic) the tool's write path called directly (`safepoint.mcp.writes.commit` with the same change):
   what the server does per save, without the SDK, so that 2 minus 5 is the SDK's in-process dispatch.

Every MCP save passes `expected_seq` (the seq the last one returned), as an agent should. The ways take turns
in rounds (each round a tenth of the saves, the first way rotating), so a change in the machine's load hits
all of them. Latency is the wall time of one call as the caller sees it, until the checkpoint is durable.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KIB, choose_tmp_base, describe_machine, md_table, median, ms, p90, parser, replace_section  # noqa: E402
from workloads import Words, make_agent_state  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.core.paths import assign  # noqa: E402
from safepoint.mcp import build_server, writes  # noqa: E402

WAYS = ("session.save() (direct)", "save_checkpoint, in process", "save_checkpoint over stdio",
        "save_checkpoint over HTTP", "the tool's write path alone (diagnostic)")  # fmt: skip
HEADING = "## MCP server: save_checkpoint round trip"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_http(store: Path, port: int) -> subprocess.Popen[bytes]:
    """A `safepoint mcp --http` process, once it accepts connections."""
    command = [sys.executable, "-m", "safepoint", "--store", str(store), "mcp", "--http", "--port", str(port)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"safepoint mcp --http did not start (exit status {process.poll()})")


def seed(store: Path, session_id: str, words: Words) -> None:
    with sp.open(store) as repo, repo.session(session_id, schema=dict) as session:
        session.state = make_agent_state(KIB, words)
        session.save(step="seed")


async def measure(store: Path, saves: int, rounds: int) -> tuple[dict[str, list[float]], int]:
    from mcp import Client, StdioServerParameters

    words = Words(random.Random(7))
    for index in range(len(WAYS)):
        seed(store, f"way-{index}", words)
    notes = [words.text(15) for _ in range(64)]
    times: dict[str, list[float]] = {way: [] for way in WAYS}
    port = free_port()
    http = start_http(store, port)
    try:
        async with AsyncExitStack() as stack:
            repo = stack.enter_context(sp.open(store))
            direct = stack.enter_context(repo.session("way-0", schema=dict))
            inproc = await stack.enter_async_context(Client(build_server(repo)))
            command = [sys.executable, "-m", "safepoint", "--store", str(store), "mcp"]
            stdio = await stack.enter_async_context(Client(StdioServerParameters(command=command[0], args=command[1:])))
            remote = await stack.enter_async_context(Client(f"http://127.0.0.1:{port}/mcp"))
            heads = {1: 1, 2: 1, 3: 1, 4: 1}

            def save_direct(n: int) -> Callable[[], Awaitable[None]]:
                async def go() -> None:
                    direct.state["data"]["step"] = n
                    direct.state["data"]["note"] = notes[n % len(notes)]
                    direct.save(step=f"step {n}")

                return go

            def save_mcp(index: int, client: Any, n: int) -> Callable[[], Awaitable[None]]:
                async def go() -> None:
                    result = await client.call_tool("save_checkpoint", {
                        "session": f"way-{index}", "expected_seq": heads[index], "step": f"step {n}",
                        "changes": [{"path": "data.step", "value": n},
                                    {"path": "data.note", "value": notes[n % len(notes)]}],
                    })  # fmt: skip
                    if result.is_error:
                        raise RuntimeError(result.content[0].text)
                    heads[index] = result.structured_content["seq"]

                return go

            def save_path(n: int) -> Callable[[], Awaitable[None]]:
                def build(head: Any) -> tuple[Any, dict[str, Any]]:
                    state = writes.base_state(head)
                    assign(state, "data.step", n, "way-4")
                    assign(state, "data.note", notes[n % len(notes)], "way-4")
                    return writes.checked_state("way-4", head, state), writes.base_runtime(head)

                async def go() -> None:
                    heads[4] = writes.commit(repo, "way-4", build, step=f"step {n}", expected_seq=heads[4])[0].seq

                return go

            clients = [None, inproc, stdio, remote, None]

            def way(index: int, n: int) -> Callable[[], Awaitable[None]]:
                if index == 0:
                    return save_direct(n)
                return save_path(n) if index == 4 else save_mcp(index, clients[index], n)

            for warm in range(5):  # imports, connections and caches, not measured
                for index in range(len(WAYS)):
                    await way(index, warm)()
            per_round, n = saves // rounds, 5
            for round_ in range(rounds):
                order = list(range(len(WAYS)))
                order = order[round_ % len(order) :] + order[: round_ % len(order)]
                for index in order:
                    for _ in range(per_round):
                        n += 1
                        call = way(index, n)
                        start = time.perf_counter()
                        await call()
                        times[WAYS[index]].append(time.perf_counter() - start)
        with sp.open(store) as repo:
            for index in range(len(WAYS)):  # every save landed, once, in one chain
                history = repo.history(f"way-{index}")
                assert [c.parent for c in history] == [None, *range(1, len(history))]
                assert len(history) == 1 + 5 + per_round * rounds, (index, len(history))
    finally:
        http.terminate()
        http.wait(30)
    return times, per_round * rounds


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__, quick="40 saves each way: a smoke test", tmp_dir=True)
    options.add_argument("--markdown", metavar="FILE", help=f"write (or replace) the '{HEADING}' section of FILE")
    args = options.parse_args(argv)
    saves, rounds = (40, 4) if args.quick else (300, 10)
    base = Path(tempfile.mkdtemp(prefix="safepoint-mcp-bench-", dir=choose_tmp_base(args.tmp_dir)))
    header = describe_machine(base, packages=("mcp", "uvicorn"))
    started = time.perf_counter()
    try:
        times, count = anyio.run(measure, base / "store", saves, rounds)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    elapsed = time.perf_counter() - started
    floor = median(times[WAYS[0]])
    rows = [
        [way, ms(median(values)), ms(p90(values)), ms(sum(values) / len(values)), f"{median(values) / floor:.1f}x"]
        for way, values in times.items()
    ]
    today = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    mode = "quick run: `--quick`" if args.quick else "full run"
    lines = [HEADING, "", f"{today} ({mode}): `python benchmarks/mcp_roundtrip.py`, {elapsed:.0f} s in all.", ""]
    lines += [f"- {line}" for line in header] + [""]
    lines += [
        f"{count} saves each way on a directory store, ~1 KiB agent state, two values changed per save; every MCP "
        "save carries `expected_seq`. Latency is one call's wall time as the caller sees it, until the "
        "checkpoint is durable.",
        "",
    ]
    lines += md_table(["way", "median", "p90", "mean", "median vs direct save"], rows) + [""]
    lines += [
        "Reading it: the diagnostic row is what the server does for one save (it loads the head and checks the "
        "input against it before anything is written, reads the lease, opens the session, which loads the head "
        "again, saves a delta and closes it); the in-process row adds the SDK's dispatch (argument and result "
        "validation, the structured result); stdio and HTTP add the transport, JSON-RPC framing and a second "
        "process. A Python agent keeps its session open and pays only the first row; an MCP client pays a "
        "whole round trip for every save, since every call stands alone so that other writers (another server "
        "process, a Python worker) can go between two of them.",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if args.markdown:
        replace_section(Path(args.markdown), HEADING, section)
        print(f"section written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
