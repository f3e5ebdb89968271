"""The `safepoint` typer app and what every command shares: global options, one-line errors, output helpers.

Each command opens the store, calls one `Repository` method and prints the result. Every `SafepointError`
(and `OSError`) becomes one red `error: ...` line on stderr and exit code 1; `--debug` adds the traceback.
The commands live in the `*_commands` modules beside this one; `safepoint.cli` imports them all.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from errno import EPIPE
from typing import Annotated, Any, NoReturn

import orjson
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from ..errors import SafepointError
from ..model import Checkpoint
from ..repository import Repository
from ..repository import open as open_repository
from ..stores import DEFAULT_URL
from . import logs

GLOBALS_HINT = (
    "Global options --store URL, --debug, --log-level LEVEL and --log-json may come before or after the command."
)


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
            fail(str(exc) or type(exc).__name__)


def _hoist_global_options(args: list[str]) -> list[str]:
    """Move `--store URL`, `--store=URL`, `--debug` and the logging options in front of the command name (not past
    `--`)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in ("--debug", "--log-json") or arg.startswith(("--store=", "--log-level=")):
            front.append(arg)
        elif arg in ("--store", "--log-level") and i + 1 < len(args):
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
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="Print safepoint's log events at LEVEL and above to stderr (or set SAFEPOINT_LOG=LEVEL[,json]).",
        ),
    ] = None,
    log_json: Annotated[bool, typer.Option("--log-json", help="Print log events as JSON lines.")] = False,
) -> None:
    logs.setup(log_level, log_json, os.environ.get("SAFEPOINT_LOG", ""))
    ctx.obj = _Options(store, debug)


SessionArg = Annotated[str, typer.Argument(metavar="ID", help="The session id.", show_default=False)]


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of a table.")]


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return app.command(name, epilog=GLOBALS_HINT)


def open_repo(ctx: typer.Context) -> Repository:
    return ctx.with_resource(open_repository(ctx.obj.store))


#: The width of output to a pipe or file: wide enough that no table row wraps (`safepoint ls | grep ID`).
PIPE_WIDTH = 10_000


def out() -> Console:
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(highlight=False, markup=False, soft_wrap=True, width=width)


def note(message: str) -> None:
    Console(stderr=True, highlight=False, markup=False, soft_wrap=True).print(message)


def fail(message: str) -> NoReturn:
    """Print one red `error:` line on stderr and exit 1."""
    line = " ".join(message.splitlines())
    Console(stderr=True, highlight=False, markup=False, soft_wrap=True).print(Text(f"error: {line}", style="red"))
    raise typer.Exit(1)


@contextmanager
def spinner(what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr while a long call runs, only when stderr is a terminal; yields a progress callback."""
    if not sys.stderr.isatty():
        yield None
        return
    with Console(stderr=True).status(Text(what)) as status:
        yield lambda name: status.update(Text(f"{what} {name}"))


def print_json(value: Any) -> None:
    """Indented JSON (through orjson: `ls --json` of 10,000 sessions in ~20 ms, where `json` takes ~250 ms)."""
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


class Rows:
    """A table of left-aligned columns, fast at any length (`ls` of 10,000 sessions): plain text to a pipe or file
    (never wrapped, so `safepoint ls | grep ID` sees whole rows), styled text on a terminal."""

    def __init__(self, *columns: str) -> None:
        self.columns = list(columns)
        self.rows: list[list[str | Text]] = []

    def add_row(self, *cells: str | Text) -> None:
        self.rows.append(list(cells))

    def print(self) -> None:
        plain = [[cell.plain if isinstance(cell, Text) else cell for cell in row] for row in self.rows]
        widths = [max([len(name), *(len(row[i]) for row in plain)]) for i, name in enumerate(self.columns)]
        last = len(widths) - 1

        def line(cells: list[str]) -> str:
            return "  ".join(cell if i == last else cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

        if not sys.stdout.isatty():
            sys.stdout.write("\n".join([line(self.columns), *(line(row) for row in plain)]) + "\n")
            sys.stdout.flush()
            return
        text = Text(line(self.columns) + "\n", style="bold")
        for row in self.rows:
            styled = Text()
            for i, cell in enumerate(row):
                value = cell if isinstance(cell, Text) else Text(cell)
                styled.append_text(value)
                styled.append("" if i == last else " " * (widths[i] - len(value.plain)) + "  ")
            styled.rstrip()
            text.append_text(styled)
            text.append("\n")
        out().print(text, end="")


def new_table(*columns: str) -> Rows:
    return Rows(*columns)


STATUS_STYLE = {
    "running": "yellow",
    "waiting": "cyan",
    "paused": "magenta",
    "failed": "red",
    "completed": "green",
    "cancelled": "red",
}


def status_text(checkpoint: Checkpoint | None) -> Text:
    status = str(checkpoint.status) if checkpoint else ""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def local_time(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def age(when: datetime) -> str:
    """`12s ago`, `3m ago`, `5h ago`, `2d ago`; the date beyond a month."""
    seconds = (datetime.now(UTC) - when).total_seconds()
    if seconds < 1:
        return "just now"
    for limit, unit, name in ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h"), (30 * 86400, 86400, "d")):
        if seconds < limit:
            return f"{int(seconds // unit)}{name} ago"
    return when.astimezone().strftime("%Y-%m-%d")


def human_size(count: int) -> str:
    value, unit = float(count), "B"
    for bigger in ("KB", "MB", "GB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
