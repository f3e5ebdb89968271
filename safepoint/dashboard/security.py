"""Who may use the dashboard, and proof that a POST comes from its own pages.

- Bind: loopback by default. Any other address refuses to start without a token (`--token` or
  `SAFEPOINT_DASHBOARD_TOKEN`), since anyone who can reach the port could then read and change every session.
- Token: with one set, every page but /login and /static needs the `sp_auth` cookie (HttpOnly, SameSite=Strict),
  which /login sets when given the right token, or an `Authorization: Bearer <token>` header (for scripts).
  A wrong or missing one gets 401 and the login form, and nothing of the store.
- Host: without a token the server answers only requests addressed to a loopback name, so a web page cannot
  reach it through a DNS name it re-points at 127.0.0.1 (DNS rebinding).
- CSRF: every form carries a token derived (HMAC) from a random `sp_csrf` cookie and a secret of this server
  process; a POST without the matching pair is refused with 403 before anything runs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import SafepointError

TOKEN_ENV = "SAFEPOINT_DASHBOARD_TOKEN"
AUTH_COOKIE = "sp_auth"
CSRF_COOKIE = "sp_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
#: Paths open without a token: the login page and the static files (no data in either).
OPEN_PATHS = ("/login", "/static/")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise SafepointError(
            f"refusing to serve the dashboard on {host!r} without a token: anyone who reaches it could read and "
            f"change every session. Pass --token (or set {TOKEN_ENV}), or bind 127.0.0.1"
        )


def token_from_env(token: str | None) -> str | None:
    return token or os.environ.get(TOKEN_ENV) or None


class Guard:
    """The auth and CSRF checks of one dashboard app (one secret per server process)."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._secret = secrets.token_bytes(32)

    # --- auth -------------------------------------------------------------------------------------
    def auth_cookie_value(self) -> str:
        """What the auth cookie holds: derived from the token, so the token itself is never stored."""
        assert self.token is not None
        return hmac.new(self.token.encode(), b"safepoint-dashboard-login", hashlib.sha256).hexdigest()

    def token_matches(self, given: str | None) -> bool:
        return bool(self.token) and given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allowed(self, request: Request) -> bool:
        if self.token is None:
            return True
        cookie = request.cookies.get(AUTH_COOKIE)
        if cookie and hmac.compare_digest(cookie, self.auth_cookie_value()):
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(given.strip())

    # --- CSRF ---------------------------------------------------------------------------------------
    def csrf_token(self, request: Request) -> str:
        """The token a form on this request's page must send back (from the browser's `sp_csrf` cookie)."""
        browser = request.scope.get("sp_csrf") or request.cookies.get(CSRF_COOKIE) or ""
        return hmac.new(self._secret, browser.encode(), hashlib.sha256).hexdigest()

    async def csrf_ok(self, request: Request) -> bool:
        browser = request.cookies.get(CSRF_COOKIE)
        if not browser:
            return False
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            await request.body()  # cached, so the route reads the same form again (see _replay)
            form = await request.form()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        return given is not None and hmac.compare_digest(given, self.csrf_token(request))


class GuardMiddleware:
    """Host check, auth and CSRF around every request; sets the browser's CSRF cookie when it has none."""

    def __init__(
        self, app: ASGIApp, guard: Guard, login_page: Callable[[Request, str | None], Awaitable[Response]]
    ) -> None:
        self.app = app
        self.guard = guard
        self.login_page = login_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        path = scope["path"]
        if self.guard.token is None and not is_loopback(request.url.hostname or ""):
            return await PlainTextResponse("400 bad request: unknown host", status_code=400)(scope, receive, send)
        if not path.startswith(OPEN_PATHS) and not self.guard.allowed(request):
            if path.startswith(("/events", "/mcp")) or "text/html" not in request.headers.get("accept", "text/html"):
                response: Response = PlainTextResponse("401 unauthorized", status_code=401)
            else:
                response = await self.login_page(request, None)
                response.status_code = 401
            return await response(scope, receive, send)
        new_cookie = None
        if not request.cookies.get(CSRF_COOKIE):
            new_cookie = secrets.token_urlsafe(24)
            scope["sp_csrf"] = new_cookie  # this response's forms already use it
        if scope["method"] == "POST" and not path.startswith("/mcp") and not await self.guard.csrf_ok(request):
            response = HTMLResponse(
                "<!doctype html><title>403</title><p>403 forbidden: this form's CSRF token is missing or stale. "
                "Reload the page and try again; nothing was changed.</p>",
                status_code=403,
            )
            return await response(scope, receive, send)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and new_cookie:
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", f"{CSRF_COOKIE}={new_cookie}; HttpOnly; SameSite=Strict; Path=/")
            await send(message)

        # The form was read above from a cached body: hand the app a receive that replays it.
        await self.app(scope, _replay(request, receive), send_with_cookie)


def _replay(request: Request, receive: Receive) -> Receive:
    body = getattr(request, "_body", None)
    if body is None:
        return receive
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def auth_cookie_header(value: str, *, secure: bool) -> str:
    return f"{AUTH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/" + ("; Secure" if secure else "")


__all__ = ["Guard", "GuardMiddleware", "check_bind", "token_from_env", "is_loopback", "auth_cookie_header"]
