"""The MCP server mounted in the dashboard's app at /mcp: one server, the same sessions on both."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from services import require_module

import safepoint as sp

require_module("starlette", "dashboard")
require_module("mcp", "mcp")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from mcp import Client  # noqa: E402
from mcp_helpers import free_port, ok, run, server_env, stop  # noqa: E402

from safepoint.dashboard import MCP_PATH, Settings, create_app  # noqa: E402
from safepoint.mcp import http_app  # noqa: E402


def test_mcp_mounted_in_the_dashboard_saves_what_the_pages_show(tmp_path: Path) -> None:
    repo = sp.open(tmp_path / "store")
    app = create_app(Settings(), repo=repo, mounts={MCP_PATH: http_app(repo, path="/")})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "the dashboard did not start"

        async def scenario() -> dict[str, Any]:
            async with Client(f"http://127.0.0.1:{port}{MCP_PATH}") as client:
                await ok(client, "save_checkpoint", session="via-mcp", state={"data": {"note": "saved over MCP"}})
                return await ok(client, "load_checkpoint", session="via-mcp")

        loaded = run(scenario)
        page = httpx.get(f"http://127.0.0.1:{port}/sessions/via-mcp", timeout=10)
    finally:
        server.should_exit = True
        thread.join(10)
    assert loaded["state"]["data"] == {"note": "saved over MCP"}
    assert page.status_code == 200 and "saved over MCP" in page.text
    assert repo.load("via-mcp").state["data"] == {"note": "saved over MCP"}


def test_safepoint_dashboard_mcp_serves_both_from_one_process(tmp_path: Path) -> None:
    store, port = str(tmp_path / "store"), free_port()
    log = tempfile.TemporaryFile()
    command = [sys.executable, "-m", "safepoint", "--store", store, "dashboard", "--mcp", "--port", str(port)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=server_env())
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"safepoint dashboard exited {process.returncode}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "safepoint dashboard --mcp did not start within 60 s"
                time.sleep(0.1)

        async def scenario() -> dict[str, Any]:
            async with Client(f"http://127.0.0.1:{port}{MCP_PATH}") as client:
                await ok(client, "save_checkpoint", session="cli-mcp", state={"data": {"n": 1}})
                return await ok(client, "list_sessions")

        listed = run(scenario)
        page = httpx.get(f"http://127.0.0.1:{port}/sessions/cli-mcp", timeout=10)
    finally:
        stop(process)
        log.close()
    assert "cli-mcp" in str(listed) and page.status_code == 200
