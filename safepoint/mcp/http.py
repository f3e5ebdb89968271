"""Streamable HTTP: the ASGI app (to serve, or to mount in another app at `/mcp`) and its bearer token.

A server bound to anything but loopback refuses to start without a token; with a token, every request must
carry `Authorization: Bearer <token>` (401 otherwise), checked in constant time before the SDK sees it.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from collections.abc import Sequence
from typing import Any

from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import SafepointError
from .policy import DEFAULT_MAX_PAYLOAD
from .server import RepoLike, build_server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766


class CannotServe(SafepointError):
    """The HTTP server cannot start: its address is taken, or it would be open beyond loopback without a token."""


class TokenRequired(CannotServe):
    """An HTTP server on a non-loopback address was started without a bearer token."""


def check_address(host: str, port: int) -> None:
    """Fail with one clear line, before the server starts, when `host:port` cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise CannotServe(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port (or stop what uses it)"
        ) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BearerToken:
    """ASGI middleware: refuse (401) every HTTP request without `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                await _unauthorized(send, "missing bearer token" if not given else "wrong bearer token")
                return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, why: str) -> None:
    body = json.dumps({"error": "unauthorized", "error_description": f"{why}: send Authorization: Bearer <token>"})
    body = body.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="safepoint"'),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MCPApp:
    """The streamable-HTTP ASGI app of a safepoint MCP server.

    Served on its own it runs its own lifespan. Mounted inside another app (`Mount("/mcp", app)` with
    `path="/"`), the host app must run `app.session_manager.run()` in its lifespan: a mounted app's own
    lifespan never runs.
    """

    def __init__(self, asgi: ASGIApp, server: Any) -> None:
        self._asgi = asgi
        self.server = server

    @property
    def session_manager(self) -> Any:
        return self.server.session_manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def http_app(
    repo: RepoLike = None,
    *,
    token: str | None = None,
    read_only: bool = False,
    sessions: Sequence[str] = (),
    path: str = "/mcp",
    host: str = DEFAULT_HOST,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    **options: Any,
) -> MCPApp:
    """The MCP server over `repo` as a streamable-HTTP ASGI app, its endpoint at `path`.

    `token`: require `Authorization: Bearer <token>` on every request. `host` is where it will be served
    (the SDK's DNS-rebinding protection is on for loopback hosts). Other options go to `build_server`.
    """
    server = build_server(repo, read_only=read_only, sessions=sessions, max_payload=max_payload, **options)
    starlette = server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        # Room for the largest payload (base64 grows it by a third): an oversize one gets a clear tool error.
        max_request_body_size=max(DEFAULT_MAX_REQUEST_BODY_SIZE, 2 * max_payload + (1 << 20)),
    )
    return MCPApp(BearerToken(starlette, token) if token else starlette, server)


def serve_http(
    repo: RepoLike = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    token: str | None = None,
    on_ready: Any = None,
    **options: Any,
) -> None:
    """Serve the MCP server over streamable HTTP until interrupted. Refuses a non-loopback `host` without `token`."""
    import uvicorn

    if not token and not is_loopback(host):
        raise TokenRequired(
            f"refusing to serve MCP on {host}, which is not a loopback address, without a bearer token; "
            "pass --token or set SAFEPOINT_MCP_TOKEN (or bind 127.0.0.1)"
        )
    check_address(host, port)
    app = http_app(repo, token=token, host=host, **options)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    if on_ready is not None:
        original = server.startup

        async def startup(sockets: Any = None) -> None:
            await original(sockets)
            on_ready()

        server.startup = startup  # type: ignore[method-assign]
    server.run()
