"""The login page: trade the dashboard's token for an HttpOnly, SameSite cookie."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ..security import auth_cookie_header


async def login_page(request: Request, error: str | None) -> Response:
    dash = request.app.state.dashboard
    return dash.render(request, "login.html", {"error": error, "token_set": dash.settings.token is not None})


async def login(request: Request) -> Response:
    dash = request.app.state.dashboard
    if request.method == "GET":
        return await login_page(request, None)
    form = await request.form()
    given = form.get("token")
    if dash.settings.token is None:
        return RedirectResponse("/", status_code=303)
    if not isinstance(given, str) or not dash.guard.token_matches(given):
        response = await login_page(request, "wrong token")
        response.status_code = 401
        return response
    response = RedirectResponse("/", status_code=303)
    secure = request.url.scheme == "https"
    response.headers.append("set-cookie", auth_cookie_header(dash.guard.auth_cookie_value(), secure=secure))
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.headers.append("set-cookie", auth_cookie_header("", secure=False) + "; Max-Age=0")
    return response


routes = [
    Route("/login", login, methods=["GET", "POST"], name="login"),
    Route("/logout", logout, methods=["POST"], name="logout"),
]
