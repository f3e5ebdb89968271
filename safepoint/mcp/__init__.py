"""safepoint's MCP server: agents save, load and hand off their state through the Model Context Protocol.

    safepoint mcp --store sqlite:///agents.db                 # stdio, for a local MCP client
    safepoint mcp --http --port 8766 --token "$TOKEN"         # streamable HTTP

`build_server()` returns the `MCPServer` (the official SDK's); `http_app()` its streamable-HTTP ASGI app, to
serve or to mount (the dashboard mounts it at `/mcp`). See docs/mcp.md.
"""

from .http import DEFAULT_HOST, DEFAULT_PORT, CannotServe, MCPApp, TokenRequired, http_app, is_loopback, serve_http
from .policy import Policy
from .server import build_server
from .tools import WRITING_TOOLS

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "WRITING_TOOLS",
    "CannotServe",
    "MCPApp",
    "Policy",
    "TokenRequired",
    "build_server",
    "http_app",
    "is_loopback",
    "serve_http",
]
