"""The dashboard's ASGI app: settings, the shared repository, templates, routes, guard and live feed.

    app = create_app(Settings(store="sqlite:///agents.db"))      # served by `safepoint dashboard`

Every page calls the public API (`Repository`) and renders what it returns; nothing here knows which store
it runs on. Another ASGI app (the MCP server) can be mounted beside the pages with `mounts={"/mcp": app}`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from ..core.history import session_segment
from ..core.stuck import StuckPolicy
from ..errors import SafepointError, SessionNotFound
from ..repository import Repository
from ..repository import open as open_repository
from . import views
from .live import ChangeFeed, events
from .routes import actions, auth, overview, session, sessions
from .security import Guard, GuardMiddleware, check_bind

#: Where the MCP server's ASGI app goes when it is mounted (see `create_app(mounts=...)`).
MCP_PATH = "/mcp"


@dataclass(frozen=True)
class Settings:
    """How a dashboard runs: which store, where it listens, who may use it, and when a session counts as stuck."""

    store: str | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    read_only: bool = False
    token: str | None = None
    policy: StuckPolicy = field(default_factory=StuckPolicy)
    poll: float = 1.0  # seconds between looks for changes on stores that cannot notify
    check_every: float = 30.0  # seconds between checks of the whole index copy against the chains
    page_size: int = 50


class Dashboard:
    """What every request handler shares: settings, repository, templates, guard and the change feed."""

    def __init__(self, settings: Settings, repo: Repository) -> None:
        self.settings = settings
        self.repo = repo
        self.templates = views.templates()
        self.guard = Guard(settings.token)
        # Pages list from an in-memory copy of the summary index, at most `poll` seconds old; the feed keeps it
        # current (and checked against the chains, in the background) and the actions reload what they changed.
        self.index = repo.follow_index(max_age=settings.poll, check_every=settings.check_every)
        self.feed = ChangeFeed(repo.store, self.index, poll=settings.poll)

    def changed(self, *session_ids: str) -> None:
        """After an action: the next page shows its result at once."""
        self.index.reload(session_ids, session_segment)

    def render(self, request: Request, name: str, context: Mapping[str, Any], status: int = 200) -> Response:
        base = {
            "read_only": self.settings.read_only,
            "csrf": self.guard.csrf_token(request),
            "store_url": self.repo.url,
            "token_set": self.settings.token is not None,
        }
        return self.templates.TemplateResponse(request, name, {**base, **context}, status_code=status)


def dashboard_of(request: Request) -> Dashboard:
    return request.app.state.dashboard


def create_app(
    settings: Settings | None = None, *, repo: Repository | None = None, mounts: Mapping[str, ASGIApp] | None = None
) -> Starlette:
    """The dashboard as an ASGI app. Refuses a non-loopback `settings.host` without a token."""
    settings = settings or Settings()
    check_bind(settings.host, settings.token)
    repo = repo or open_repository(settings.store)
    dash = Dashboard(settings, repo)
    routes: list[BaseRoute] = [
        *auth.routes,
        *overview.routes,
        *sessions.routes,
        *session.routes,
        Route("/events", events, name="events"),
        Mount("/static", StaticFiles(directory=str(views.STATIC)), name="static"),
    ]
    if not settings.read_only:
        routes += actions.routes  # read-only: the action routes do not exist at all
    for path, mounted in (mounts or {}).items():
        routes.append(Mount(path, mounted))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for mounted in (mounts or {}).values():
                manager = getattr(mounted, "session_manager", None)  # the MCP app: a mounted app's lifespan never runs
                if manager is not None:
                    await stack.enter_async_context(manager.run())
            try:
                yield
            finally:
                dash.feed.close()

    async def not_found(request: Request, exc: Exception) -> Response:
        message = str(exc) if isinstance(exc, SessionNotFound) else "no such page"
        return dash.render(request, "error.html", {"message": message}, status=404)

    async def refused(request: Request, exc: Exception) -> Response:
        return dash.render(request, "error.html", {"message": str(exc)}, status=400)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(GuardMiddleware, guard=dash.guard, login_page=auth.login_page)],
        exception_handlers={404: not_found, SessionNotFound: not_found, SafepointError: refused},
        lifespan=lifespan,
    )
    app.state.dashboard = dash
    return app
