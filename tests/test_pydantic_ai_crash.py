"""A harnessed Pydantic AI agent SIGKILLed mid-run and resumed in another process, on a directory and SQLite.

The child (tests/pydantic_ai_child.py) runs a real `Agent.run` with `StepPersistence` on `SafepointStepStore` and
`DurableTools`; its model asks for `charge` and `ship` in one response. The test kills it with SIGKILL while
`ship` is mid-call, after `charge` finished. Then, in new processes: resuming without permission to re-run an
in-doubt call stops with ToolCallInDoubt and runs nothing; resuming with `ship` marked safe to retry finishes the
run, and `charge` is not run a second time (its recorded result is returned).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from services import require_module

require_module("pydantic_ai_harness", "pydantic-ai")

import safepoint as sp  # noqa: E402
from safepoint.integrations.pydantic_ai import SafepointStepStore  # noqa: E402

CHILD = Path(__file__).with_name("pydantic_ai_child.py")


def child(store: str, work: Path, phase: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), store, str(work), phase], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )


def finish(proc: subprocess.Popen) -> tuple[int, dict]:
    out, err = proc.communicate(timeout=120)
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-3000:]
    return proc.returncode, json.loads(lines[-1])


def effects(work: Path) -> list[str]:
    return (work / "effects").read_text().split()


@pytest.mark.parametrize("kind", ["dir", "sqlite"])
def test_killed_run_resumes_in_another_process_without_repeating_a_tool(kind, tmp_path):
    store = str(tmp_path / "store") if kind == "dir" else f"sqlite:///{tmp_path / 'store.db'}"
    work = tmp_path / "work"
    work.mkdir()

    proc = child(store, work, "crash")
    deadline = time.monotonic() + 60
    while not (work / "shipping").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the child never reached the ship tool"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert effects(work) == ["charge"]

    # What the killed process left: a run still 'running', ship started and never finished, charge done.
    steps = SafepointStepStore(store)
    (crashed,) = steps.list_runs_sync(conversation_id="order-7")
    assert [e.tool_name for e in steps.list_unresolved_tool_effects_sync(crashed.run_id)] == ["ship"]
    assert steps.get_tool_effect_sync(crashed.run_id, "c1").status == "completed"
    summary = sp.open(store).summary(crashed.run_id)
    assert str(summary.info.status) == "running" and len(summary.in_doubt) == 1
    assert summary.stuck  # `safepoint ls --stuck` lists it: an effect in doubt needs a person

    if kind == "dir":  # in doubt and not known to be safe: nothing runs, the error says what to do
        code, answer = finish(child(store, work, "strict"))
        assert code == 3 and "ship" in answer["in_doubt"] and "resolve(" in answer["in_doubt"]
        assert effects(work) == ["charge"]

    code, answer = finish(child(store, work, "resume"))
    assert code == 0, answer
    assert answer["output"] == "done after charge, ship" and answer["unresolved"] == ["ship"]
    assert effects(work) == ["charge", "ship"]  # charge ran once, in the killed process

    runs = steps.list_runs_sync(conversation_id="order-7")
    assert runs[0].run_id == crashed.run_id and len(runs) == (3 if kind == "dir" else 2)
    resumed = sp.open(store).summary(runs[-1].run_id)
    assert str(resumed.info.status) == "completed" and resumed.in_doubt == [] and resumed.stuck is None
