"""A save that fails with StorageError leaves the store consistent, and the session knows where it stands."""

from __future__ import annotations

import pytest

import safepoint as sp
from safepoint.stores import MemoryStore


class FlakyStore(MemoryStore):
    """Fails the next commit, either before anything is written or after the commit key landed."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: str | None = None

    def commit(self, objects, key, data, hints=(), fence=None, floor=None):
        mode, self.fail = self.fail, None
        if mode == "before":
            raise sp.StorageError(f"injected failure before writing {key}")
        won = super().commit(objects, key, data, hints, fence, floor)
        if mode == "after":
            raise sp.StorageError(f"injected failure after writing {key}")
        return won


@pytest.fixture
def flaky():
    return FlakyStore()


def _session(flaky, lease=True):
    store = sp.open(flaky)
    s = store.session("job", schema=dict, lease=lease)
    s.state["n"] = 1
    s.save(step="one")
    return store, s


def test_failure_before_commit_keeps_previous_head_and_retries_same_seq(flaky):
    store, s = _session(flaky)
    s.state["n"] = 2
    flaky.fail = "before"
    with pytest.raises(sp.StorageError):
        s.save(step="two")
    assert store.load("job").seq == 1
    assert store.load("job").state == {"n": 1}
    assert s.save(step="two").seq == 2
    assert store.load("job").state == {"n": 2}


def test_failure_after_commit_landed_continues_after_it(flaky):
    store, s = _session(flaky)
    s.state["n"] = 2
    flaky.fail = "after"
    with pytest.raises(sp.StorageError):
        s.save(step="two")
    assert store.load("job").state == {"n": 2}  # visible, though the writer was told it failed
    s.state["n"] = 3
    checkpoint = s.save(step="three")
    assert (checkpoint.seq, checkpoint.parent) == (3, 2)
    assert [c.seq for c in store.history("job")] == [1, 2, 3]
    assert store.load("job").state == {"n": 3}
    assert store.fsck().ok


def test_another_writer_during_recovery_is_a_conflict(flaky):
    # The lease is off for both writers, so the race for seq 2 itself is exercised.
    store, s = _session(flaky, lease=False)
    flaky.fail = "before"
    with pytest.raises(sp.StorageError):
        s.save(step="two")
    with store.session("job", schema=dict, lease=False) as other:
        other.state["n"] = 99
        other.save(step="other writer")
    with pytest.raises(sp.ConflictError, match="job"):
        s.save(step="two again")
    assert store.load("job").state == {"n": 99}
