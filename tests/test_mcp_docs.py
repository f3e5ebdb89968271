"""docs/mcp.md's Python snippets run, and its mounting recipe serves MCP at `/mcp` inside another app."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from mcp import Client
from mcp_helpers import free_port, ok, run

import safepoint as sp

DOC = Path(__file__).resolve().parents[1] / "docs" / "mcp.md"


def test_mcp_doc_snippets_run_and_the_mounted_app_serves(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2
    namespace: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec", dont_inherit=True), namespace)  # noqa: S102 - our own documentation
    assert capsys.readouterr().out == "1\n"
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(namespace["app"], host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)

        async def scenario() -> dict[str, Any]:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                await ok(client, "save_checkpoint", session="mounted", state={"data": {"via": "mount"}})
                return await ok(client, "load_checkpoint", session="mounted")

        loaded = run(scenario)
    finally:
        server.should_exit = True
        thread.join(10)
    assert loaded["state"]["data"] == {"via": "mount"}
    with sp.open("sqlite:///agents.db") as repo:  # the store the recipe names, in this test's directory
        assert repo.load("mounted").state["data"] == {"via": "mount"}
