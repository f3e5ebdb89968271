"""The `safepoint` command line: a thin typer app over the public API.

`app` (safepoint.cli.app) holds the global options and the helpers every command shares; each
`*_commands` module registers its commands on it when imported here, in the order `--help` lists them.
"""

# isort: off
from .app import app
from . import inspect_commands, edit_commands, store_commands, run_commands, mcp_command, key_commands  # noqa: F401  (registers commands)
# isort: on


def main() -> None:
    """Entry point of the `safepoint` console script and of `python -m safepoint`."""
    app(prog_name="safepoint")


__all__ = ["app", "main"]
