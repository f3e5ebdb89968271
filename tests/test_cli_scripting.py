"""The CLI in scripts: `--json` on every command, tables that do not wrap in a pipe, `show` says what is needed."""

from __future__ import annotations

import base64
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app

runner = CliRunner()
#: The demo is a guided tour for people, and `mcp` a server speaking JSON-RPC itself: no result to print as JSON.
NO_JSON = {"demo", "mcp", "dashboard"}
#: Commands still without --json (none: a command that gets one here needs a reason).
NO_JSON_YET: set[str] = set()


@sp.agent("sc-asker", schema=dict)
def asker(s: sp.Session) -> str:
    s.report_usage(tokens=120, cost=0.5)
    return s.wait_for("approve", prompt="Approve the outline about heat pumps?", schema=bool)


@sp.agent("sc-failer", schema=dict)
def failer(s: sp.Session) -> None:
    def flaky() -> None:
        raise TimeoutError("the model timed out")

    s.step("draft", flaky, retry=sp.RetryPolicy(attempts=3, initial=0.001, maximum=0.001, transient=lambda exc: True))


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


def invoke(store: str, *args: str) -> object:
    result = runner.invoke(app, ["--store", store, *args])
    assert result.exit_code in (0, 1, sp.WAITING_EXIT_CODE), result.output
    return result


def test_every_command_has_json() -> None:
    missing = []
    for command in app.registered_commands:
        name = command.name or command.callback.__name__
        if name not in NO_JSON | NO_JSON_YET and "as_json" not in inspect.signature(command.callback).parameters:
            missing.append(name)
    assert not missing, f"commands without --json: {missing}"


def test_json_output_of_the_commands_scripts_use(store: str, tmp_path: Path) -> None:
    sp.run(asker, "w1", store=sp.open(store))
    outputs = {
        "ls": ["ls", "--json"],
        "show": ["show", "w1", "--json"],
        "history": ["history", "w1", "--json"],
        "diff": ["diff", "w1", "1", "1", "--json"],
        "send": ["send", "w1", "approve", "true", "--json"],
        "resume": ["resume", "w1", "--json"],
        "fork": ["fork", "w1", "--as", "w2", "--json"],
        "set": ["set", "w2", "note=checked", "--json"],
        "export": ["export", "w2", "-o", str(tmp_path / "w2.tar"), "--json"],
        "delete": ["delete", "w2", "--json"],
        "import": ["import", str(tmp_path / "w2.tar"), "--json"],
        "gc": ["gc", "--json"],
        "fsck": ["fsck", "--json"],
        "worker": ["worker", "--for", "0", "--json"],
    }
    docs = {}
    for name, args in outputs.items():
        result = invoke(store, *args)
        assert result.exit_code == 0, (name, result.output)
        docs[name] = json.loads(result.stdout)
    assert docs["send"] == {"session": "w1", "answered": "approve", "seq": 2, "ready": True}
    assert docs["resume"]["status"] == "completed" and docs["resume"]["value"] is True
    assert docs["fsck"]["ok"] is True and docs["fsck"]["problems"] == []
    assert set(docs["gc"]) == {"deleted_checkpoints", "deleted_objects", "freed_bytes", "kept_objects", "dry_run"}
    assert docs["diff"] == [] and docs["worker"] == []
    assert docs["import"]["id"] == "w2" and docs["delete"]["deleted_checkpoints"] == 2


def test_show_prints_the_pending_prompt_and_the_usage(store: str) -> None:
    sp.run(asker, "w1", store=sp.open(store))
    shown = invoke(store, "show", "w1").stdout
    assert re.search(r"^waiting for +approve: Approve the outline about heat pumps\?", shown, re.M)
    assert re.search(r"^usage +cost 0.5, tokens 120", shown, re.M)
    doc = json.loads(invoke(store, "show", "w1", "--json").stdout)
    assert doc["waiting_for"] == {"approve": "Approve the outline about heat pumps?"}
    assert doc["usage"]["tokens"] == 120


def test_show_prints_the_failed_step_with_its_error_and_attempts(store: str) -> None:
    assert sp.run(failer, "f1", store=sp.open(store)).status == sp.Status.FAILED
    shown = invoke(store, "show", "f1").stdout
    assert re.search(r"^error +step 'draft' after 3 attempt\(s\): TimeoutError: the model timed out", shown, re.M)
    doc = json.loads(invoke(store, "show", "f1", "--json").stdout)
    assert doc["error"]["step"] == "draft" and doc["error"]["attempts"] == 3


def test_piped_tables_do_not_wrap(store: str) -> None:
    ids = [f"a-rather-long-session-id-that-a-narrow-table-would-fold-{n:03d}" for n in range(5)]
    with sp.open(store) as repo:
        for session_id in ids:
            with repo.session(session_id, agent="an-agent-name-that-takes-room-too") as s:
                s.save(step="a step name long enough to push the table past eighty columns")
    # A real pipe, as `safepoint ls | grep ID` has.
    listing = subprocess.run(
        [sys.executable, "-m", "safepoint", "--store", store, "ls"], capture_output=True, text=True, check=True
    ).stdout
    rows = listing.splitlines()[1:]
    assert len(rows) == len(ids)
    for session_id in ids:
        [row] = [line for line in rows if session_id in line]
        assert "an-agent-name-that-takes-room-too" in row and "past eighty columns" in row


def test_an_edit_that_breaks_the_schema_says_to_correct_it_not_to_migrate(store: str) -> None:
    with sp.open(store) as repo:
        with repo.session("e1") as s:
            s.save(step="one")
        with pytest.raises(sp.InvalidState) as caught:
            repo.replace_state("e1", {"mission": 5})
        assert "correct that value and try again" in str(caught.value)
        assert "migration" not in str(caught.value)
        assert [c.seq for c in repo.history("e1")] == [1]


def test_resolve_fail_and_retry_print_json(store: str) -> None:
    repo = sp.open(store)
    with repo.session("d1") as s:
        s.runtime["effects"] = {"email:1": {"status": "intent", "at": "2026-01-01T00:00:00+00:00"}}
        s.save(step="effect email:1: intent")
    resolved = invoke(store, "resolve", "d1", "email:1", "done", "--result", '{"id": 7}', "--json")
    assert resolved.exit_code == 0, resolved.output
    assert json.loads(resolved.stdout) == {"session": "d1", "effect": "email:1", "outcome": "done", "seq": 2}
    assert repo.summary("d1").in_doubt == []
    failed = invoke(store, "fail", "d1", "--reason", "given up", "--json")
    assert json.loads(failed.stdout) == {"session": "d1", "status": "failed", "seq": 3}
    assert repo.info("d1").status == sp.Status.FAILED
    retried = invoke(store, "retry", "d1", "--json")
    assert json.loads(retried.stdout) == {"session": "d1", "status": "running", "seq": 4}
    assert repo.info("d1").status == sp.Status.RUNNING


def test_keygen_and_rekey_print_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    printed = invoke(str(tmp_path / "unused"), "keygen", "--json")
    key = json.loads(printed.stdout)["key"]
    assert set(json.loads(printed.stdout)) == {"key"} and len(base64.b64decode(key, validate=True)) == 32
    written = invoke(str(tmp_path / "unused"), "keygen", "-o", "new.key", "--json")
    assert json.loads(written.stdout) == {"key_file": str(tmp_path / "new.key")}
    assert (tmp_path / "new.key").read_text().strip() not in written.stdout  # the key stays in its file
    url = f"sqlite:///{tmp_path / 's.db'}"
    with sp.open(url, key=key) as repo, repo.session("k1") as s:
        s.state.mission.goal = "secret plans"
        s.save(step="one")
    monkeypatch.setenv("SAFEPOINT_KEY", key)
    rekeyed = invoke(url, "rekey", "--new-key-file", "new.key", "--json")
    assert rekeyed.exit_code == 0, rekeyed.output
    doc = json.loads(rekeyed.stdout)
    assert set(doc) == {"rewritten", "already", "plain", "key_file"} and doc["key_file"] == str(tmp_path / "new.key")
    assert doc["rewritten"] > 0 and doc["already"] == 0
    monkeypatch.setenv("SAFEPOINT_KEY", (tmp_path / "new.key").read_text().strip())
    again = json.loads(invoke(url, "rekey", "--new-key-file", "new.key", "--json").stdout)  # run again: nothing to do
    assert again["rewritten"] == 0 and again["already"] == doc["rewritten"]
    monkeypatch.delenv("SAFEPOINT_KEY")
    assert sp.open(url, key=tmp_path / "new.key").load("k1").state["mission"]["goal"] == "secret plans"
