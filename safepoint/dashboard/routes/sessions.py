"""The sessions list: filter by status, agent, tag and text; newest activity first; paginated."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ...core.listing import SessionFilter

STATUSES = ["running", "waiting", "paused", "failed", "completed", "cancelled", "new"]


def sessions(request: Request) -> Response:
    dash = request.app.state.dashboard
    q = request.query_params
    where = SessionFilter(
        status=q.get("status") or None, agent=q.get("agent") or None, tag=q.get("tag") or None, text=q.get("q") or None
    )
    try:
        number = max(1, int(q.get("page", "1")))
    except ValueError:
        number = 1
    size = dash.settings.page_size
    page, rows = dash.repo.find_sessions(where, offset=(number - 1) * size, limit=size, policy=dash.settings.policy)
    kept = {
        k: v for k, v in (("status", where.status), ("agent", where.agent), ("tag", where.tag), ("q", where.text)) if v
    }
    context = {
        "page": "sessions",
        "rows": rows,
        "found": page,
        "number": number,
        "where": where,
        "statuses": STATUSES,
        "prev_url": "/sessions?" + urlencode({**kept, "page": number - 1}) if number > 1 else None,
        "next_url": "/sessions?" + urlencode({**kept, "page": number + 1}) if page.has_next else None,
    }
    name = "_session_rows.html" if request.headers.get("hx-request") else "sessions.html"
    return dash.render(request, name, context)


routes = [Route("/sessions", sessions, name="sessions")]
