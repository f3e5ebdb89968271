"""Stored data never chooses code to run: `resume`, a worker, replays and edits import nothing a session names.

A store, a shared database or an imported bundle may have been written by someone else. Each test plants the
name of a module, `evil`, that creates a marker file when imported and sits where Python would find it (the
working directory); before the fix `safepoint resume` imported it from the session's recorded entry point, a
replayed step imported the module its record named, and `safepoint set` imported the schema's module.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.errors import AgentNotRegistered

EVIL = textwrap.dedent(
    """
    import pathlib
    pathlib.Path(__file__).with_name("IMPORTED").write_text("code from stored data ran")

    import safepoint as sp
    from pydantic import BaseModel

    class Model(BaseModel):
        x: int = 0

    @sp.agent("evil")
    def run(s):
        return "evil ran"
    """
)

GOOD = textwrap.dedent(
    """
    import safepoint as sp

    @sp.agent("good")
    def good(s):
        return s.step("one", lambda: {"x": 1})
    """
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "evil.py").write_text(EVIL)
    (tmp_path / "good_agents.py").write_text(GOOD)
    return tmp_path


def marker(workdir: Path) -> Path:
    return workdir / "IMPORTED"


def cli(workdir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safepoint", "--store", str(workdir / "store"), *args],
        cwd=workdir,  # `evil` is importable from here, as `python -m` puts the working directory on sys.path
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def plant_session(repo: sp.Repository, session_id: str, agent: str, **runtime: object) -> None:
    """A running session nobody holds, recording `agent` as written by `sp.run` (what a crashed run leaves)."""
    with repo.session(session_id, agent=agent) as s:
        s.runtime["agent"] = {"name": agent, "entrypoint": f"{agent}:run"}
        s.runtime.update(runtime)
        s.save(step="queued")


def test_resume_refuses_an_agent_not_registered_and_imports_nothing(workdir: Path) -> None:
    plant_session(sp.open(workdir / "store"), "s1", "evil")
    done = cli(workdir, "resume", "s1")
    assert not marker(workdir).exists(), "resume imported the module the session named"
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("error: no agent named 'evil' is registered") and "--agents evil" in line
    assert "Traceback" not in done.stderr


def test_resume_runs_the_agent_when_its_module_is_given(workdir: Path) -> None:
    """The explicit way: naming the module with --agents is the user's choice, not the data's."""
    plant_session(sp.open(workdir / "store"), "s1", "evil")
    done = cli(workdir, "resume", "s1", "--agents", "evil")
    assert done.returncode == 0, done.stderr
    assert marker(workdir).exists()


def test_find_agent_never_imports_the_recorded_entry_point(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safepoint.agents.runner import find_agent

    monkeypatch.syspath_prepend(str(workdir))
    with pytest.raises(AgentNotRegistered, match="never code a session names"):
        find_agent("evil", "evil:run")
    with pytest.raises(AgentNotRegistered):
        find_agent("good", "os:system", agents={})
    assert not marker(workdir).exists() and "evil" not in sys.modules


def test_a_worker_runs_registered_agents_only_and_logs_the_rest(workdir: Path) -> None:
    repo = sp.open(workdir / "store")
    plant_session(repo, "foreign", "evil")
    plant_session(repo, "foreign-too", "evil")
    # A registered agent whose recorded step names a class in `evil`: the replay must not import it either.
    plant_session(
        repo, "replayed", "good", steps={"one": {"status": "done", "output": {"x": 1}, "model": "evil:Model"}}
    )
    done = cli(workdir, "worker", "--agents", "good_agents", "--poll", "0.1", "--for", "3")
    assert done.returncode == 0, done.stderr
    assert not marker(workdir).exists(), "the worker imported a module named by stored data"
    skipped = [line for line in done.stderr.splitlines() if "skipping" in line]
    assert len(skipped) == 1, done.stderr  # once per agent name, not per session and pass
    assert "session of agent 'evil'" in skipped[0] and "no agent named 'evil' is registered" in skipped[0]
    assert repo.load("replayed").status == sp.Status.COMPLETED
    assert repo.load("replayed").runtime["result"] == {"x": 1}  # the recorded output, as data
    for session_id in ("foreign", "foreign-too"):
        assert repo.load(session_id).status == sp.Status.RUNNING and repo.load(session_id).step == "queued"


def test_an_edit_does_not_import_the_schema_module_a_checkpoint_names(workdir: Path) -> None:
    class Model(sp.AgentState):
        pass

    Model.__module__, Model.__qualname__ = "evil", "Model"  # recorded as the schema `evil.Model`
    repo = sp.open(workdir / "store")
    with repo.session("edited", schema=Model) as s:
        s.save(step="one")
    assert repo.load("edited").meta["schema"] == "evil.Model"
    done = cli(workdir, "set", "edited", "data.x=1")
    assert done.returncode == 0, done.stderr
    assert not marker(workdir).exists(), "the edit imported the schema module the checkpoint named"
    assert repo.load("edited").state["data"]["x"] == 1
