"""FileStore against the shared store suite, plus what only a directory of files can get wrong."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from safepoint.errors import FenceMismatch, StorageError
from safepoint.stores import files, open_store
from safepoint.stores.base import Store
from safepoint.stores.files import FileStore
from safepoint.testing import StoreTests


class TestFileStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[FileStore]:
        with FileStore(tmp_path / "store") as store:
            yield store

    @pytest.fixture
    def store_factory(self, store: FileStore) -> Callable[[], Store]:
        return lambda: FileStore(store.root)

    def raw_get(self, store: Store, key: str) -> bytes | None:
        path = Path(store.url.removeprefix("file://"), key)
        return path.read_bytes() if path.is_file() else None

    def raw_put(self, store: Store, key: str, data: bytes) -> None:
        path = Path(store.url.removeprefix("file://"), key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def raw_delete(self, store: Store, key: str) -> None:
        Path(store.url.removeprefix("file://"), key).unlink(missing_ok=True)

    def raw_items(self, store: Store) -> dict[str, bytes]:
        root = Path(store.url.removeprefix("file://"))
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in root.rglob("*")
            if path.is_file() and path.name != files.LOCK_NAME and not path.name.startswith(files.TEMP_PREFIX)
        }


def temp_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".tmp-*"))


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def test_key_is_a_file_holding_exactly_the_bytes(store: FileStore) -> None:
    data = bytes(range(256)) * 3
    store.put_if_absent("sessions/s1/0", data)
    assert (store.root / "sessions" / "s1" / "0").read_bytes() == data
    assert store.url == "file://" + str(store.root) and store.root.is_absolute()


def test_writes_leave_no_temp_files(store: FileStore) -> None:
    store.put_if_absent("a/b", b"1")
    store.put_if_absent("a/b", b"lost")
    store.put("a/c", b"1")
    store.put("a/c", b"2", expect=b"1")
    store.put("a/c", b"3", expect=b"mismatch")
    store.put("a/c", b"3", expect=None)
    store.put_hint("a/head", b"h")
    store.commit([("o/1", b"x")], "a/d", b"d", [("a/head", b"d")])
    assert temp_files(store.root) == []
    assert sorted(p.name for p in store.root.iterdir()) == [".lock", "a", "o"]


def test_reading_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path / "nowhere" / "store")
    assert store.get("a/b") is None
    assert store.exists("a/b") is False
    assert store.list() == [] and store.list("a/") == []
    assert store.delete("a/b") is False
    assert store.sweep() == 0
    assert list(tmp_path.iterdir()) == []
    store.put_if_absent("a/b", b"1")  # the first write creates the root and its parents
    assert (tmp_path / "nowhere" / "store" / "a" / "b").read_bytes() == b"1"


def test_delete_prunes_empty_directories_but_not_root(store: FileStore) -> None:
    store.put_if_absent("s/1/x/0", b"0")
    store.put_if_absent("s/2/0", b"0")
    assert store.delete("s/1/x/0") is True
    assert not (store.root / "s" / "1").exists()
    assert (store.root / "s" / "2" / "0").is_file()
    assert store.delete("s/2/0") is True
    assert store.root.is_dir() and not (store.root / "s").exists()


def test_list_skips_temp_lock_and_foreign_files(store: FileStore) -> None:
    store.put_if_absent("a/b", b"1")
    (store.root / "a" / ".tmp-1-abc").write_bytes(b"partial")
    (store.root / "a" / "not a key").write_bytes(b"junk")
    assert store.list() == ["a/b"]
    assert store.list("a/") == ["a/b"]


def test_sweep_removes_dead_and_old_temps_only(store: FileStore) -> None:
    store.put_if_absent("a/b", b"1")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    directory = store.root / "a"
    from_dead = directory / f".tmp-{dead_pid}-0123456789abcdef"
    fresh_live = directory / f".tmp-{os.getpid()}-0123456789abcdef"
    old_live = store.root / f".tmp-{os.getpid()}-fedcba9876543210"
    for path in (from_dead, fresh_live, old_live):
        path.write_bytes(b"partial")
    an_hour_ago = time.time() - files.STALE_TEMP_SECONDS - 60
    os.utime(old_live, (an_hour_ago, an_hour_ago))
    assert store.sweep() == 2
    assert temp_files(store.root) == [fresh_live]
    assert store.get("a/b") == b"1"


def test_key_nested_under_another_key_is_a_clear_error(store: FileStore) -> None:
    store.put_if_absent("a", b"leaf")
    with pytest.raises(StorageError, match="'a/b'.*cannot also be a directory"):
        store.put_if_absent("a/b", b"x")
    store.put_if_absent("c/d", b"x")
    with pytest.raises(StorageError, match="'c'"):
        store.put_if_absent("c", b"x")
    with pytest.raises(StorageError, match="'c'"):
        store.put("c", b"x")
    assert store.get("a/b") is None and store.get("c") is None
    assert store.list() == ["a", "c/d"]
    assert temp_files(store.root) == []


def test_disk_full_is_a_storage_error_and_leaves_the_old_value(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put("s/head", b"old")
    real_write_all = files._write_all

    def half_then_full(fd: int, data: bytes) -> None:
        real_write_all(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_all", half_then_full)
    for write in (lambda: store.put("s/head", b"new!"), lambda: store.put_if_absent("s/1/0", b"new!")):
        with pytest.raises(StorageError, match="free disk space and retry; the previous checkpoint is untouched"):
            write()
    with pytest.raises(StorageError) as caught:
        store.commit([], "s/1/0", b"new!")
    assert caught.value.errno == errno.ENOSPC and "'s/1/0'" in str(caught.value)
    assert isinstance(caught.value, OSError)
    assert store.get("s/head") == b"old" and store.get("s/1/0") is None
    assert temp_files(store.root) == []


def test_read_only_filesystem_is_a_storage_error(store: FileStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_if_absent("a/b", b"1")

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.os, "link", read_only)
    with pytest.raises(StorageError, match="cannot create key 'a/c' in file://.*read-only"):
        store.put_if_absent("a/c", b"2")
    assert store.list() == ["a/b"]
    assert temp_files(store.root) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name fsynced files")
def test_writes_fsync_file_and_new_directories_but_hints_do_not(
    store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put_if_absent("first", b"creates the root")
    synced: list[Path] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", spy)
    store.put_hint("n/head", b"1")
    store.put_hint("n/head", b"2")
    assert synced == []
    store.put_if_absent("s/1/0", b"x")
    root = store.root
    assert [p.name.startswith(".tmp-") for p in synced] == [False, False, True, False]
    assert [synced[0], synced[1], synced[3]] == [root, root / "s", root / "s" / "1"]
    synced.clear()
    store.put("s/1/0", b"y", expect=b"x")
    assert len(synced) == 2 and synced[0].name.startswith(".tmp-") and synced[1] == root / "s" / "1"


def test_a_fenced_commit_cannot_slip_between_a_lease_takeover_and_its_check(tmp_path):
    # A takeover changes the lease under the store lock; a fenced commit checks the lease and links its key
    # under the same lock. So a commit that starts while a takeover is under way waits, then sees the new lease.
    store = FileStore(tmp_path / "store")
    store.put("leases/x", b"lease of worker A")
    outcome: list[object] = []

    def commit() -> None:
        try:
            outcome.append(
                store.commit([], "commits/x/000000000001", b"A's step", [], ("leases/x", b"lease of worker A"))
            )
        except FenceMismatch as exc:
            outcome.append(exc)

    with store._locked():  # worker B is taking the lease over
        writer = threading.Thread(target=commit)
        writer.start()
        writer.join(timeout=0.5)
        assert writer.is_alive()  # A's commit waits at the lock: its temp file is written, nothing is linked
        taken = tmp_path / "store" / "leases" / "taken"
        taken.write_bytes(b"lease of worker B")
        os.replace(taken, tmp_path / "store" / "leases" / "x")  # (store.put would wait for the lock we hold)
    writer.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], FenceMismatch)
    assert store.get("commits/x/000000000001") is None
    assert not list((tmp_path / "store").rglob(".tmp-*"))
