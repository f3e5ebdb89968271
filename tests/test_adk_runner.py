"""A real ADK `Runner` with a fake model, one turn per process, on SafepointSessionService.

Two processes in turn run the same ADK session (directory and SQLite stores): the second one's model is sent the
first one's history, user-scoped state set by a tool in the first process is there in the second, `temp:` state
is never stored, and the CLI lists the session like a native one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from services import require_module

require_module("google.adk", "adk")

from typer.testing import CliRunner  # noqa: E402

from safepoint.cli import app  # noqa: E402
from safepoint.integrations.adk import SafepointSessionService  # noqa: E402

CHILD = Path(__file__).with_name("adk_child.py")


def child_env(**more: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), **more}


def turn(store: str, text: str) -> dict:
    done = subprocess.run([sys.executable, str(CHILD), store, text], capture_output=True, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_one_session_across_two_processes(kind, tmp_path):
    store = str(tmp_path / "store") if kind == "dir" else f"sqlite:///{tmp_path / 'store.db'}"
    first = turn(store, "add apples")
    assert first["final"] == "added; I was sent 3 contents"  # prompt, call, tool answer
    assert first["events"] == 4
    second = turn(store, "add pears")
    # Sent the first process's turn too: 3 contents of it plus this turn's 3, plus the first reply.
    assert second["final"] == "added; I was sent 7 contents"
    assert second["events"] == 8
    assert second["state"] == {"app:currency": "EUR", "last_item": "pears", "user:cart": ["apples", "pears"]}

    service = SafepointSessionService(store)
    session = asyncio.run(service.get_session(app_name="shop", user_id="ann", session_id="cart-1"))
    assert [e.author for e in session.events] == ["user", "shopper", "shopper", "shopper"] * 2
    assert asyncio.run(service.get_user_state(app_name="shop", user_id="ann")) == {"cart": ["apples", "pears"]}
    assert all("temp:scratch" not in (e.actions.state_delta or {}) for e in session.events)

    result = CliRunner().invoke(app, ["--store", store, "ls", "--json"])
    assert result.exit_code == 0, result.output
    listed = {s["id"]: s for s in json.loads(result.output)}
    assert listed["shop.ann.cart-1"]["agent"] == "adk" and listed["shop.ann.cart-1"]["status"] == "paused"
    shown = CliRunner().invoke(app, ["--store", store, "show", "shop.ann.cart-1", "--json"])
    assert json.loads(shown.output)["state"]["state"] == {"last_item": "pears"}
    history = CliRunner().invoke(app, ["--store", store, "history", "shop.ann.cart-1"])
    assert history.exit_code == 0 and "event shopper" in history.output
    diff = CliRunner().invoke(app, ["--store", store, "diff", "shop.ann.cart-1", "5", "9"])
    assert diff.exit_code == 0 and "state.events[4]" in diff.output
    fsck = CliRunner().invoke(app, ["--store", store, "fsck"])
    assert fsck.exit_code == 0 and "ok: no problems found" in fsck.output


def test_a_turn_killed_mid_tool_loses_nothing_committed(tmp_path):
    """SIGKILL while the tool runs: the events appended before it stay, the tool's state change (never
    returned) is not there, and the next process carries on with the same session."""
    store = str(tmp_path / "store")
    marker = tmp_path / "in-tool"
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), store, "add apples"],
        env=child_env(ADK_HANG_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the child never reached the tool"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    service = SafepointSessionService(store)
    left = asyncio.run(service.get_session(app_name="shop", user_id="ann", session_id="cart-1"))
    assert [(e.author, bool(e.get_function_calls())) for e in left.events] == [("user", False), ("shopper", True)]
    assert "user:cart" not in left.state and left.state["app:currency"] == "EUR"

    after = turn(store, "add pears")
    assert after["state"]["user:cart"] == ["pears"] and after["events"] == 6
