"""Fault injection: strace makes write and fsync fail (ENOSPC, EIO) inside a real save in a child process.

The save must raise StorageError, and the previous head must still load with its exact state; a later
save from a healthy process must work and fsck must find nothing wrong.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import safepoint as sp

CHILD = Path(__file__).with_name("fault_child.py")

if shutil.which("strace") is None:
    if os.environ.get("CI") == "true":
        raise RuntimeError("strace is required for the fault-injection tests in CI; scripts/test.sh installs it")
    pytest.skip(
        "strace is not installed (apt-get install strace); fault-injection tests skipped", allow_module_level=True
    )

# (syscall, errno, which call fails, keyframe save?)
FILE_FAULTS = [
    ("write", "ENOSPC", 1, False),
    ("write", "EIO", 1, False),
    ("write", "ENOSPC", 1, True),
    ("write", "ENOSPC", 3, True),
    ("fsync", "EIO", 1, False),
    ("fsync", "ENOSPC", 1, False),
    ("fsync", "EIO", 2, False),
    ("fsync", "EIO", 2, True),
    ("linkat,link", "EIO", 1, False),
    ("linkat,link", "ENOSPC", 5, True),
    ("syncfs", "EIO", 1, True),
]
SQLITE_FAULTS = [
    ("pwrite64", "ENOSPC", 1, False),
    ("pwrite64", "EIO", 1, False),
    ("pwrite64", "ENOSPC", 3, True),
    ("fsync,fdatasync", "EIO", 1, False),
    ("fsync,fdatasync", "ENOSPC", 1, True),
]


def _prepare(url: str) -> sp.Checkpoint:
    store = sp.open(url)
    with store.session("victim", schema=dict) as s:
        s.state.update(n=0, log=[])
        for _ in range(3):
            s.state["n"] += 1
            s.state["log"].append(f"entry {s.state['n']}")
            head = s.save(step="healthy")
    return head


def _faulty_save(url: str, syscall: str, error: str, when: int, keyframe: bool) -> int:
    command = [
        "strace",
        "-f",
        "-qq",
        "-o",
        os.devnull,
        "-e",
        f"trace={syscall}",
        "-e",
        f"inject={syscall}:error={error}:when={when}",
        sys.executable,
        str(CHILD),
        url,
        "victim",
    ] + (["keyframe"] if keyframe else [])
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(command, env=env, timeout=60).returncode


def _check_after_fault(url: str, before: sp.Checkpoint, code: int) -> None:
    assert code == 3, f"expected the save to raise StorageError (exit 3), got exit {code}"
    store = sp.open(url)
    previous = store.load("victim", before.seq)
    assert previous.state["n"] == before.seq == 3
    assert previous.checksum == before.checksum
    head = store.load("victim")
    # The failure may come after the commit became visible (a failed directory fsync): then the new head
    # must be complete; otherwise the head is still the previous checkpoint.
    assert head.seq in (before.seq, before.seq + 1)
    assert head.state["n"] == head.seq
    assert store.fsck().ok
    with store.session("victim", schema=dict) as s:
        s.state["n"] = s.seq + 1
        s.state["log"].append("after the fault")
        assert s.save(step="recovered").seq == head.seq + 1
    assert store.load("victim").state["log"][-1] == "after the fault"


@pytest.mark.parametrize("syscall,error,when,keyframe", FILE_FAULTS)
def test_file_store_fault(tmp_path, syscall, error, when, keyframe):
    url = str(tmp_path / "store")
    before = _prepare(url)
    _check_after_fault(url, before, _faulty_save(url, syscall, error, when, keyframe))
    assert not list((tmp_path / "store").rglob(".tmp-*"))


@pytest.mark.parametrize("syscall,error,when,keyframe", SQLITE_FAULTS)
def test_sqlite_store_fault(tmp_path, syscall, error, when, keyframe):
    url = f"sqlite:///{tmp_path / 'agents.db'}"
    before = _prepare(url)
    _check_after_fault(url, before, _faulty_save(url, syscall, error, when, keyframe))


def test_injection_really_reaches_the_save(tmp_path):
    """Without a fault the same child saves (exit 4): the failures above come from the injection."""
    url = str(tmp_path / "store")
    _prepare(url)
    command = [sys.executable, str(CHILD), url, "victim"]
    assert subprocess.run(command, timeout=60).returncode == 4
    assert sp.open(url).load("victim").seq == 4
