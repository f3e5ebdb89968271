"""`safepoint mcp`: serve the store to MCP clients, over stdio (default) or streamable HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import command, fail, note, open_repo


@command()
def mcp(
    ctx: typer.Context,
    http: Annotated[bool, typer.Option("--http", help="Serve streamable HTTP instead of stdio.")] = False,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDR", help="HTTP: the address to bind (non-loopback needs --token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, metavar="N", help="HTTP: the port.")] = 8766,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="SAFEPOINT_MCP_TOKEN",
            metavar="TOKEN",
            show_default=False,
            help="HTTP: require `Authorization: Bearer TOKEN` on every request.",
        ),
    ] = None,
    read_only: Annotated[bool, typer.Option("--read-only", help="Offer only the tools that read.")] = False,
    sessions: Annotated[
        list[str] | None,
        typer.Option(
            "--sessions",
            metavar="PATTERN",
            help="Allow-list: only session ids matching this pattern (e.g. 'team-a-*'); repeatable.",
        ),
    ] = None,
    max_payload: Annotated[
        int, typer.Option("--max-payload", min=1, metavar="BYTES", help="Largest state, answer or artifact accepted.")
    ] = 4 * 1024 * 1024,
) -> None:
    """Serve the store to MCP clients: agents save, load and hand off their state through MCP tools."""
    try:
        from ..mcp import build_server, serve_http  # the MCP SDK loads only for this command
    except ImportError as exc:
        fail(f"the MCP server needs the official MCP SDK ({exc}); install it with: pip install 'safepoint[mcp]'")

    repo = open_repo(ctx)
    options = {"read_only": read_only, "sessions": sessions or (), "max_payload": max_payload}
    if not http:
        build_server(repo, **options).run("stdio")  # stdout is the protocol: nothing else is printed there
        return
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/mcp"

    def ready() -> None:
        mode = "read-only, " if read_only else ""
        note(f"safepoint MCP server on {url} ({mode}store {repo.url}{', token required' if token else ''})")

    serve_http(repo, host=host, port=port, token=token, on_ready=ready, **options)
