"""Commands over the whole store or a session's bundle: `export`, `import`, `fsck`, `gc`."""

from __future__ import annotations

import dataclasses
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from ..core.fsck import FsckReport, Problem
from ..errors import StorageError
from .app import JsonFlag, SessionArg, command, human_size, open_repo, out, print_json, spinner


@command()
def export(
    ctx: typer.Context,
    session_id: SessionArg,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", metavar="FILE", help="Bundle path (default: ID.safepoint.tar).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a session, its whole history and its artifacts to one portable bundle file."""
    with spinner(f"exporting session {session_id}"):
        path = open_repo(ctx).export_session(session_id, output or Path(f"{session_id}.safepoint.tar"))
    if as_json:
        return print_json({"session": session_id, "path": str(path)})
    typer.echo(f"exported session {session_id} to {path}")


@command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="A bundle written by `safepoint export`.")],
    as_id: Annotated[str | None, typer.Option("--as", metavar="NEW", help="Import under this session id.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import a session bundle (written by `safepoint export`) into the store."""
    with spinner(f"importing {path}"):
        info = open_repo(ctx).import_session(path, as_id=as_id)
    if as_json:
        return print_json(info.to_dict())
    typer.echo(f"imported session {info.id} (head seq {info.seq}) from {path}")


@command()
def delete(
    ctx: typer.Context,
    session_id: SessionArg,
    force: Annotated[bool, typer.Option("--force", help="Delete it even while a live lease holds it.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a session and its whole history; the next `gc` frees what nothing else references."""
    deleted = open_repo(ctx).delete(session_id, force=force)
    if as_json:
        return print_json({"session": session_id, "deleted_checkpoints": deleted})
    typer.echo(f"deleted session {session_id} ({deleted} checkpoints); run `safepoint gc` to free its storage")


@command()
def fsck(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Verify every checkpoint and object; list what is damaged and which checkpoints it breaks."""
    try:
        repo = open_repo(ctx)
        with spinner("checking session") as progress:
            report = repo.fsck(progress=progress)
    except StorageError as exc:  # a backend too damaged to open (a truncated SQLite file): that is the report
        report = FsckReport([Problem(ctx.obj.store or "<store>", f"the store cannot be opened: {exc}")], 0, 0, 0)
        if as_json:
            print_json(_fsck_json(report))
        else:
            out().print(Text(f"1 problem found:\n  {report.problems[0].key}: {report.problems[0].reason}", style="red"))
        raise typer.Exit(1) from None
    if as_json:
        print_json(_fsck_json(report))
        raise typer.Exit(0 if report.ok else 1)
    console = out()
    console.print(
        f"checked {report.checked_checkpoints} checkpoints and {report.checked_objects} objects; "
        f"swept {report.swept} stale temp files"
    )
    if report.ok:
        return console.print(Text("ok: no problems found", style="green"))
    count = len(report.problems)
    console.print(Text(f"{count} problem{'s' if count > 1 else ''} found:", style="red"))
    sessions: dict[str, list[int]] = {}
    for problem in report.problems:
        console.print(Text(f"  {problem.key}: {problem.reason}", style="red"))
        for session_id, seqs in _by_session(problem.broken).items():
            console.print(f"    breaks session {session_id} seq {_ranges(seqs)}")
            sessions.setdefault(session_id, []).extend(seqs)
    for session_id in dict.fromkeys([*sessions, *report.last_good]):
        good = report.last_good.get(session_id)
        if good is None:
            console.print(f"session {session_id}: no checkpoint loads with all its artifacts")
        elif repo.exists(session_id):
            console.print(f"session {session_id}: last good checkpoint is seq {good}; "
                      f"continue from it with `safepoint fork {shlex.quote(session_id)} --at {good}`")  # fmt: skip
        else:
            console.print(f"session {session_id}: last good checkpoint is seq {good} (its session record is gone)")
    raise typer.Exit(1)


@command()
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
    as_json: JsonFlag = False,
) -> None:
    """Delete old checkpoints (with --keep-last / --newer-than) and every object nothing references.

    Safe while agents and workers run: what they are saving is kept."""
    with spinner("collecting garbage in session") as progress:
        report = open_repo(ctx).gc(keep_last=keep_last, newer_than=newer_than, dry_run=dry_run, progress=progress)
    if as_json:
        return print_json(dataclasses.asdict(report))
    verb = "would delete" if report.dry_run else "deleted"
    typer.echo(
        f"{verb} {report.deleted_checkpoints} checkpoints and {report.deleted_objects} objects, "
        f"{'would free' if report.dry_run else 'freed'} {human_size(report.freed_bytes)}; "
        f"kept {report.kept_objects} objects"
    )


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


def _fsck_json(report: FsckReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "checked_checkpoints": report.checked_checkpoints,
        "checked_objects": report.checked_objects,
        "swept": report.swept,
        "problems": [
            {
                "key": p.key,
                "reason": p.reason,
                "broken": [{"session": sid, "seq": seq} for sid, seq in p.broken],
                "last_good": p.last_good,
            }
            for p in report.problems
        ],
        "last_good": dict(sorted(report.last_good.items())),
    }


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
