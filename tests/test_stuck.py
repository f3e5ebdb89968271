"""core.stuck: which sessions need a person, from their checkpoints' pace, their lease and their records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app
from safepoint.core.stuck import LeaseView, StuckPolicy, median_interval, stuck_reason
from safepoint.model import Checkpoint, SessionInfo

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def info_at(status: sp.Status, updated: datetime) -> SessionInfo:
    head = Checkpoint("s", 3, 2, updated, "step", status, schema_version=1, format=1, checksum="0" * 64)
    return SessionInfo("s", None, [], None, T0, head)


def reason(status: sp.Status, idle: float, *, every: float | None = None, **kwargs: object) -> str | None:
    last = T0 + timedelta(hours=10)
    times = [last - timedelta(seconds=every * n) for n in range(10)] if every else [last]
    defaults: dict[str, object] = {"in_doubt": [], "waiting_for": [], "lease": None, "policy": StuckPolicy()}
    return stuck_reason(
        info_at(status, last), recent_times=times, now=last + timedelta(seconds=idle), **{**defaults, **kwargs}
    )  # type: ignore[arg-type]


def test_the_threshold_follows_the_sessions_own_pace_with_a_floor() -> None:
    assert reason(sp.Status.RUNNING, 200, every=1) is None  # fast steps, but under the 5-minute floor
    assert "no checkpoint for 5m; its steps usually take 1s" in (reason(sp.Status.RUNNING, 301, every=1) or "")
    assert reason(sp.Status.RUNNING, 4 * 3600, every=3600) is None  # slow steps: 4 h idle is within 5x
    assert "no checkpoint for" in (reason(sp.Status.RUNNING, 6 * 3600, every=3600) or "")
    assert reason(sp.Status.RUNNING, 301) is not None  # one checkpoint: no pace known, the floor decides
    assert reason(sp.Status.COMPLETED, 10**6, every=1) is None and reason(sp.Status.FAILED, 10**6) is None
    custom = StuckPolicy(factor=2, floor=10)
    assert reason(sp.Status.RUNNING, 25, every=10, policy=custom) is not None
    assert reason(sp.Status.RUNNING, 15, every=10, policy=custom) is None


def test_a_gone_lease_holder_a_long_wait_and_an_effect_in_doubt() -> None:
    gone = LeaseView(owner="host:123:ab", expires_at=0.0, live=False)
    assert "lease holder host:123:ab is gone" in (reason(sp.Status.RUNNING, 1, every=60, lease=gone) or "")
    assert reason(sp.Status.RUNNING, 1, every=60, lease=LeaseView("h:1:a", 9e9, True)) is None
    assert reason(sp.Status.WAITING, 3600, waiting_for=["approve"]) is None
    assert reason(sp.Status.WAITING, 25 * 3600, waiting_for=["approve"]) == "waiting 25.0h for approve"
    assert "effect email:1 in doubt" in (reason(sp.Status.COMPLETED, 0, in_doubt=["email:1"]) or "")


def test_median_and_bad_policies() -> None:
    assert median_interval([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=3), T0 + timedelta(seconds=100)]) == 2
    assert median_interval([T0]) is None
    with pytest.raises(ValueError, match="StuckPolicy.floor must be a number >= 0"):
        StuckPolicy(floor=-1)
    with pytest.raises(ValueError, match="StuckPolicy.window must be at least 1"):
        StuckPolicy(window=0)


def test_a_killed_holder_makes_its_session_stuck_and_ls_stuck_shows_it(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = textwrap.dedent(f"""
        import os, signal, safepoint as sp
        s = sp.open({str(store)!r}).session("crashed", agent="worker-agent")
        s.save(step="one")
        s.save(step="two")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", child], env={**os.environ, "PYTHONPATH": os.getcwd()}, check=False)
    assert proc.returncode == -signal.SIGKILL
    repo = sp.open(store)
    with repo.session("quiet") as s:
        s.save(step="fine")  # running, lease released on close, just checkpointed: not stuck
    with repo.session("asking") as s:
        s.save(status=sp.Status.WAITING, step="ask")

    stuck = {summary.info.id: summary.stuck for summary in repo.summaries() if summary.stuck}
    assert list(stuck) == ["crashed"] and "is gone" in (stuck["crashed"] or "")
    assert repo.lease("crashed") is not None and not repo.lease("crashed").live  # type: ignore[union-attr]
    later = datetime.now(UTC) + timedelta(days=2)
    assert {x.info.id for x in repo.summaries(now=later) if x.stuck} == {"crashed", "quiet", "asking"}

    result = CliRunner().invoke(app, ["--store", str(store), "ls", "--stuck", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["id"] for row in rows] == ["crashed"] and "is gone" in rows[0]["stuck"]
    table = CliRunner().invoke(app, ["--store", str(store), "ls", "--stuck"], env={"COLUMNS": "200"})
    assert "crashed" in table.output and "quiet" not in table.output and "is gone" in table.output
