"""Commands that change a session, each as an audited checkpoint: `edit`, `set`, `fork`, `resolve`, `fail`, `retry`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from ..core.paths import parse_assignment, parse_json
from ..errors import SafepointError
from .app import JsonFlag, SessionArg, command, fail, note, open_repo, print_json


@command()
def edit(ctx: typer.Context, session_id: SessionArg, as_json: JsonFlag = False) -> None:
    """Edit the head state in $VISUAL or $EDITOR (default vi) and commit it as an audited manual edit."""
    repo = open_repo(ctx)
    head = repo.load(session_id)
    before = json.dumps(head.state, indent=2, ensure_ascii=False) + "\n"
    path = _write_temp(before, prefix="safepoint-edit-", suffix=".json")
    _run_editor(path)
    after = path.read_text(encoding="utf-8")
    kept = f"nothing committed; your edit is kept in {path}"
    try:
        state = parse_json(after)
    except json.JSONDecodeError as exc:
        fail(f"invalid JSON in the edited state at line {exc.lineno} column {exc.colno}: {exc.msg}; {kept}")
    except ValueError as exc:
        fail(f"invalid JSON in the edited state: {exc}; {kept}")
    if after == before or _canonical(state) == _canonical(head.state):
        path.unlink()
        if as_json:
            return print_json({"session": session_id, "committed": False, "seq": head.seq})
        return typer.echo(f"no changes; nothing committed to session {session_id}")
    try:
        checkpoint = repo.replace_state(session_id, state, how="edit", expect_seq=head.seq)
    except SafepointError as exc:
        fail(f"{exc}; {kept}")
    path.unlink()
    if as_json:
        return print_json({"session": session_id, "committed": True, "seq": checkpoint.seq})
    typer.echo(f"session {session_id}: committed seq {checkpoint.seq} (manual edit)")


@command("set")
def set_(
    ctx: typer.Context,
    session_id: SessionArg,
    assignments: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH=VALUE...",
            help="e.g. data.notes[0]='\"hi\"' or mission.goal=Compare; VALUE is JSON if it parses, else a string.",
            show_default=False,
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Set values inside the head state and commit them as one audited manual edit."""
    values = dict(_assignment(text) for text in assignments)
    checkpoint = open_repo(ctx).set_values(session_id, values)
    if as_json:
        return print_json({"session": session_id, "committed": True, "seq": checkpoint.seq})
    typer.echo(f"session {session_id}: committed seq {checkpoint.seq} ({checkpoint.meta.get('how')})")


@command()
def fork(
    ctx: typer.Context,
    session_id: SessionArg,
    at: Annotated[
        int | None, typer.Option("--at", min=1, metavar="N", help="Seq to fork from (default: head).")
    ] = None,
    new_id: Annotated[str | None, typer.Option("--as", metavar="NEW", help="Id of the new session.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a new session from a checkpoint of another; prints the new session's id."""
    info = open_repo(ctx).fork(session_id, at=at, new_id=new_id)
    if as_json:
        return print_json(info.to_dict())
    note(f"forked session {session_id} at seq {(info.parent or {}).get('seq')} as {info.id}")
    typer.echo(info.id)


def _write_temp(text: str, *, prefix: str, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def _run_editor(path: Path) -> None:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        command = [*shlex.split(editor), str(path)]
        code = subprocess.run(command, check=False).returncode
    except (ValueError, OSError) as exc:
        path.unlink()
        fail(f"cannot run the editor {editor!r} ({exc}); set $VISUAL or $EDITOR to an editor command")
    if code != 0:
        fail(f"the editor {editor!r} exited with status {code}; nothing committed, the file is kept in {path}")


def _canonical(value: Any) -> str:
    # json.dumps tells true from 1 and 1.0, which == does not.
    return json.dumps(value, sort_keys=True)


def _assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:  # a usage error (exit 2), like any malformed argument
        raise typer.BadParameter(f"{text!r} has no '='; write PATH=VALUE, e.g. data.status=done")
    return parse_assignment(text)


@command()
def resolve(
    ctx: typer.Context,
    session_id: SessionArg,
    key: Annotated[str, typer.Argument(metavar="KEY", help="The effect's idempotency key (see `safepoint show`).")],
    outcome: Annotated[str, typer.Argument(metavar="done|retry", help="done: it happened; retry: run it again.")],
    result: Annotated[
        str | None, typer.Option("--result", metavar="JSON", help="With done: the result the call had.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Settle an effect in doubt (started, never recorded as done): it happened (with its result), or run it again."""
    repo = open_repo(ctx)
    value = None
    if result is not None:
        try:
            value = parse_json(result)
        except ValueError as exc:
            fail(f"--result is not valid JSON ({exc}); nothing was changed")
    checkpoint = repo.resolve_effect(session_id, key, outcome, value, by="cli")
    if as_json:
        return print_json({"session": session_id, "effect": key, "outcome": outcome, "seq": checkpoint.seq})
    typer.echo(f"session {session_id}: effect {key!r} resolved as {outcome} at seq {checkpoint.seq}")


@command("fail")
def fail_(
    ctx: typer.Context,
    session_id: SessionArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded as the session's error).")],
    as_json: JsonFlag = False,
) -> None:
    """Mark a session failed by hand (an audited checkpoint); workers leave it alone until `safepoint retry`."""
    checkpoint = open_repo(ctx).mark_failed(session_id, reason, by="cli")
    if as_json:
        return print_json({"session": session_id, "status": "failed", "seq": checkpoint.seq})
    typer.echo(f"session {session_id}: marked failed at seq {checkpoint.seq}")


@command()
def retry(ctx: typer.Context, session_id: SessionArg, as_json: JsonFlag = False) -> None:
    """Make a failed session runnable again: a worker (or `safepoint resume`) re-runs the step that failed."""
    checkpoint = open_repo(ctx).retry(session_id, by="cli")
    if as_json:
        return print_json({"session": session_id, "status": "running", "seq": checkpoint.seq})
    typer.echo(f"session {session_id}: running again from seq {checkpoint.seq}; a worker or `safepoint resume` runs it")
