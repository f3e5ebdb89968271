"""The `safepoint` command line: each command's happy path, its one-line errors, the docs, the demo."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

import safepoint as sp
from safepoint.cli import app
from safepoint.cli.store_commands import _parse_since, _ranges

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"

EDITOR_SCRIPT = """\
import json, os, sys

mode, path = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as handle:
    state = json.load(handle)
if mode == "note":
    state["data"]["notes"].append("edited by hand")
    text = json.dumps(state, indent=2)
elif mode == "reformat":  # same value, different layout
    text = json.dumps(state, indent=4, sort_keys=True)
elif mode == "bad":
    text = '{\\n  "data": {},\\n  oops\\n}\\n'
elif mode == "nan":
    text = '{"data": {"x": NaN}}'
elif mode == "list":
    text = "[]"
elif mode == "race":  # another writer commits while the editor is open
    with __import__("safepoint").open(os.environ["SAFEPOINT_STORE"]) as repo:
        with repo.session("s1") as session:
            session.state.data["racer"] = True
            session.save(step="racer")
    state["data"]["mine"] = True
    text = json.dumps(state)
elif mode == "fail":
    sys.exit(3)
else:  # "keep": leave the file alone
    sys.exit(0)
with open(path, "w", encoding="utf-8") as handle:
    handle.write(text)
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("SAFEPOINT_STORE", "VISUAL", "EDITOR"):
        monkeypatch.delenv(name, raising=False)
    return str(tmp_path / "store")


@pytest.fixture
def seeded(store: str) -> str:
    """Session `s1`: three checkpoints (a keyframe, then deltas), notes one, two, three."""
    with sp.open(store) as repo, repo.session("s1", agent="tester", tags=["t"]) as s:
        s.state.mission.goal = "test the cli"
        for step in ("one", "two", "three"):
            s.state.data.setdefault("notes", []).append(step)
            s.save(step=step)
    return store


@pytest.fixture
def editor(tmp_path: Path):
    script = tmp_path / "fake editor.py"  # a space in the path: the command is split with shlex
    script.write_text(EDITOR_SCRIPT)

    def command(mode: str) -> str:
        return f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {mode}"

    return command


def cli(store: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, ["--store", store, *args], env=env)


def load(store: str, session_id: str = "s1", seq: int | None = None) -> sp.Checkpoint:
    with sp.open(store) as repo:
        return repo.load(session_id, seq)


def seqs(store: str, session_id: str = "s1") -> list[int]:
    with sp.open(store) as repo:
        return [cp.seq for cp in repo.history(session_id)]


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


# --- ls ----------------------------------------------------------------------------------------------------
def test_ls_empty_store(store: str) -> None:
    result = cli(store, "ls")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no sessions" in result.stderr
    assert json.loads(cli(store, "ls", "--json").stdout) == []


def test_ls_table_and_json(seeded: str) -> None:
    cli(seeded, "fork", "s1", "--at", "2", "--as", "s2")
    result = cli(seeded, "ls")
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["session", "agent", "status", "step", "seq", "updated", "parent"]
    assert rows[0].split()[:5] == ["s2", "tester", "running", "two", "1"]
    assert rows[0].rstrip().endswith("s1@2")
    assert rows[1].split()[:5] == ["s1", "tester", "running", "three", "3"]
    assert re.search(r"just now|\ds ago", rows[1])

    sessions = json.loads(cli(seeded, "ls", "--json").stdout)
    assert [s["id"] for s in sessions] == ["s2", "s1"]
    assert sessions[1] | {"created_at": None, "updated_at": None} == {
        "id": "s1",
        "agent": "tester",
        "tags": ["t"],
        "status": "running",
        "step": "three",
        "seq": 3,
        "created_at": None,
        "updated_at": None,
        "parent": None,
    }
    assert sessions[0]["parent"] == {"session": "s1", "seq": 2}


def test_store_from_env_and_option_after_command(seeded: str) -> None:
    from_env = runner.invoke(app, ["ls", "--json"], env={"SAFEPOINT_STORE": seeded})
    after = runner.invoke(app, ["ls", "--json", "--store", seeded])
    equals = runner.invoke(app, ["ls", f"--store={seeded}", "--json"])
    assert [s["id"] for s in json.loads(from_env.stdout)] == ["s1"]
    assert from_env.stdout == after.stdout == equals.stdout


# --- show --------------------------------------------------------------------------------------------------
def test_show_head_and_seq(seeded: str) -> None:
    result = cli(seeded, "show", "s1")
    assert result.exit_code == 0
    assert re.search(r"^seq\s+3\s*$", result.stdout, re.M)
    assert re.search(r"^step\s+three\s*$", result.stdout, re.M)
    assert '"three"' in result.stdout

    older = cli(seeded, "show", "s1", "--seq", "1").stdout
    assert re.search(r"^seq\s+1\s*$", older, re.M)
    assert '"one"' in older and '"two"' not in older


def test_show_json_is_checkpoint_and_state_only(seeded: str) -> None:
    result = cli(seeded, "show", "s1", "--seq", "2", "--json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert set(doc) == {"checkpoint", "waiting_for", "error", "usage", "in_doubt", "state"}
    assert doc["state"] == load(seeded, seq=2).state
    checkpoint = doc["checkpoint"]
    assert checkpoint["session"] == "s1" and checkpoint["seq"] == 2 and checkpoint["parent"] == 1
    assert checkpoint["step"] == "two" and checkpoint["status"] == "running"
    assert checkpoint["keyframe"] is False and checkpoint["manual_edit"] is False
    assert checkpoint["checksum"] == load(seeded, seq=2).checksum
    datetime.fromisoformat(checkpoint["created_at"])


# --- history -----------------------------------------------------------------------------------------------
def test_history_table_marks_keyframes_deltas_and_edits(seeded: str) -> None:
    cli(seeded, "set", "s1", "data.flag=true")
    result = cli(seeded, "history", "s1")
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["seq", "time", "step", "status", "kind", "edit", "checksum"]
    assert len(rows) == 4
    assert rows[0].split()[0] == "1" and "keyframe" in rows[0]
    assert "delta" in rows[1] and "delta" in rows[2]
    assert "set data.flag" in rows[3]
    assert load(seeded, seq=4).checksum[:12] in rows[3]
    assert [cp["seq"] for cp in json.loads(cli(seeded, "history", "s1", "--json").stdout)] == [1, 2, 3, 4]


# --- diff --------------------------------------------------------------------------------------------------
def test_diff_lines(seeded: str) -> None:
    cli(seeded, "set", "s1", "mission.goal=changed")
    result = cli(seeded, "diff", "s1", "1", "4")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert '+ state.data.notes[1]: "two"' in lines
    assert '~ state.mission.goal: "test the cli" -> "changed"' in lines


def test_diff_is_coloured_on_a_colour_terminal(seeded: str) -> None:
    result = cli(seeded, "diff", "s1", "1", "2", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"})
    assert "\x1b[32m+ state.data.notes[1]" in result.stdout


def test_diff_without_changes(seeded: str) -> None:
    result = cli(seeded, "diff", "s1", "2", "2")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no differences" in result.stderr


# --- edit --------------------------------------------------------------------------------------------------
def test_edit_commits_a_manual_edit(seeded: str, editor) -> None:
    result = cli(seeded, "edit", "s1", env={"EDITOR": editor("note")})
    assert result.exit_code == 0, result.output
    assert "committed seq 4" in result.stdout
    head = load(seeded)
    assert head.seq == 4 and head.is_manual_edit and head.meta["how"] == "edit"
    assert head.state["data"]["notes"][-1] == "edited by hand"


def test_edit_prefers_visual_over_editor(seeded: str, editor) -> None:
    result = cli(seeded, "edit", "s1", env={"VISUAL": editor("note"), "EDITOR": editor("fail")})
    assert result.exit_code == 0, result.output
    assert load(seeded).seq == 4


@pytest.mark.parametrize("mode", ["keep", "reformat"])
def test_edit_without_changes_commits_nothing(seeded: str, editor, mode: str) -> None:
    result = cli(seeded, "edit", "s1", env={"EDITOR": editor(mode)})
    assert result.exit_code == 0
    assert "no changes" in result.stdout
    assert seqs(seeded) == [1, 2, 3]


def _kept_file(line: str) -> Path:
    path = Path(line.rsplit("kept in ", 1)[1])
    assert path.exists()
    path.unlink()
    return path


def test_edit_invalid_json_is_one_line_with_line_and_column(seeded: str, editor) -> None:
    result = cli(seeded, "edit", "s1", env={"EDITOR": editor("bad")})
    line = assert_one_line_error(result, "invalid JSON", "line 3 column 3", "nothing committed")
    assert seqs(seeded) == [1, 2, 3]
    _kept_file(line)


def test_edit_rejects_nan(seeded: str, editor) -> None:
    line = assert_one_line_error(cli(seeded, "edit", "s1", env={"EDITOR": editor("nan")}), "NaN")
    assert seqs(seeded) == [1, 2, 3]
    _kept_file(line)


def test_edit_state_that_is_not_an_object(seeded: str, editor) -> None:
    line = assert_one_line_error(cli(seeded, "edit", "s1", env={"EDITOR": editor("list")}), "must be a JSON object")
    assert seqs(seeded) == [1, 2, 3]
    _kept_file(line)


def test_edit_refuses_when_the_session_moved_meanwhile(seeded: str, editor) -> None:
    result = cli(seeded, "edit", "s1", env={"EDITOR": editor("race"), "SAFEPOINT_STORE": seeded})
    line = assert_one_line_error(result, "moved from seq 3 to 4")
    assert seqs(seeded) == [1, 2, 3, 4]
    assert "mine" not in load(seeded).state["data"]
    _kept_file(line)


def test_edit_with_a_failing_or_missing_editor(seeded: str, editor, tmp_path: Path) -> None:
    _kept_file(assert_one_line_error(cli(seeded, "edit", "s1", env={"EDITOR": editor("fail")}), "status 3"))
    missing = str(tmp_path / "no-such-editor")
    assert_one_line_error(cli(seeded, "edit", "s1", env={"EDITOR": missing}), "cannot run the editor")
    assert seqs(seeded) == [1, 2, 3]


# --- set ---------------------------------------------------------------------------------------------------
def test_set_one_value_parses_json_else_string(seeded: str) -> None:
    result = cli(seeded, "set", "s1", "data.count=3")
    assert result.exit_code == 0
    assert "committed seq 4 (set data.count)" in result.stdout
    cli(seeded, "set", "s1", "data.word=done")
    cli(seeded, "set", "s1", "data.zeros=007")
    cli(seeded, "set", "s1", "data.nan=NaN")
    cli(seeded, "set", "s1", 'data.notes[0]={"a": [1, null]}')
    data = load(seeded).state["data"]
    assert data["count"] == 3 and data["word"] == "done" and data["zeros"] == "007" and data["nan"] == "NaN"
    assert data["notes"][0] == {"a": [1, None]}
    assert seqs(seeded) == [1, 2, 3, 4, 5, 6, 7, 8]


def test_set_several_values_commits_once(seeded: str) -> None:
    result = cli(seeded, "set", "s1", "mission.goal=Compare prices", "data.flag=true", 'data["a=b"]="x"')
    assert result.exit_code == 0, result.output
    head = load(seeded)
    assert head.seq == 4
    assert head.meta["how"] == 'set mission.goal, data.flag, data["a=b"]'
    assert head.state["mission"]["goal"] == "Compare prices"
    assert head.state["data"]["flag"] is True and head.state["data"]["a=b"] == "x"


def test_set_bad_path_commits_nothing(seeded: str) -> None:
    assert_one_line_error(cli(seeded, "set", "s1", "data.flag=1", "data.notes[7]=x"), "data.notes[7]")
    assert_one_line_error(cli(seeded, "set", "s1", "1bad=3"), "cannot parse path")
    assert seqs(seeded) == [1, 2, 3]


def test_set_without_equals_is_a_usage_error(seeded: str) -> None:
    result = cli(seeded, "set", "s1", "data.flag")
    assert result.exit_code == 2
    assert "PATH=VALUE" in result.output


# --- fork --------------------------------------------------------------------------------------------------
def test_fork_prints_the_new_id(seeded: str) -> None:
    result = cli(seeded, "fork", "s1", "--at", "2", "--as", "s2")
    assert result.exit_code == 0
    assert result.stdout == "s2\n"
    assert load(seeded, "s2").state == load(seeded, "s1", 2).state
    assert cli(seeded, "fork", "s1").stdout == "s1-fork-3\n"


def test_fork_into_an_existing_session(seeded: str) -> None:
    cli(seeded, "fork", "s1", "--as", "s2")
    assert_one_line_error(cli(seeded, "fork", "s1", "--as", "s2"), "exists")


# --- export / import ---------------------------------------------------------------------------------------
def test_export_and_import_round_trip(seeded: str, tmp_path: Path) -> None:
    bundle = tmp_path / "s1.tar"
    result = cli(seeded, "export", "s1", "-o", str(bundle))
    assert result.exit_code == 0, result.output
    assert bundle.exists() and str(bundle) in result.stdout

    other = str(tmp_path / "other")
    imported = cli(other, "import", str(bundle))
    assert imported.exit_code == 0, imported.output
    assert "imported session s1 (head seq 3)" in imported.stdout
    assert load(other).state == load(seeded).state

    renamed = cli(seeded, "import", str(bundle), "--as", "s1-copy")
    assert renamed.exit_code == 0, renamed.output
    assert seqs(seeded, "s1-copy") == [1, 2, 3]
    assert_one_line_error(cli(seeded, "import", str(bundle)), "already exists", "--as")


def test_export_default_path(seeded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(seeded, "export", "s1").exit_code == 0
    assert (tmp_path / "s1.safepoint.tar").exists()


def test_import_not_a_bundle(store: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_text("not a tar file")
    assert_one_line_error(cli(store, "import", str(junk)), "junk.tar")
    assert_one_line_error(cli(store, "import", str(tmp_path / "missing.tar")), "missing.tar")


# --- fsck / gc ---------------------------------------------------------------------------------------------
def test_fsck_healthy_store(seeded: str) -> None:
    result = cli(seeded, "fsck")
    assert result.exit_code == 0
    assert "checked 3 checkpoints" in result.stdout
    assert "ok: no problems found" in result.stdout


def test_fsck_reports_damage_and_exits_1(seeded: str) -> None:
    record = Path(seeded) / "commits" / "s1" / f"{2:012d}"
    blob = bytearray(record.read_bytes())
    blob[-1] ^= 0xFF
    record.write_bytes(bytes(blob))
    result = cli(seeded, "fsck")
    assert result.exit_code == 1
    assert "1 problem found" in result.stdout
    assert "commits/s1/000000000002" in result.stdout
    assert "breaks session s1 seq 2-3" in result.stdout
    assert "last good checkpoint is seq 1" in result.stdout


def test_gc_dry_run_then_for_real(seeded: str) -> None:
    cli(seeded, "set", "s1", "data.a=1")  # manual edits are keyframes: older checkpoints become droppable
    cli(seeded, "set", "s1", "data.b=2")
    dry = cli(seeded, "gc", "--keep-last", "1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert re.match(r"would delete 4 checkpoints and \d+ objects, would free .+; kept \d+ objects", dry.stdout)
    assert seqs(seeded) == [1, 2, 3, 4, 5]

    assert cli(seeded, "gc", "--keep-last", "5", "--newer-than", "1h").stdout.startswith("deleted 0 checkpoints")
    real = cli(seeded, "gc", "--keep-last", "1")
    assert real.stdout.startswith("deleted 4 checkpoints")
    assert seqs(seeded) == [5]
    assert load(seeded).state["data"]["b"] == 2


def test_gc_usage_errors(store: str) -> None:
    assert cli(store, "gc", "--newer-than", "soon").exit_code == 2
    assert cli(store, "gc", "--keep-last", "0").exit_code == 2


def test_parse_since() -> None:
    week_ago = datetime.now(UTC) - timedelta(days=7)
    assert abs((_parse_since("7d") - week_ago).total_seconds()) < 5
    assert abs((_parse_since("2w") - (week_ago - timedelta(days=7))).total_seconds()) < 5
    assert abs((_parse_since("30m") - datetime.now(UTC) + timedelta(minutes=30)).total_seconds()) < 5
    assert _parse_since("2026-01-01").tzinfo is not None
    assert _parse_since("2026-01-01T00:00:00+00:00") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        _parse_since("yesterday")


def test_ranges() -> None:
    assert _ranges([5, 1, 2, 3, 9, 10]) == "1-3, 5, 9-10"
    assert _ranges([4]) == "4"


# --- errors: one red line, exit 1; usage errors exit 2 ------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["show", "nope"], "no session 'nope'"),
        (["history", "nope"], "no session 'nope'"),
        (["diff", "nope", "1", "2"], "no session 'nope'"),
        (["edit", "nope"], "no session 'nope'"),
        (["set", "nope", "data.x=1"], "no session 'nope'"),
        (["set", "nope", "data.x=1", "data.y=2"], "no session 'nope'"),
        (["fork", "nope"], "no session 'nope'"),
        (["export", "nope"], "no session 'nope'"),
        (["show", "s1", "--seq", "99"], "no checkpoint seq 99"),
        (["diff", "s1", "1", "99"], "no checkpoint seq 99"),
        (["fork", "s1", "--at", "99"], "no checkpoint seq 99"),
        (["show", "a/b"], "contains a path separator"),
        (["fork", "s1", "--as", "../x"], "contains a path separator"),
        (["import", "bundle.tar", "--as", "a/b"], "contains a path separator"),
        (["demo", "--session", "s1", "--delay", "0"], "not made by the demo"),
    ],
)
def test_errors_are_one_line(seeded: str, args: list[str], fragment: str) -> None:
    assert_one_line_error(cli(seeded, *args), fragment)
    assert seqs(seeded) == [1, 2, 3]


def test_unknown_store_scheme(store: str) -> None:
    assert_one_line_error(runner.invoke(app, ["--store", "bogus://x", "ls"]), "unknown scheme")


def test_debug_shows_the_traceback(seeded: str) -> None:
    result = cli(seeded, "--debug", "show", "nope")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "SessionNotFound" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: no session 'nope'")


@pytest.mark.parametrize(
    "args",
    [["show", "s1", "--seq", "0"], ["show"], ["diff", "s1", "1"], ["demo", "--crash-at", "14"], ["frobnicate"]],
)
def test_usage_errors_exit_2(seeded: str, args: list[str]) -> None:
    assert cli(seeded, *args).exit_code == 2


# --- demo --------------------------------------------------------------------------------------------------
def test_demo_runs_to_the_end_and_again(store: str, tmp_path: Path) -> None:
    outbox = str(tmp_path / "outbox.db")
    result = cli(store, "demo", "--session", "d0", "--delay", "0", "--auto-approve", "--outbox", outbox)
    assert result.exit_code == 0, result.output
    assert "step 13/13 send" in result.stdout and "1 delivery of send-report:d0" in result.stdout
    assert load(store, "d0").status == sp.Status.COMPLETED
    before = seqs(store, "d0")
    again = cli(store, "demo", "--session", "d0", "--delay", "0")
    assert again.exit_code == 0 and "completed at seq" in again.stdout and "step 1/13" not in again.stdout
    assert seqs(store, "d0") == before


def test_demo_crash_and_resume_in_a_real_process(tmp_path: Path) -> None:
    env = {**os.environ, "SAFEPOINT_STORE": str(tmp_path / "store")}
    command = [sys.executable, "-m", "safepoint", "demo", "--session", "d1", "--delay", "0", "--fail-rate", "0"]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*command, *extra], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    crashed = run("--crash-at", "3")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "step  2/13" in crashed.stdout and "crash: SIGKILL in the middle of a step" in crashed.stdout
    assert "step  3/13" not in crashed.stdout

    resumed = run("--auto-approve")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at seq 2: 2 steps replayed from checkpoints" in resumed.stdout
    assert "step  1/13" not in resumed.stdout and "step  3/13 extract:grid-impacts.txt" in resumed.stdout
    # Inside the directory store, hidden from its keys: nothing left in the working directory.
    assert (tmp_path / "store" / ".demo-outbox.db").exists() and not (tmp_path / "demo-outbox.db").exists()
    assert not [key for key in sp.open(tmp_path / "store").store.list() if "outbox" in key]

    history = runner.invoke(app, ["history", "d1", "--json"], env={"SAFEPOINT_STORE": env["SAFEPOINT_STORE"]})
    steps = [row["step"] for row in json.loads(history.stdout)]
    assert steps[:3] == ["plan", "extract:cold-climates.txt", "extract:grid-impacts.txt"]
    assert steps[-1] == "completed"


# --- docs --------------------------------------------------------------------------------------------------
def _commands() -> list[str]:
    return sorted(typer.main.get_command(app).commands)


def test_every_command_is_documented() -> None:
    text = DOCS.read_text()
    missing = [name for name in _commands() if f"## `safepoint {name}`" not in text]
    assert not missing, f"commands missing from docs/cli.md: {missing}"
    assert len(_commands()) >= 12  # guards against the lookup silently finding nothing


def _doc_examples() -> list[str]:
    """The `$ ...` lines of the ```console blocks in docs/cli.md, in order."""
    examples, in_console = [], False
    for line in DOCS.read_text().splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
        elif in_console and line.startswith("$ "):
            examples.append(line[2:])
    return examples


def test_doc_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, editor) -> None:
    """Every example in docs/cli.md runs, in order, in an empty directory (so the docs cannot rot)."""
    monkeypatch.delenv("SAFEPOINT_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    examples = _doc_examples()
    assert len(examples) > 15
    for example in examples:
        words = shlex.split(example)
        env = {"EDITOR": editor("note")}
        while "=" in words[0]:
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        assert words[0] == "safepoint", example
        if "--crash-at" in words:  # it kills its process: run it in its own
            done = subprocess.run(
                [sys.executable, "-m", "safepoint", *words[1:]],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == -signal.SIGKILL, (example, done.stderr)
            continue
        result = runner.invoke(app, words[1:], env=env)
        assert result.exit_code == 0, (example, result.output)
