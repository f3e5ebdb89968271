"""The live dashboard: `safepoint dashboard` serves it (see docs/dashboard.md).

    from safepoint.dashboard import Settings, create_app
    app = create_app(Settings(store="sqlite:///agents.db", read_only=True))   # any ASGI server runs it

Needs the `dashboard` extra (`pip install 'safepoint[dashboard]'`): starlette, jinja2, uvicorn, sse-starlette.
"""

from .app import MCP_PATH, Settings, create_app

__all__ = ["MCP_PATH", "Settings", "create_app"]
