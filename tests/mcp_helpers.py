"""What the MCP tests share: running a client scenario, calling tools, snapshotting a directory store, and
starting `safepoint mcp` server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

ROOT = Path(__file__).resolve().parents[1]


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(scenario)


async def call(client: Client, tool: str, **arguments: Any) -> CallToolResult:
    return await client.call_tool(tool, arguments)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured result."""
    result = await call(client, tool, **arguments)
    assert not result.is_error, f"{tool} failed: {error_text(result)}"
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of a directory store, by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEPOINT_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def start_http(store: str, port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A `safepoint mcp --http` process; returns once it accepts connections. Its stderr goes to a file (a pipe
    nobody reads could fill up and stall it)."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [sys.executable, "-m", "safepoint", "--store", store, "mcp", "--http", "--port", str(port), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=env or server_env(),
    )
    process.log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"safepoint mcp --http exited {process.returncode}: {log.read().decode()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError("safepoint mcp --http did not start listening within 60 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log = getattr(process, "log", None)
    if log is not None:
        log.close()


def http_client(port: int, token: str | None = None) -> Client:
    """A real MCP client over streamable HTTP, sending the bearer token when given."""
    url = f"http://127.0.0.1:{port}/mcp"
    if token is None:
        return Client(url)
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(30, read=300))
    return Client(streamable_http_client(url, http_client=http))
