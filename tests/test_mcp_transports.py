"""`safepoint mcp` as a real server process, driven by the real SDK client over stdio and streamable HTTP:
a crash (SIGKILL) and resume with nothing lost, two server processes writing one session for 20 s with no
acknowledged save lost, bearer-token auth, and the refusal to listen beyond loopback without a token."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp_helpers import call, error_text, free_port, http_client, ok, run, server_env, start_http, stop
from mcp_types import ElicitResult

import safepoint as sp
from safepoint.mcp import WRITING_TOOLS

STEPS = ["plan", "search", "read", "outline", "draft", "review"]


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def stdio(store: str, *args: str) -> Client:
    command = [sys.executable, "-m", "safepoint", "--store", store, "mcp", *args]
    return Client(StdioServerParameters(command=command[0], args=command[1:], env=server_env()))


async def agent_step(client: Client, session: str, seq: int, step: str) -> int:
    """One step of a scripted agent: record it done, take it off `remaining`; returns the new head."""
    head = await ok(client, "load_checkpoint", session=session)
    assert head["seq"] == seq  # this agent is the only writer: it resumes exactly where it was
    mission = head["state"]["mission"]
    saved = await ok(
        client, "save_checkpoint", session=session, expected_seq=seq, step=step,
        status="completed" if step == STEPS[-1] else "running",
        changes=[
            {"path": "mission.done", "value": [*mission["done"], step]},
            {"path": "mission.remaining", "value": [s for s in mission["remaining"] if s != step]},
            {"path": f"data.{step}", "value": f"result of {step}"},
        ],
    )  # fmt: skip
    return saved["seq"]


def test_stdio_server_process_saves_and_loads(store: str) -> None:
    async def scenario() -> None:
        async with stdio(store, "--max-payload", "5000") as client:
            too_big = await call(client, "save_checkpoint", session="s1", state={"data": {"blob": "x" * 6000}})
            assert too_big.is_error and "over this server's limit of 5,000 bytes" in error_text(too_big)
            created = await ok(
                client, "save_checkpoint", session="s1", agent="remote", expected_seq=0, step="plan",
                state={"mission": {"goal": "g", "remaining": STEPS}},
            )  # fmt: skip
            seq = created["seq"]
            for step in STEPS[:3]:
                seq = await agent_step(client, "s1", seq, step)
            assert seq == 4

    run(scenario)
    with sp.open(store) as repo:
        assert repo.load("s1").state["mission"]["done"] == STEPS[:3]
        assert repo.info("s1").agent == "remote"


def test_stdio_read_only_and_allow_list_flags(store: str) -> None:
    with sp.open(store) as repo:
        for name in ("team-a-1", "team-b-1"):
            with repo.session(name) as s:
                s.save(step="start")

    async def scenario() -> None:
        async with stdio(store, "--read-only", "--sessions", "team-a-*") as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "load_checkpoint" in names and not names & set(WRITING_TOOLS)
            assert [s["id"] for s in (await ok(client, "list_sessions"))["sessions"]] == ["team-a-1"]
            refused = await call(client, "load_checkpoint", session="team-b-1")
            assert refused.is_error and "outside this server's allow-list ('team-a-*')" in error_text(refused)

    run(scenario)


def test_stdio_legacy_protocol_client_and_elicitation(store: str) -> None:
    """A client on the handshake-era protocol (2025-11-25, what most MCP clients speak today) works too, and
    its user answers a waiting session's question through a server-to-client elicitation request."""
    with sp.open(store) as repo, repo.session("waits") as s, pytest.raises(sp.Suspended):
        s.wait_for("approve", prompt="Ship it?", schema=bool)

    async def yes(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"answer": True})

    async def scenario() -> None:
        command = [sys.executable, "-m", "safepoint", "--store", store, "mcp"]
        params = StdioServerParameters(command=command[0], args=command[1:], env=server_env())
        async with Client(params, mode="legacy", elicitation_callback=yes) as client:
            assert client.protocol_version == "2025-11-25"
            asked = await ok(client, "ask_user", session="waits", name="approve")
            assert (asked["action"], asked["answer"], asked["ready"]) == ("accept", True, True)

    run(scenario)
    with sp.open(store) as repo:
        assert repo.pending_inputs("waits") == {}
        assert repo.load("waits").meta["by"] == "mcp-elicitation"


def test_http_server_killed_mid_run_and_the_agent_resumes_with_nothing_lost(store: str) -> None:
    port = free_port()
    first = start_http(store, port)
    acknowledged: list[tuple[int, str]] = []  # (seq, step) of every save the server confirmed
    crashed: list[Exception] = []

    async def before_crash() -> None:
        try:
            async with http_client(port) as client:
                seq = (await ok(
                    client, "save_checkpoint", session="job", expected_seq=0, step="start",
                    state={"mission": {"goal": "report", "remaining": STEPS}},
                ))["seq"]  # fmt: skip
                acknowledged.append((seq, "start"))
                for step in STEPS[:3]:
                    seq = await agent_step(client, "job", seq, step)
                    acknowledged.append((seq, step))
                # Progress notes as fast as the server takes them; after the third, SIGKILL lands a few ms
                # later, in the middle of a save (no shutdown, no flush: the connection just drops).
                with anyio.fail_after(120):
                    for tick in range(100_000):
                        if tick == 3:
                            threading.Timer(random.uniform(0.0, 0.02), first.kill).start()
                        saved = await ok(
                            client, "save_checkpoint", session="job", expected_seq=seq, step=f"tick {tick}",
                            changes=[{"path": "data.tick", "value": tick}],
                        )  # fmt: skip
                        seq = saved["seq"]
                        acknowledged.append((seq, f"tick {tick}"))
        except Exception as exc:  # noqa: BLE001 - whatever the transport raises: the server is gone
            crashed.append(exc)

    try:
        run(before_crash)
    finally:
        stop(first)
    assert crashed and first.returncode == -9  # the client saw its server die mid-burst
    assert len(acknowledged) >= 7  # the start, three steps and three ticks were confirmed before the kill
    second = start_http(store, port)
    try:

        async def after_restart() -> dict[str, Any]:
            async with http_client(port) as client:
                head = await ok(client, "load_checkpoint", session="job")
                # Everything confirmed is there; at most the one save in flight landed unconfirmed.
                assert head["seq"] in (acknowledged[-1][0], acknowledged[-1][0] + 1)
                assert head["state"]["mission"]["done"] == STEPS[:3]
                assert head["state"]["mission"]["remaining"] == STEPS[3:]
                seq = head["seq"]
                for step in head["state"]["mission"]["remaining"]:
                    seq = await agent_step(client, "job", seq, step)
                    acknowledged.append((seq, step))
                return await ok(client, "load_checkpoint", session="job")

        final = run(after_restart)
    finally:
        stop(second)
    assert final["status"] == "completed" and final["state"]["mission"]["done"] == STEPS
    assert all(final["state"]["data"][step] == f"result of {step}" for step in STEPS)
    with sp.open(store) as repo:
        history = {c.seq: c for c in repo.history("job")}
        assert all(history[seq].step == step for seq, step in acknowledged)  # no confirmed save lost
        assert [c.parent for c in history.values()] == [None, *range(1, len(history))]  # one chain
        assert len(history) - len(acknowledged) in (0, 1)
        assert repo.fsck().ok


def test_http_bearer_token(store: str) -> None:
    port = free_port()
    server = start_http(store, port, env=server_env(SAFEPOINT_MCP_TOKEN="s3cret-token"))
    url = f"http://127.0.0.1:{port}/mcp"
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    try:
        none = httpx2.post(url, json=request, headers=headers)
        wrong = httpx2.post(url, json=request, headers={**headers, "Authorization": "Bearer guess"})
        assert (none.status_code, wrong.status_code) == (401, 401)
        assert "missing bearer token" in none.json()["error_description"]
        assert "wrong bearer token" in wrong.json()["error_description"]
        assert none.headers["www-authenticate"].startswith("Bearer")
        other_path = httpx2.get(f"http://127.0.0.1:{port}/anything")
        assert other_path.status_code == 401  # every request, not only the MCP endpoint
        authed = {**headers, "Authorization": "Bearer s3cret-token"}
        rebound = httpx2.post(url, json=request, headers={**authed, "Host": "attacker.example"})
        assert rebound.status_code == 421  # the SDK's DNS-rebinding protection, on for a loopback server

        async def with_token() -> None:
            async with http_client(port, token="s3cret-token") as client:
                assert {t.name for t in (await client.list_tools()).tools} >= {"save_checkpoint", "load_checkpoint"}
                await ok(client, "save_checkpoint", session="t1", state={}, step="authed")

        run(with_token)

        async def without_token() -> None:
            async with http_client(port) as client:
                await client.list_tools()

        with pytest.raises(Exception):  # noqa: B017 - the SDK client cannot even connect
            run(without_token)
    finally:
        stop(server)
    with sp.open(store) as repo:
        assert [i.id for i in repo.sessions()] == ["t1"]


def test_http_refuses_a_non_loopback_address_without_a_token(store: str) -> None:
    port = free_port()
    command = [sys.executable, "-m", "safepoint", "--store", store, "mcp", "--http", "--host", "0.0.0.0"]
    refused = subprocess.run(
        [*command, "--port", str(port)],
        capture_output=True, text=True, env=server_env(), timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "refusing to serve MCP on 0.0.0.0" in refused.stderr and "--token" in refused.stderr
    assert "Traceback" not in refused.stderr
    with socket.socket() as taken:  # a port in use: one line too, not uvicorn's log and exit status 3
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = subprocess.run(
            [*command[:-2], "--port", str(taken.getsockname()[1])], capture_output=True, text=True,
            env=server_env(), timeout=60,
        )  # fmt: skip
    assert busy.returncode == 1 and busy.stderr.startswith("error: cannot listen on 127.0.0.1:"), busy.stderr
    server = start_http(store, port, "--host", "0.0.0.0", "--token", "tok")  # with a token it serves
    try:

        async def scenario() -> None:
            async with http_client(port, token="tok") as client:
                assert (await ok(client, "list_sessions"))["sessions"] == []

        run(scenario)
    finally:
        stop(server)


def test_two_server_processes_20s_of_concurrent_saves_lose_no_acknowledged_save(store: str) -> None:
    with sp.open(store) as repo, repo.session("shared") as s:
        s.save(step="seed")
    ports = [free_port(), free_port()]
    servers = [start_http(store, port) for port in ports]
    acknowledged: dict[str, list[tuple[int, dict[str, Any]]]] = {"a": [], "b": []}
    conflicts = {"a": 0, "b": 0}

    async def writer(name: str, port: int, seconds: float) -> None:
        async with http_client(port) as client:
            seq = (await ok(client, "load_checkpoint", session="shared"))["seq"]
            deadline, n = time.monotonic() + seconds, 0
            while time.monotonic() < deadline:
                n += 1
                value = {"by": name, "n": n}
                result = await call(
                    client, "save_checkpoint", session="shared", expected_seq=seq, step=f"{name}-{n}",
                    changes=[{"path": "data.last", "value": value}, {"path": f"data.count_{name}", "value": n}],
                )  # fmt: skip
                if result.is_error:
                    assert "not at expected_seq" in error_text(result), error_text(result)
                    conflicts[name] += 1
                    seq = (await ok(client, "load_checkpoint", session="shared"))["seq"]
                else:
                    seq = result.structured_content["seq"]
                    acknowledged[name].append((seq, value))

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(writer, "a", ports[0], 20.0)
            group.start_soon(writer, "b", ports[1], 20.0)

    try:
        run(scenario)
    finally:
        for server in servers:
            stop(server)
    assert acknowledged["a"] and acknowledged["b"], (acknowledged, conflicts)
    everything = sorted(acknowledged["a"] + acknowledged["b"], key=lambda item: item[0])
    with sp.open(store) as repo:
        history = repo.history("shared")
        # One chain: 1, 2, 3 ... each the child of the one before; every checkpoint but the seed acknowledged once.
        assert [(c.seq, c.parent) for c in history] == [(1, None)] + [(seq, seq - 1) for seq, _ in everything]
        for seq, value in everything:
            assert repo.load("shared", seq).state["data"]["last"] == value
    print(f"\nacknowledged a={len(acknowledged['a'])} b={len(acknowledged['b'])}, conflicts {conflicts}")
