"""The `safepoint` command line: a thin typer app over the public API.

Each command opens the store, calls one `Repository` method and prints the result. Every `SafepointError`
(and `OSError`) becomes one red `error: ...` line on stderr and exit code 1; `--debug` adds the traceback.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from errno import EPIPE
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from . import demo as demo_agent
from .errors import InvalidState, SafepointError
from .model import Checkpoint, SessionInfo
from .repository import Repository, parse_path
from .repository import open as open_repository
from .stores import DEFAULT_URL

GLOBALS_HINT = "Global options --store URL and --debug may come before or after the command."


class _Group(TyperGroup):
    """Lets the global options follow the command too, and turns library errors into one line."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, _hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (SafepointError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == EPIPE:
                raise  # `safepoint ls | head`: typer exits quietly
            if ctx.params.get("debug"):
                traceback.print_exc()
            _fail(str(exc) or type(exc).__name__)


def _hoist_global_options(args: list[str]) -> list[str]:
    """Move `--store URL`, `--store=URL` and `--debug` in front of the command name (not past `--`)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--debug" or arg.startswith("--store="):
            front.append(arg)
        elif arg == "--store" and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest


app = typer.Typer(
    cls=_Group,
    name="safepoint",
    help="Durable checkpoints for AI agents: list, inspect, edit, fork and maintain saved sessions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class _Options:
    store: str
    debug: bool


@app.callback()
def _global(
    ctx: typer.Context,
    store: Annotated[
        str,
        typer.Option(
            "--store",
            envvar="SAFEPOINT_STORE",
            metavar="URL",
            help="The store: a path, file://..., sqlite:///agents.db or memory://.",
        ),
    ] = DEFAULT_URL,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    ctx.obj = _Options(store, debug)


# --- shared argument types --------------------------------------------------------------------------------
SessionArg = Annotated[str, typer.Argument(metavar="ID", help="The session id.", show_default=False)]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]


def _command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return app.command(name, epilog=GLOBALS_HINT)


# --- the commands -----------------------------------------------------------------------------------------
@_command()
def ls(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the sessions in the store, most recently saved first."""
    repo = _repo(ctx)
    infos = repo.sessions()
    if as_json:
        return _print_json([_session_json(info) for info in infos])
    if not infos:
        return _note(f"no sessions in {repo.url}")
    table = _table("session", "agent", "status", "step", "seq", "updated", "parent")
    for info in infos:
        head = info.head
        updated = head.created_at if head else info.created_at
        table.add_row(
            info.id, info.agent or "", _status(head), (head.step if head else None) or "", str(info.seq),
            _age(updated), _origin(info.parent),
        )  # fmt: skip
    _out().print(table)


@_command()
def show(
    ctx: typer.Context,
    session_id: SessionArg,
    seq: Annotated[
        int | None, typer.Option("--seq", min=1, metavar="N", help="Checkpoint seq (default: head).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help='Print {"checkpoint": ..., "state": ...} as JSON.')] = False,
) -> None:
    """Show one checkpoint's metadata and its state."""
    checkpoint = _repo(ctx).load(session_id, seq)
    if as_json:
        return _print_json({"checkpoint": _checkpoint_json(checkpoint), "state": checkpoint.state})
    grid = Table.grid(padding=(0, 2))
    for name, value in _checkpoint_json(checkpoint).items():
        shown = "-" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        grid.add_row(Text(name, style="bold"), shown)
    _out().print(grid)
    _out().print(JSON.from_data(checkpoint.state, indent=2))


@_command()
def history(ctx: typer.Context, session_id: SessionArg, as_json: JsonFlag = False) -> None:
    """List a session's checkpoints, oldest first."""
    checkpoints = _repo(ctx).history(session_id)
    if as_json:
        return _print_json([_checkpoint_json(cp) for cp in checkpoints])
    _print_history(checkpoints)


@_command()
def diff(
    ctx: typer.Context,
    session_id: SessionArg,
    a: Annotated[int, typer.Argument(min=1, metavar="A", help="The older seq.")],
    b: Annotated[int, typer.Argument(min=1, metavar="B", help="The newer seq.")],
) -> None:
    """Show what changed in the state from checkpoint A to checkpoint B (+ added, - removed, ~ changed)."""
    lines = _repo(ctx).diff(session_id, a, b)
    if not lines:
        return _note(f"no differences between seq {a} and seq {b} of session {session_id}")
    styles = {"+": "green", "-": "red", "~": "yellow"}
    for line in lines:
        _out().print(Text(line, style=styles.get(line[:1], "")))


@_command()
def edit(ctx: typer.Context, session_id: SessionArg) -> None:
    """Edit the head state in $VISUAL or $EDITOR (default vi) and commit it as an audited manual edit."""
    repo = _repo(ctx)
    head = repo.load(session_id)
    before = json.dumps(head.state, indent=2, ensure_ascii=False) + "\n"
    path = _write_temp(before, prefix="safepoint-edit-", suffix=".json")
    _run_editor(path)
    after = path.read_text(encoding="utf-8")
    kept = f"nothing committed; your edit is kept in {path}"
    try:
        state = json.loads(after, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        _fail(f"invalid JSON in the edited state at line {exc.lineno} column {exc.colno}: {exc.msg}; {kept}")
    except ValueError as exc:
        _fail(f"invalid JSON in the edited state: {exc}; {kept}")
    if after == before or _canonical(state) == _canonical(head.state):
        path.unlink()
        return typer.echo(f"no changes; nothing committed to session {session_id}")
    try:
        checkpoint = repo.replace_state(session_id, state, how="edit", expect_seq=head.seq)
    except SafepointError as exc:
        _fail(f"{exc}; {kept}")
    path.unlink()
    typer.echo(f"session {session_id}: committed seq {checkpoint.seq} (manual edit)")


@_command("set")
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
) -> None:
    """Set values inside the head state and commit them as one audited manual edit."""
    values = dict(_assignment(text) for text in assignments)
    checkpoint = _repo(ctx).set_values(session_id, values)
    typer.echo(f"session {session_id}: committed seq {checkpoint.seq} ({checkpoint.meta.get('how')})")


@_command()
def fork(
    ctx: typer.Context,
    session_id: SessionArg,
    at: Annotated[
        int | None, typer.Option("--at", min=1, metavar="N", help="Seq to fork from (default: head).")
    ] = None,
    new_id: Annotated[str | None, typer.Option("--as", metavar="NEW", help="Id of the new session.")] = None,
) -> None:
    """Start a new session from a checkpoint of another; prints the new session's id."""
    info = _repo(ctx).fork(session_id, at=at, new_id=new_id)
    _note(f"forked session {session_id} at seq {(info.parent or {}).get('seq')} as {info.id}")
    typer.echo(info.id)


@_command()
def export(
    ctx: typer.Context,
    session_id: SessionArg,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Bundle path (default: ID.safepoint.tar).")
    ] = None,
) -> None:
    """Write a session, its whole history and its artifacts to one portable bundle file."""
    with _spinner(f"exporting session {session_id}"):
        path = _repo(ctx).export_session(session_id, output or Path(f"{session_id}.safepoint.tar"))
    typer.echo(f"exported session {session_id} to {path}")


@_command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A bundle written by `safepoint export`.")],
    as_id: Annotated[str | None, typer.Option("--as", metavar="NEW", help="Import under this session id.")] = None,
) -> None:
    """Import a session bundle (written by `safepoint export`) into the store."""
    with _spinner(f"importing {path}"):
        info = _repo(ctx).import_session(path, as_id=as_id)
    typer.echo(f"imported session {info.id} (head seq {info.seq}) from {path}")


@_command()
def fsck(ctx: typer.Context) -> None:
    """Verify every checkpoint and object; list what is damaged and which checkpoints it breaks."""
    repo = _repo(ctx)
    with _spinner("checking session") as progress:
        report = repo.fsck(progress=progress)
    out = _out()
    out.print(
        f"checked {report.checked_checkpoints} checkpoints and {report.checked_objects} objects; "
        f"swept {report.swept} stale temp files"
    )
    if report.ok:
        return out.print(Text("ok: no problems found", style="green"))
    count = len(report.problems)
    out.print(Text(f"{count} problem{'s' if count > 1 else ''} found:", style="red"))
    sessions: dict[str, list[int]] = {}
    for problem in report.problems:
        out.print(Text(f"  {problem.key}: {problem.reason}", style="red"))
        for session_id, seqs in _by_session(problem.broken).items():
            out.print(f"    breaks session {session_id} seq {_ranges(seqs)}")
            sessions.setdefault(session_id, []).extend(seqs)
    for session_id in sessions:
        good = repo.last_good(session_id) if repo.exists(session_id) else None
        if good is not None:
            out.print(f"session {session_id}: last good checkpoint is seq {good}; "
                      f"continue from it with `safepoint fork {shlex.quote(session_id)} --at {good}`")  # fmt: skip
    raise typer.Exit(1)


@_command()
def gc(
    ctx: typer.Context,
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", min=1, metavar="N", help="Keep the last N checkpoints per session.")
    ] = None,
    newer_than: Annotated[
        datetime | None,
        typer.Option(
            "--newer-than",
            parser=lambda text: _parse_since(text),
            metavar="AGE|DATE",
            help="Keep checkpoints newer than an age (30m, 12h, 7d, 2w) or a date (2026-01-01).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be deleted.")] = False,
) -> None:
    """Delete old checkpoints (with --keep-last / --newer-than) and every object nothing references."""
    with _spinner("collecting garbage in session") as progress:
        report = _repo(ctx).gc(keep_last=keep_last, newer_than=newer_than, dry_run=dry_run, progress=progress)
    verb = "would delete" if report.dry_run else "deleted"
    typer.echo(
        f"{verb} {report.deleted_checkpoints} checkpoints and {report.deleted_objects} objects, "
        f"{'would free' if report.dry_run else 'freed'} {_size(report.freed_bytes)}; "
        f"kept {report.kept_objects} objects"
    )


@_command()
def demo(
    ctx: typer.Context,
    session: Annotated[
        str | None, typer.Option("--session", metavar="ID", help="Run or resume this session here, once.")
    ] = None,
    crash_at: Annotated[
        int | None,
        typer.Option(
            "--crash-at", min=1, max=len(demo_agent.step_names()), metavar="N", help="Kill the process in step N."
        ),
    ] = None,
    crash_rate: Annotated[
        float, typer.Option("--crash-rate", min=0, max=1, metavar="P", help="Kill it at each crash point with P.")
    ] = 0.0,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", min=0, max=1, metavar="P", help="Model calls failing with 503/429.")
    ] = 0.2,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Approve the outline without asking.")] = False,
    outbox: Annotated[
        Path | None, typer.Option("--outbox", metavar="FILE", help="The outbox SQLite file (new sessions).")
    ] = None,
    delay: Annotated[
        float, typer.Option("--delay", min=0, metavar="SECONDS", help="Offline model latency; 0: no waits at all.")
    ] = demo_agent.DEFAULT_DELAY,
    seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="Seed the injected failures.")] = None,
) -> None:
    """Run a research-and-write agent over a small corpus. Without --session: crash, resume, approve, summary."""
    repo = _repo(ctx)
    options = demo_agent.Options(
        crash_at=crash_at, crash_rate=crash_rate, fail_rate=fail_rate, delay=delay, seed=seed, outbox=outbox
    )
    if session is None:
        code = demo_agent.tour(repo, ctx.obj.store, options)
    else:
        code = demo_agent.run_session(repo, ctx.obj.store, session, options, auto_approve=auto_approve)
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point of the `safepoint` console script and of `python -m safepoint`."""
    app(prog_name="safepoint")


# --- helpers ----------------------------------------------------------------------------------------------
def _repo(ctx: typer.Context) -> Repository:
    return ctx.with_resource(open_repository(ctx.obj.store))


def _out() -> Console:
    return Console(highlight=False, markup=False, soft_wrap=True)


def _note(message: str) -> None:
    Console(stderr=True, highlight=False, markup=False, soft_wrap=True).print(message)


def _fail(message: str) -> NoReturn:
    """Print one red `error:` line on stderr and exit 1."""
    line = " ".join(message.splitlines())
    Console(stderr=True, highlight=False, markup=False, soft_wrap=True).print(Text(f"error: {line}", style="red"))
    raise typer.Exit(1)


@contextmanager
def _spinner(what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr while a long call runs, only when stderr is a terminal; yields a progress callback."""
    if not sys.stderr.isatty():
        yield None
        return
    with Console(stderr=True).status(Text(what)) as status:
        yield lambda name: status.update(Text(f"{what} {name}"))


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


# Short fixed-format columns never wrap; ids, steps and edit notes fold when the terminal is narrow.
_NO_WRAP = {"seq", "time", "status", "kind", "updated", "checksum"}


def _table(*columns: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        table.add_column(name, overflow="fold", no_wrap=name in _NO_WRAP)
    return table


def _print_history(checkpoints: list[Checkpoint]) -> None:
    table = _table("seq", "time", "step", "status", "kind", "edit", "checksum")
    for cp in checkpoints:
        edit = str(cp.meta.get("how") or "edit") if cp.is_manual_edit else ""
        table.add_row(
            str(cp.seq), _local_time(cp.created_at), cp.step or "", _status(cp),
            "keyframe" if cp.keyframe else "delta", edit, cp.checksum[:12],
        )  # fmt: skip
    _out().print(table)


_STATUS_STYLE = {"running": "yellow", "waiting": "cyan", "paused": "magenta", "failed": "red", "completed": "green"}


def _status(checkpoint: Checkpoint | None) -> Text:
    status = str(checkpoint.status) if checkpoint else ""
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _session_json(info: SessionInfo) -> dict[str, Any]:
    head = info.head
    return {
        "id": info.id,
        "agent": info.agent,
        "tags": info.tags,
        "status": str(head.status) if head else None,
        "step": head.step if head else None,
        "seq": info.seq,
        "created_at": info.created_at.isoformat(),
        "updated_at": head.created_at.isoformat() if head else None,
        "parent": info.parent,
    }


def _checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    return {
        "session": cp.session,
        "seq": cp.seq,
        "parent": cp.parent,
        "created_at": cp.created_at.isoformat(),
        "step": cp.step,
        "status": str(cp.status),
        "schema_version": cp.schema_version,
        "format": cp.format,
        "keyframe": cp.keyframe,
        "manual_edit": cp.is_manual_edit,
        "checksum": cp.checksum,
        "meta": cp.meta,
    }


def _origin(parent: dict[str, Any] | None) -> str:
    if not parent:
        return ""
    return f"{parent.get('session')}@{parent.get('seq')}" if "seq" in parent else str(parent.get("session", ""))


def _local_time(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _age(when: datetime) -> str:
    """`12s ago`, `3m ago`, `5h ago`, `2d ago`; the date beyond a month."""
    seconds = (datetime.now(UTC) - when).total_seconds()
    if seconds < 1:
        return "just now"
    for limit, unit, name in ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h"), (30 * 86400, 86400, "d")):
        if seconds < limit:
            return f"{int(seconds // unit)}{name} ago"
    return when.astimezone().strftime("%Y-%m-%d")


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for bigger in ("KB", "MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _parse_since(text: str) -> datetime:
    """`7d` -> now minus 7 days; `2026-01-01` (local time unless it says otherwise) -> that moment."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is neither an age (30m, 12h, 7d, 2w) nor a date (2026-01-01)") from None
    return when if when.tzinfo else when.astimezone()


def _by_session(broken: list[tuple[str, int]]) -> dict[str, list[int]]:
    grouped: dict[str, list[int]] = {}
    for session_id, seq in broken:
        grouped.setdefault(session_id, []).append(seq)
    return grouped


def _ranges(seqs: list[int]) -> str:
    """[1, 2, 3, 5] -> `1-3, 5`."""
    runs: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][-1] + 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


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
        _fail(f"cannot run the editor {editor!r} ({exc}); set $VISUAL or $EDITOR to an editor command")
    if code != 0:
        _fail(f"the editor {editor!r} exited with status {code}; nothing committed, the file is kept in {path}")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _canonical(value: Any) -> str:
    # json.dumps tells true from 1 and 1.0, which == does not.
    return json.dumps(value, sort_keys=True)


def _parse_value(text: str) -> Any:
    """JSON when it parses (`3`, `true`, `"x"`, `[1]`), else the text itself as a string."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text


def _assignment(text: str) -> tuple[str, Any]:
    """`data.notes[0]=3` -> ("data.notes[0]", 3); the path ends at the first `=` where it parses."""
    positions = [i for i, ch in enumerate(text) if ch == "="]
    if not positions:
        raise typer.BadParameter(f"{text!r} has no '='; write PATH=VALUE, e.g. data.status=done")
    first_error = None
    for i in positions:
        try:
            parse_path(text[:i])
        except InvalidState as exc:
            first_error = first_error or exc
            continue
        return text[:i], _parse_value(text[i + 1 :])
    raise first_error


# The commands that run agents live in their own module; importing it registers them on `app`.
from . import cli_run  # noqa: E402, F401
