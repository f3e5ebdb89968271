"""Commands that read: `ls`, `show`, `history`, `diff`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from ..core import summary as summaries
from ..model import Checkpoint, Status
from ..repository import Repository
from .app import (
    JsonFlag,
    SessionArg,
    age,
    command,
    local_time,
    new_table,
    note,
    open_repo,
    out,
    print_json,
    status_text,
)


@command()
def ls(
    ctx: typer.Context,
    stuck: Annotated[
        bool,
        typer.Option(
            "--stuck",
            help="Only sessions that need a person: a running session whose holder is gone or that stopped "
            "checkpointing (5x its usual step interval, at least 5 min), a question waiting over a day, an "
            "effect in doubt. Adds a 'why' column.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    status: Annotated[
        list[Status] | None,
        typer.Option("--status", help="Only sessions whose head has this status (repeat for several)."),
    ] = None,
    agent: Annotated[str | None, typer.Option("--agent", metavar="NAME", help="Only sessions of this agent.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", metavar="TAG", help="Only sessions with this tag.")] = None,
) -> None:
    """List the sessions in the store, most recently saved first (from the summary index, checked against the
    chains: a session saved a moment ago is never shown as it was before)."""
    repo = open_repo(ctx)
    if stuck:
        return _ls_stuck(repo, as_json)
    infos = [
        info
        for info in repo.sessions()
        if (not status or (info.head is not None and info.head.status in status))
        and (agent is None or info.agent == agent)
        and (tag is None or tag in info.tags)
    ]
    if as_json:
        return print_json([info.to_dict() for info in infos])
    if not infos:
        return note(f"no sessions in {repo.url}")
    table = new_table("session", "agent", "status", "step", "seq", "updated", "parent")
    for info in infos:
        head = info.head
        status = Text("damaged", style="bold red") if info.damaged else status_text(head)
        updated = "" if info.damaged and head is None else age(info.updated_at)
        table.add_row(
            info.id, info.agent or "", status, (head.step if head else None) or "", str(info.seq),
            updated, _origin(info.parent),
        )  # fmt: skip
    table.print()
    for info in infos:
        if info.damaged:
            note(f"session {info.id} is damaged: {info.damaged}")


def _ls_stuck(repo: Repository, as_json: bool) -> None:
    found = [summary for summary in repo.summaries() if summary.stuck]
    if as_json:
        return print_json([summary.to_dict() for summary in found])
    if not found:
        return note(f"no stuck sessions in {repo.url}")
    table = new_table("session", "agent", "status", "step", "seq", "updated", "why")
    for summary in found:
        info = summary.info
        table.add_row(
            info.id, info.agent or "", status_text(info.head), (info.head.step if info.head else None) or "",
            str(info.seq), age(info.updated_at), summary.stuck or "",
        )  # fmt: skip
    table.print()


@command()
def show(
    ctx: typer.Context,
    session_id: SessionArg,
    seq: Annotated[
        int | None, typer.Option("--seq", min=1, metavar="N", help="Checkpoint seq (default: head).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"checkpoint", "waiting_for", "error", "usage", "in_doubt", "state"}.')
    ] = False,
) -> None:
    """Show one checkpoint's metadata, what it waits for or why it failed, its usage, and its state."""
    checkpoint = open_repo(ctx).load(session_id, seq)
    runtime = checkpoint.runtime
    needs = {
        "waiting_for": summaries.questions(runtime),
        "error": summaries.failure(runtime),
        "usage": summaries.usage_totals(runtime),
        "in_doubt": summaries.in_doubt(runtime),
    }
    if as_json:
        return print_json({"checkpoint": checkpoint.to_dict(), **needs, "state": checkpoint.state})
    grid = Table.grid(padding=(0, 2))
    for name, value in checkpoint.to_dict().items():
        shown = "-" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        grid.add_row(Text(name, style="bold"), shown)
    for name, prompt in needs["waiting_for"].items():
        grid.add_row(Text("waiting for", style="bold cyan"), f"{name}: {prompt}")
    if needs["error"]:
        error = needs["error"]
        where = f"step {error['step']!r} after {error.get('attempts', 1)} attempt(s): " if error.get("step") else ""
        grid.add_row(Text("error", style="bold red"), where + str(error.get("error", "")))
    for key in needs["in_doubt"]:
        grid.add_row(Text("in doubt", style="bold yellow"), f"effect {key!r} started but never recorded as done")
    if needs["usage"]:
        usage = ", ".join(f"{name} {value:g}" for name, value in needs["usage"].items())
        grid.add_row(Text("usage", style="bold"), usage)
    out().print(grid)
    out().print(JSON.from_data(checkpoint.state, indent=2))


@command()
def history(ctx: typer.Context, session_id: SessionArg, as_json: JsonFlag = False) -> None:
    """List a session's checkpoints, oldest first."""
    checkpoints = open_repo(ctx).history(session_id)
    if as_json:
        return print_json([cp.to_dict() for cp in checkpoints])
    _print_history(checkpoints)


@command()
def diff(
    ctx: typer.Context,
    session_id: SessionArg,
    a: Annotated[int, typer.Argument(min=1, metavar="A", help="The older seq.")],
    b: Annotated[int, typer.Argument(min=1, metavar="B", help="The newer seq.")],
    as_json: JsonFlag = False,
) -> None:
    """Show what changed in the state from checkpoint A to checkpoint B (+ added, - removed, ~ changed)."""
    lines = open_repo(ctx).diff(session_id, a, b)
    if as_json:
        return print_json(lines)
    if not lines:
        return note(f"no differences between seq {a} and seq {b} of session {session_id}")
    styles = {"+": "green", "-": "red", "~": "yellow"}
    for line in lines:
        out().print(Text(line, style=styles.get(line[:1], "")))


def _print_history(checkpoints: list[Checkpoint]) -> None:
    table = new_table("seq", "time", "step", "status", "kind", "edit", "checksum")
    for cp in checkpoints:
        edit = str(cp.meta.get("how") or "edit") if cp.is_manual_edit else ""
        table.add_row(
            str(cp.seq), local_time(cp.created_at), cp.step or "", status_text(cp),
            "keyframe" if cp.keyframe else "delta", edit, cp.checksum[:12],
        )  # fmt: skip
    table.print()


def _origin(parent: dict[str, Any] | None) -> str:
    if not parent:
        return ""
    return f"{parent.get('session')}@{parent.get('seq')}" if "seq" in parent else str(parent.get("session", ""))
