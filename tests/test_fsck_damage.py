"""Damaged stores, as issue 19 found them: fsck reports every damage (never crashes), nothing acknowledged
disappears silently, loads name damage as damage, and `ls` / `show` / `history` survive a damaged record."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app
from safepoint.core.history import Chain
from safepoint.errors import CheckpointNotFound, CorruptCheckpoint


def _grow(repo, session_id="s", steps=70):
    with repo.session(session_id, schema=dict) as s:
        s.state.update(notes=[])
        for i in range(steps):
            s.state["notes"].append(f"note {i} " + "x" * 300)
            s.save(step=f"step {i}")


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with sp.open(root) as repo:
        _grow(repo)
        _grow(repo, "other", steps=3)
    return root


def _problems(root: Path) -> dict[str, str]:
    with sp.open(root) as repo:
        return {p.key: p.reason for p in repo.fsck().problems}


def _cli(root: Path | str, *args: str):
    return CliRunner().invoke(app, ["--store", str(root), *args])


def _packs(root: Path) -> list[Path]:
    return sorted((root / "packs" / "s").iterdir())


def test_the_workload_is_packed_and_clean(store_dir: Path) -> None:
    assert len(_packs(store_dir)) >= 2 and (store_dir / "packed" / "s").is_file()
    assert _problems(store_dir) == {}


def test_a_deleted_head_commit_is_acknowledged_but_missing(store_dir: Path) -> None:
    (store_dir / "commits" / "s" / f"{70:012d}").unlink()
    assert _problems(store_dir) == {
        f"commits/s/{70:012d}": "checkpoint 70 acknowledged but missing (a deleted record, pack or head commit)"
    }
    with sp.open(store_dir) as repo:
        report = repo.fsck()
        assert report.problems[0].broken == [("s", 70)] and report.last_good == {"s": 69}
        repo.summary("s")  # reading the session must not "heal" the evidence away
        [listed] = [info for info in repo.sessions() if info.id == "s"]
        assert listed.damaged == "checkpoint 70 was acknowledged but is missing (safepoint fsck)"
        assert not repo.fsck().ok
    result = _cli(store_dir, "ls")  # listed, marked, and still not healed
    assert result.exit_code == 0 and "session s is damaged: checkpoint 70 was acknowledged" in result.output
    assert _problems(store_dir) == {
        f"commits/s/{70:012d}": "checkpoint 70 acknowledged but missing (a deleted record, pack or head commit)"
    }


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_a_lost_session_record_is_reported_with_its_checkpoints(store_dir: Path, damage: str) -> None:
    record = store_dir / "sessions" / "s"
    if damage == "delete":
        record.unlink()
    else:
        record.write_bytes(record.read_bytes()[:-3] + b"zzz")
    result = _cli(store_dir, "ls")  # lists the rest; an `ls` must not wipe what fsck finds the session by
    assert result.exit_code == 0 and "other" in result.output
    problems = _problems(store_dir)
    assert list(problems) == ["sessions/s"]
    assert ("missing (checkpoint 70 acknowledged)" if damage == "delete" else "damaged") in problems["sessions/s"]
    assert "the session is 's'" in problems["sessions/s"]


def test_a_deleted_pack_is_reported_and_loads_say_the_store_is_damaged(store_dir: Path) -> None:
    pack = _packs(store_dir)[0]
    first, last = (int(part) for part in pack.name.split("-"))
    pack.unlink()
    problems = _problems(store_dir)
    key = f"commits/s/{first:012d}..{last:012d}"
    assert problems[key].startswith(f"checkpoints {first}-{last} acknowledged but missing")
    with sp.open(store_dir) as repo:
        with pytest.raises(CorruptCheckpoint, match="the store is damaged"):
            repo.load("s", first)
        report = repo.fsck()
        [problem] = [p for p in report.problems if p.key == key]
        assert ("s", first) in problem.broken and problem.last_good == {"s": report.last_good["s"]}
        good = report.last_good["s"]
        assert good is not None and repo.load("s", good).seq == good
    result = _cli(store_dir, "fsck")
    assert result.exit_code == 1 and "acknowledged but missing" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "floor", [b"", b"000000000001", b"0000", None], ids=["truncated-empty", "lowered", "truncated", "deleted"]
)
def test_a_lowered_or_deleted_floor_hides_nothing_and_is_reported(store_dir: Path, floor: bytes | None) -> None:
    path = store_dir / "packed" / "s"
    if floor is None:
        path.unlink()
    else:
        path.write_bytes(floor)
    problems = _problems(store_dir)
    assert list(problems) == ["packed/s"]
    assert ("not a number" if floor == b"" else "below the highest packed seq") in problems["packed/s"]
    if floor != b"":
        with sp.open(store_dir) as repo:
            assert [repo.load("s", seq).seq for seq in range(1, 71)] == list(range(1, 71))


def test_a_floor_raised_by_damage_is_reported(store_dir: Path) -> None:
    (store_dir / "packed" / "s").write_bytes(b"000000000900")
    problems = _problems(store_dir)
    assert list(problems) == ["packed/s"] and "above the newest checkpoint 70" in problems["packed/s"]


def test_a_damaged_lease_is_reported(store_dir: Path) -> None:
    lease = store_dir / "leases" / "s"
    lease.write_bytes(lease.read_bytes()[:10])
    problems = _problems(store_dir)
    assert list(problems) == ["leases/s"] and "cannot be opened for writing" in problems["leases/s"]


def test_a_stray_file_among_the_commits_is_reported_and_harms_no_command(store_dir: Path) -> None:
    (store_dir / "commits" / "s" / "junk").write_bytes(b"not a record")
    (store_dir / "commits" / "s" / "00000000007x").write_bytes(b"not a record")
    assert sorted(_problems(store_dir)) == ["commits/s/00000000007x", "commits/s/junk"]
    for command in (["ls"], ["show", "s"], ["history", "s"]):
        result = _cli(store_dir, *command)
        assert result.exit_code == 0, (command, result.output)
    assert _cli(store_dir, "fsck").exit_code == 1


def test_one_damaged_head_record_leaves_ls_listing_the_rest(store_dir: Path) -> None:
    head = store_dir / "commits" / "s" / f"{70:012d}"
    head.write_bytes(head.read_bytes()[:-1] + b"\x00")
    # `ls` lists from the summary index (it reads no record): every session is listed, the store is not refused.
    result = _cli(store_dir, "ls")
    assert result.exit_code == 0 and "Traceback" not in result.output
    listed = {line.split()[0] for line in result.output.splitlines()[1:] if line.strip()}
    assert {"other", "s"} <= listed
    # Reading the session names the damage in one line; fsck reports the record and the last good checkpoint.
    show = _cli(store_dir, "show", "s")
    assert show.exit_code == 1 and "Traceback" not in show.output and "fsck" in show.output
    with sp.open(store_dir) as repo:
        report = repo.fsck()
        assert any(p.key == "commits/s/000000000070" for p in report.problems)
        assert report.last_good["s"] == 69


def test_deleting_records_on_purpose_is_not_a_loss(tmp_path: Path) -> None:
    with sp.open(tmp_path / "store") as repo:
        _grow(repo)
        repo.gc(keep_last=5, settle=2.0)
        assert repo.fsck().ok
        assert Chain(repo.store, "s").trimmed() and min(c.seq for c in repo.history("s")) > 1
        with pytest.raises(CheckpointNotFound):
            repo.load("s", 1)  # deleted on purpose: not found, not "damaged"


def _sqlite_store(tmp_path: Path) -> Path:
    path = tmp_path / "store.db"
    with sp.open(f"sqlite:///{path}") as repo:
        _grow(repo, steps=40)
    return path


def test_sqlite_page_damage_is_reported_not_raised(tmp_path: Path) -> None:
    path = _sqlite_store(tmp_path)
    data = bytearray(path.read_bytes())
    page = 4096
    for at in range(page * 2, len(data), page * 3):  # a byte in every third page, past the schema
        data[at + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with sp.open(f"sqlite:///{path}") as repo:
        report = repo.fsck()  # was: StorageError "database disk image is malformed"
    assert not report.ok
    assert any(p.key == str(path) for p in report.problems)


def test_a_truncated_sqlite_file_is_reported_not_raised(tmp_path: Path) -> None:
    path = _sqlite_store(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    result = _cli(f"sqlite:///{path}", "fsck")  # was: a StorageError traceback
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 problem found" in result.output and "malformed" in result.output


def test_sqlite_index_damage_is_found_by_the_integrity_check(tmp_path: Path) -> None:
    path = _sqlite_store(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_kv_1'").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    end = root * size  # the index's root page: its cells (the keys) sit at the end of the page
    for at in range(end - 400, end - 20, 7):
        data[at] ^= 0x01  # keys one bit off: the index no longer finds their rows
    path.write_bytes(bytes(data))
    with sp.open(f"sqlite:///{path}") as repo:
        report = repo.fsck()  # was: "ok", with checkpoints hidden from the listing
    assert any("integrity check" in p.reason for p in report.problems if p.key == str(path))


def test_a_damaged_key_gives_a_typed_error_not_a_value_error(tmp_path: Path) -> None:
    path = _sqlite_store(tmp_path)
    with sqlite3.connect(path) as conn:  # the last commit key loses a digit to a letter
        conn.execute("UPDATE kv SET key = 'commits/s/00000000004x' WHERE key = 'commits/s/000000000040'")
    conn.close()
    with sp.open(f"sqlite:///{path}") as repo:
        assert repo.load("s").seq == 39  # was: ValueError: invalid literal for int()
        problems = {p.key: p.reason for p in repo.fsck().problems}
    assert "stray key" in problems["commits/s/00000000004x"]
    assert "checkpoint 40 acknowledged but missing" in problems[f"commits/s/{40:012d}"]


def test_a_trimmed_session_exported_and_imported_is_not_a_loss(tmp_path: Path) -> None:
    with sp.open(tmp_path / "a") as repo:
        _grow(repo)
        repo.gc(keep_last=5, settle=2.0)
        bundle = repo.export_session("s", tmp_path / "s.safepoint.tar")
    with sp.open(tmp_path / "b") as repo:
        repo.import_session(bundle)
        assert min(c.seq for c in repo.history("s")) > 1
        assert repo.fsck().ok
