"""The overview: sessions by status and agent, usage totals, and the attention list."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def overview(request: Request) -> Response:
    dash = request.app.state.dashboard
    found = dash.repo.overview(policy=dash.settings.policy)
    name = "_overview_body.html" if request.headers.get("hx-request") else "overview.html"
    return dash.render(request, name, {"o": found, "page": "overview"})


routes = [Route("/", overview, name="overview")]
