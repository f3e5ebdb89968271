"""The directory and SQLite stores create files 0600 and directories 0700 by default, whatever the umask.

Before the fix every file was 0644 and every directory 0755 under the usual umask 022 (0666/0777 under umask
000): every user of the machine could read every state, answer and artifact. The workload runs in a child
process (the umask is per process) with a permissive umask 000, then every path under the store is stat-ed.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from safepoint.stores import UnknownStoreURL, open_store
from safepoint.stores.files import FileStore
from safepoint.stores.modes import InvalidMode, dir_mode, file_mode
from safepoint.stores.sqlite import SQLiteStore

# Sessions with forks, enough checkpoints to be packed, artifacts, leases, fsck and gc; then the mode of every
# path under the folder given, listed while the store is still open (SQLite's -wal and -shm exist then).
WORKLOAD = textwrap.dedent(
    """
    import json, os, stat, sys
    os.umask(int(sys.argv[3], 8))
    import safepoint as sp

    url, top = sys.argv[1], sys.argv[2]
    repo = sp.open(url)
    for n in range(3):
        with repo.session(f"s{n}") as s:
            s.put_artifact("notes.txt", os.urandom(5000 + n))
            for step in range(70):  # past two keyframe cycles: records are packed
                s.state.data["step"] = step
                s.state.data["text"] = "x" * 300 * (step % 5)
                s.save(step=f"step {step}")
        repo.fork(f"s{n}", at=10)
    repo.fsck()
    repo.gc()
    with repo.session("open-one") as s:  # a live lease while the listing is made
        s.save()
        modes = {}
        for folder, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(folder, name)
                modes[os.path.relpath(path, top)] = stat.S_IMODE(os.lstat(path).st_mode)
    print(json.dumps(modes))
    """
)


def workload_modes(url: str, top: Path, umask: int) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", WORKLOAD, url, str(top), f"{umask:o}"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def wrong(modes: dict[str, int], top: Path, file: int, directory: int) -> dict[str, str]:
    return {
        path: oct(mode)
        for path, mode in modes.items()
        if mode != (directory if (top / path).is_dir() else file) and (top / path).exists()
    }


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_a_directory_store_is_private_to_its_owner(tmp_path: Path, umask: int) -> None:
    modes = workload_modes(str(tmp_path / "store"), tmp_path, umask)
    assert any(path.startswith("store/packs") for path in modes), sorted(modes)[:20]  # packed, as intended
    assert any(path.startswith("store/artifacts/") for path in modes)
    assert any("leases" in path or "lease" in path for path in modes), sorted(modes)
    assert len(modes) > 50
    assert wrong(modes, tmp_path, 0o600, 0o700) == {}


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_an_sqlite_store_and_its_wal_are_private_to_their_owner(tmp_path: Path, umask: int) -> None:
    modes = workload_modes(f"sqlite:///{tmp_path}/data/agents.db", tmp_path, umask)
    assert {"data", "data/agents.db", "data/agents.db-wal", "data/agents.db-shm"} <= set(modes), modes
    assert wrong(modes, tmp_path, 0o600, 0o700) == {}


def test_mode_option_in_the_url_asks_for_more(tmp_path: Path) -> None:
    modes = workload_modes(f"file://{tmp_path}/store?mode=0640", tmp_path, 0o000)
    assert wrong(modes, tmp_path, 0o640, 0o750) == {}
    modes = workload_modes(f"sqlite:///{tmp_path}/db/a.db?mode=640", tmp_path, 0o000)
    assert modes["db/a.db"] == modes["db/a.db-wal"] == 0o640 and modes["db"] == 0o750


def test_mode_options_are_checked() -> None:
    assert file_mode(None) == 0o600 and file_mode("0660") == 0o660 and file_mode(0o640) == 0o640
    assert dir_mode(0o600) == 0o700 and dir_mode(0o640) == 0o750 and dir_mode(0o666) == 0o777
    for bad in ("rw", "0400", 0o1777, "9", True, -1):
        with pytest.raises(InvalidMode, match="mode="):
            file_mode(bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownStoreURL, match="unknown option"):
        open_store("file:///tmp/x?mdoe=0600")
    assert isinstance(open_store("sqlite:///x.db?mode=0640"), SQLiteStore)
    assert open_store("sqlite:///x.db?mode=0640").path.name == "x.db"  # type: ignore[attr-defined]
    assert FileStore("/tmp/x", mode="0640").mode == 0o640


def test_an_existing_store_keeps_its_modes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)
    store = FileStore(root)
    store.put("k", b"v")
    assert stat.S_IMODE(root.stat().st_mode) == 0o755  # not changed behind the user's back
    assert stat.S_IMODE((root / "k").stat().st_mode) == 0o600
