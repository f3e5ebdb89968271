"""`safepoint dashboard`: serve the live dashboard (starlette, uvicorn) over the store."""

from __future__ import annotations

from typing import Annotated

import typer

from ..core.stuck import StuckPolicy
from ..errors import SafepointError
from .app import command, note, open_repo


@command()
def dashboard(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    mcp: Annotated[
        bool,
        typer.Option("--mcp", help="Also serve the MCP server at /mcp (same store, token and --read-only)."),
    ] = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing: no action exists.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(help="Token a browser logs in with (default: $SAFEPOINT_DASHBOARD_TOKEN).", show_default=False),
    ] = None,
    stuck_floor: Annotated[
        float, typer.Option(help="Seconds without a checkpoint before a running session can count as stuck.")
    ] = 300.0,
    stuck_factor: Annotated[
        float, typer.Option(help="Stuck after this many times its own median step interval.")
    ] = 5.0,
    waiting_after: Annotated[
        float, typer.Option(help="Seconds a question may wait before it needs attention.")
    ] = 86400.0,
    poll: Annotated[
        float, typer.Option(help="Seconds between looks for changes on stores without notifications.")
    ] = 1.0,
    check_every: Annotated[
        float, typer.Option(min=0.1, help="Seconds between checks of every listed session against its checkpoints.")
    ] = 30.0,
) -> None:
    """Serve the live dashboard: overview, sessions, timelines, diffs, and actions on waiting or stuck agents."""
    try:
        import uvicorn

        from ..dashboard import Settings, create_app
        from ..dashboard.security import token_from_env
    except ImportError as exc:
        raise SafepointError(
            f"the dashboard needs its extra ({exc.name} is missing): pip install 'safepoint[dashboard]'"
        ) from None
    try:
        policy = StuckPolicy(factor=stuck_factor, floor=stuck_floor, waiting_after=waiting_after)
    except ValueError as exc:
        raise SafepointError(str(exc)) from None
    settings = Settings(
        host=host,
        port=port,
        read_only=read_only,
        token=token_from_env(token),
        policy=policy,
        poll=poll,
        check_every=check_every,
    )
    repo = open_repo(ctx)
    mounts = {}
    if mcp:
        try:
            from ..dashboard import MCP_PATH
            from ..mcp import http_app
        except ImportError as exc:
            raise SafepointError(
                f"--mcp needs the mcp extra ({exc.name} is missing): pip install 'safepoint[mcp]'"
            ) from None
        mounts[MCP_PATH] = http_app(repo, path="/", token=settings.token, read_only=read_only, host=host)
    app = create_app(settings, repo=repo, mounts=mounts)  # refuses a non-loopback host without a token, first
    shown = f"[{host}]" if ":" in host else host
    note(
        f"safepoint dashboard on http://{shown}:{port}/ for {repo.url}"
        + (" (read-only)" if read_only else "")
        + (f"; MCP at http://{shown}:{port}/mcp" if mcp else "")
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
