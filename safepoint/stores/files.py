"""`file://` or a plain path: one file per key under a root directory. The embedded default store.

Every write goes to a temp file (`.tmp-<pid>-<random>`) in the key's directory and is fsynced, then moved into
place and the directory is fsynced, so a key is never visible half-written:

- `put_if_absent` moves with `os.link`, which fails when the name exists: any number of threads or processes
  racing to create one key, exactly one wins. This is the checkpoint commit point.
- A fenced commit (a writer's lease, see `Store.commit`) compares the lease file and links its commit key
  under the store lock, which every lease change takes as well: the check and the commit are one step. A commit
  with a floor reads the floor under that lock too, before the link (every floor change takes it), so a commit
  that landed is never mistaken for one refused by the floor.
- `put` moves with `os.replace`. Overwrites, compare-and-sets and deletes hold an exclusive `flock` on
  `<root>/.lock`, so a compare-and-set never interleaves with another writer of the same store.
- `put_hint` does the same without any fsync: a hint may be lost or stale after a crash.

Limits: POSIX only (hard links, `fcntl.flock`, directory fsync). A key cannot also be a directory of other
keys (`a` and `a/b`); writing the second raises StorageError. Safepoint's own keys never nest that way.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows; FileStore writes then fail with a clear StorageError
    fcntl = None  # type: ignore[assignment]

from ..errors import FenceMismatch, StorageError
from .base import (
    _SEGMENT,
    ANY,
    Fence,
    Floor,
    Store,
    check_bytes,
    check_commit,
    check_key,
    check_prefix,
    floor_value,
)
from .modes import dir_mode, file_mode

TEMP_PREFIX = ".tmp-"
LOCK_NAME = ".lock"
#: `sweep` removes temp files older than this even when their pid looks alive (pids get reused).
STALE_TEMP_SECONDS = 3600.0
# A concurrent delete may remove an empty directory between our mkdir and our write; retry this often.
_DIRECTORY_RETRIES = 8
#: A commit with at least this many objects writes them unsynced and then calls syncfs once.
BATCH_OBJECTS = 8

_ADVICE = {
    errno.ENOSPC: "free disk space and retry",
    errno.EDQUOT: "free disk space (or raise the disk quota) and retry",
    errno.EROFS: "the filesystem is read-only; remount it read-write or point safepoint at another store",
    errno.EACCES: "check the permissions of the store directory",
    errno.EPERM: "check the permissions of the store directory",
    errno.EIO: "the disk reported an I/O error; check it (dmesg, fsck) before retrying",
    errno.EMFILE: "too many open files in this process; close some or raise the limit (ulimit -n)",
    errno.ENFILE: "too many open files on this system; close some or raise the limit",
}


class FileStore(Store):
    """Keys as files under `root`; durable, safe across threads and processes on one POSIX filesystem."""

    durable = True
    cheap_create = False  # a create writes and fsyncs a temp file before it finds the name taken
    pack_records = True  # every file takes at least one 4 KiB block, however small the record
    # Packing keeps at most one keyframe cycle of loose records per session, so the last commit key is found by
    # listing a small directory, once per session opened: cheaper than rewriting a head hint on every save.
    head_hints = False

    def __init__(self, root: str | os.PathLike[str], *, mode: int | str | None = None) -> None:
        """`mode`: the permissions of the files it creates (default 0600; directories 0700). See stores/modes.py."""
        # Nothing touches the disk here: opening a missing store to read it must not create it.
        self.root = Path(os.path.abspath(root))
        self.url = "file://" + str(self.root)
        self.mode = file_mode(mode)
        self.dir_mode = dir_mode(self.mode)

    # --- the primitives -------------------------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        with self._translate("read", key, writing=False):
            return _read(self.root / key)

    def _put_if_absent(self, key: str, data: bytes, fence: Fence | None = None, floor: Floor | None = None) -> bool:
        path = self.root / key
        with self._translate("create", key):
            tmp = self._write_temp(path.parent, data, sync=True)
            try:
                # With a fence or a floor, the checks and the link happen under the store lock, which every change
                # of a lease or a floor takes too: no takeover, and no pack, can fall between them.
                with self._locked() if fence is not None or floor is not None else nullcontext():
                    if fence is not None and _read(self.root / fence[0]) != fence[1]:
                        raise FenceMismatch(fence[0])
                    if floor is not None and floor_value(_read(self.root / floor[0]), floor[0]) >= floor[1]:
                        return False
                    os.link(tmp, path)
            except FileExistsError:
                if path.is_dir():
                    raise IsADirectoryError(errno.EISDIR, "is a directory", str(path)) from None
                return False
            finally:
                _remove_quietly(tmp)
            _fsync_dir(path.parent)  # makes both the new name and the temp's removal durable
            return True

    def _put(self, key: str, data: bytes, expect: bytes | None | object) -> bool:
        with self._translate("write", key):
            return self._replace(key, data, expect, sync=True)

    def put_hint(self, key: str, data: bytes) -> None:
        """Overwrite `key` in place, without fsync, lock or rename.

        A hint may be stale, lost or even torn after a crash or while being rewritten; its readers treat it as
        a guess they verify. Writing in place avoids the rename, which costs as much as a small fsync on ext4
        (replacing an existing file starts write-back of the new one).
        """
        key = check_key(key)
        data = check_bytes(data, key)
        path = self.root / key
        with self._translate("write hint", key):
            for _ in range(_DIRECTORY_RETRIES):
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT, self.mode)
                    break
                except FileNotFoundError:
                    with suppress(FileNotFoundError):
                        self._make_dirs(path.parent, sync=False)
            else:
                raise FileNotFoundError(errno.ENOENT, "directory kept disappearing while writing", str(path))
            try:
                os.pwrite(fd, data, 0)
                if os.fstat(fd).st_size != len(data):
                    os.ftruncate(fd, len(data))
            finally:
                os.close(fd)

    def _list(self, prefix: str) -> list[str]:
        head, _, stem = prefix.rpartition("/")
        with self._translate("list", prefix or "<all keys>", writing=False):
            keys = _walk(self.root / head if head else self.root, head + "/" if head else "", stem)
        return sorted(keys)

    def items(self, prefix: str) -> list[tuple[str, bytes]]:
        """One directory scan and a read per file (no per-key checks: the names come from the scan)."""
        head, _, stem = check_prefix(prefix).rpartition("/")
        found: list[tuple[str, bytes]] = []
        with self._translate("list", prefix or "<all keys>", writing=False):
            try:
                entries = list(os.scandir(self.root / head if head else self.root))
            except (FileNotFoundError, NotADirectoryError):
                return []
            for entry in entries:
                if not entry.name.startswith(stem) or not _SEGMENT.fullmatch(entry.name):
                    continue  # temp files, the lock
                key = f"{head}/{entry.name}" if head else entry.name
                if entry.is_dir(follow_symlinks=False):
                    found.extend(super().items(key + "/"))
                elif (data := _read(entry.path)) is not None:
                    found.append((key, data))
        return sorted(found)

    def _delete(self, key: str) -> bool:
        path = self.root / key
        with self._translate("delete", key):
            if not self.root.is_dir():
                return False  # nothing stored yet; do not create the root just to take the lock
            with self._locked():
                try:
                    os.unlink(path)
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    return False
            _fsync_dir(path.parent)
        self._prune(path.parent)
        return True

    # --- fast paths -----------------------------------------------------------------------------
    def commit(
        self,
        objects: Iterable[tuple[str, bytes]],
        key: str,
        data: bytes,
        hints: Iterable[tuple[str, bytes]] = (),
        fence: Fence | None = None,
        floor: Floor | None = None,
    ) -> bool:
        """Like `Store.commit`; many objects are written without a fsync each, then made durable at once.

        One fsync per file costs a journal commit each (~2 ms here): a first save of a 16 MiB state writes
        hundreds of objects. Instead they are linked into place unsynced and one `syncfs` flushes them all,
        before the commit key itself is created the usual way (temp, fsync, link, fsync of the directory).
        """
        objects, key, data, hints, fence, floor = check_commit(objects, key, data, hints, fence, floor)
        if fence is not None and objects:
            self.check_fence(fence)  # a lease already gone writes no objects; the link checks again
        if len(objects) < BATCH_OBJECTS or _syncfs is None:
            for object_key, object_data in objects:
                self._put_if_absent(object_key, object_data)
        else:
            with self._translate("write the objects of", key):
                for object_key, object_data in objects:
                    self._place(object_key, object_data)
                _syncfs(self.root)
        # The floor is read before the link, under the lock: checked after it (as `Store.commit` does), a floor
        # raised by a writer that packed this very record, just linked, would look like a floor that was there
        # first, and a commit that landed would be reported as a conflict.
        if not self._put_if_absent(key, data, fence, floor):
            return False
        for hint_key, hint_data in hints:
            self.put_hint(hint_key, hint_data)
        return True

    def discard(self, keys: Iterable[str]) -> None:
        """Unlink without the store lock or fsync: a crash may bring a discarded key back, which is harmless."""
        for key in keys:
            with self._translate("discard", check_key(key)), suppress(FileNotFoundError):
                os.unlink(self.root / key)

    def prepare(self, prefix: str) -> None:
        """Create the directory for keys under `prefix` (and fsync its parent) ahead of the first write."""
        check_key(prefix.rstrip("/"))
        with self._translate("prepare", prefix):
            self._make_dirs(self.root / prefix.rstrip("/"), sync=True)

    def _place(self, key: str, data: bytes) -> None:
        """Create an immutable object without fsync (the caller syncs the filesystem afterwards)."""
        path = self.root / key
        tmp = self._write_temp(path.parent, data, sync=False)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # content-addressed: the same bytes are already there
        finally:
            _remove_quietly(tmp)

    def exists(self, key: str) -> bool:
        """Whether `key` exists, without reading it."""
        return os.path.isfile(self.root / check_key(key))

    def present(self, keys: Iterable[str]) -> set[str]:
        """One stat each (paths joined as text: at 10,000 keys building Path objects is most of the cost)."""
        root = str(self.root)
        return {key for key in keys if os.path.isfile(f"{root}/{check_key(key)}")}

    def sweep(self) -> int:
        """Remove temp files of writers that died (pid gone on this host) or are older than an hour."""
        removed = 0
        now = time.time()
        with self._translate("sweep", "<temp files>"):
            for directory, _, names in os.walk(self.root):
                for name in names:
                    path = os.path.join(directory, name)
                    if name.startswith(TEMP_PREFIX) and _temp_is_stale(name, path, now):
                        try:
                            os.unlink(path)
                        except FileNotFoundError:
                            continue  # its writer finished (or another sweep) first
                        removed += 1
        return removed

    # --- helpers --------------------------------------------------------------------------------
    def _replace(self, key: str, data: bytes, expect: bytes | None | object, *, sync: bool) -> bool:
        """Write a temp file, then under the store lock compare and move it over `key`."""
        path = self.root / key
        tmp = self._write_temp(path.parent, data, sync=sync)
        try:
            with self._locked():
                if expect is None:
                    try:
                        os.link(tmp, path)  # create-only, even against put_if_absent (which takes no lock)
                    except FileExistsError:
                        if path.is_dir():
                            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path)) from None
                        return False
                elif expect is not ANY and _read(path) != expect:
                    return False
                else:
                    os.replace(tmp, path)
        finally:
            _remove_quietly(tmp)  # a no-op after os.replace; removes the temp after a link or a mismatch
        if sync:
            _fsync_dir(path.parent)
        return True

    def _write_temp(self, directory: Path, data: bytes, *, sync: bool) -> Path:
        """Write `data` to a new temp file in `directory` (created if missing); remove it again on failure."""
        for _ in range(_DIRECTORY_RETRIES):
            tmp = directory / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
            except FileNotFoundError:
                with suppress(FileNotFoundError):  # a concurrent delete pruned a parent: go round again
                    self._make_dirs(directory, sync=sync)
                continue
            try:
                try:
                    _write_all(fd, data)
                    if sync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            except BaseException:
                _remove_quietly(tmp)
                raise
            return tmp
        raise FileNotFoundError(errno.ENOENT, "directory kept disappearing while writing", str(directory))

    def _make_dirs(self, directory: Path, *, sync: bool) -> None:
        """`mkdir -p` that fsyncs the parent of every directory it creates, so new entries survive a crash."""
        try:
            os.mkdir(directory, self.dir_mode)
        except FileExistsError:
            return  # made by someone else; if it is a file, the caller's write raises NotADirectoryError
        except FileNotFoundError:
            self._make_dirs(directory.parent, sync=sync)
            try:
                os.mkdir(directory, self.dir_mode)
            except FileExistsError:
                return
        if sync:
            _fsync_dir(directory.parent)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories from `directory` up to (not including) the root; best effort."""
        while directory != self.root and self.root in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (or already gone): stop
            directory = directory.parent

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the store's exclusive lock. A new fd per call, so threads of one process exclude each other."""
        if fcntl is None:
            raise OSError(errno.ENOTSUP, "FileStore needs POSIX file locks (fcntl.flock)")
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, self.mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the last fd of the open file releases the lock

    @contextmanager
    def _translate(self, operation: str, key: str, *, writing: bool = True) -> Iterator[None]:
        """Turn OSError into StorageError naming the operation, the key and what to do next."""
        try:
            yield
        except StorageError:
            raise
        except (NotADirectoryError, IsADirectoryError) as exc:
            raise self._error(
                operation,
                key,
                exc,
                "a FileStore key cannot also be a directory of other keys (like 'a' next to 'a/b'); "
                "use keys that do not nest",
            ) from exc
        except OSError as exc:
            advice = _ADVICE.get(exc.errno or 0, "check the disk and retry")
            if writing:
                advice += "; the previous checkpoint is untouched"
            raise self._error(operation, key, exc, advice) from exc

    def _error(self, operation: str, key: str, exc: OSError, advice: str) -> StorageError:
        error = StorageError(f"cannot {operation} key {key!r} in {self.url}: {exc.strerror or exc}; {advice}")
        error.errno = exc.errno
        return error


def _read(path: str | Path) -> bytes | None:
    # os-level, not open(): a buffered file object costs five more syscalls (fstat, ioctl, lseek...) per read,
    # and a save reads the lease record and the packed floor.
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1)  # one byte more: a file that grew since fstat is read to its end
        if len(data) <= size:
            return data
        chunks = [data]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _walk(directory: Path, key_prefix: str, stem: str) -> list[str]:
    """Keys of the files under `directory` whose first name starts with `stem`; skips hidden and temp files."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []  # a missing store, a prefix pointing nowhere, or a directory a delete just pruned
    keys = []
    for entry in entries:
        if not entry.name.startswith(stem) or not _SEGMENT.fullmatch(entry.name):
            continue  # `.tmp-*`, `.lock` and anything else that cannot be a key
        key = key_prefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            keys.extend(_walk(Path(entry.path), key + "/", ""))
        elif entry.is_file():
            keys.append(key)
    return keys


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # some filesystems cannot fsync a directory
            raise
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    with suppress(OSError):
        os.unlink(path)


def _temp_is_stale(name: str, path: str, now: float) -> bool:
    """A temp file is stale when its writer's pid is gone or it is older than STALE_TEMP_SECONDS."""
    try:
        if now - os.stat(path).st_mtime > STALE_TEMP_SECONDS:
            return True
    except FileNotFoundError:
        return False  # already gone
    pid_text = name[len(TEMP_PREFIX) :].partition("-")[0]
    if not pid_text.isdigit() or int(pid_text) <= 0:
        return True  # not one of ours, or mangled
    return not _pid_alive(int(pid_text))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but belongs to someone else (EPERM)
    return True


def _load_syncfs():  # -> Callable[[Path], None] | None
    """syncfs(2) through libc: flush one filesystem (data and metadata), reporting write-back errors."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        call = libc.syncfs
    except (OSError, AttributeError, TypeError):
        return None  # not Linux/glibc: commits fall back to one fsync per object

    def syncfs(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            if call(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), str(path))
        finally:
            os.close(fd)

    return syncfs


_syncfs = _load_syncfs()
