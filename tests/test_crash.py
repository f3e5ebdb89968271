"""Crash torture of the embedded stores: a child saves in a loop, we SIGKILL it at random moments (200 times).

After every kill the store must pass fsck, and its head must be at least the last seq the child was told
was durable, with exactly the state that was saved at that seq. The loop lives in `crash_torture.py`; the
fleet stores run it from their own test files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from crash_torture import torture

KILLS = 200


@pytest.mark.parametrize("backend", ["files", "sqlite"])
def test_sigkill_at_random_moments_loses_nothing_acknowledged(backend: str, tmp_path: Path) -> None:
    def fresh_url(kill: int) -> str:
        where = tmp_path / f"store{kill}"
        return str(where) if backend == "files" else f"sqlite:///{where}.db"

    def no_temp_files(url: str) -> None:
        if backend == "files":
            assert not list(Path(url).rglob(".tmp-*")), "fsck must sweep temp files of dead writers"

    acknowledged = torture(fresh_url, kills=KILLS, check=no_temp_files)
    assert acknowledged > KILLS, "the child should get several saves in between kills"
