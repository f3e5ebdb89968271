"""The session page's actions: each a POST (CSRF-checked by the guard), one public-API call, audited in the
session's history by that call. None of these routes exists in read-only mode.

A refused action (a bad answer, a stale edit) re-renders the page with the reason and status 400; nothing
was changed, as the API guarantees. A done one redirects back to the page (303), where the new checkpoint shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from ...errors import SafepointError
from .. import forms
from ..views import sid
from .session import context

#: How the dashboard signs its changes in the history (`by`).
BY = "dashboard"


async def _act(request: Request, action: Callable[[Any, str, dict[str, str]], str | None]) -> Response:
    """Run `action(repo, session_id, form)` in a worker thread; redirect to the page it names, or show why not."""
    dash = request.app.state.dashboard
    session_id = request.path_params["session_id"]
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        target = await run_in_threadpool(action, dash.repo, session_id, form)
    except (SafepointError, ValueError) as exc:
        ctx = await run_in_threadpool(context, request, session_id, error=str(exc), form=form)
        return dash.render(request, "session.html", ctx, status=400)
    dash.changed(session_id, *([target] if target else []))
    return RedirectResponse(f"/sessions/{sid(target or session_id)}", status_code=303)


def _answer(repo: Any, session_id: str, form: dict[str, str]) -> None:
    name = form.get("name", "")
    pending = repo.pending_inputs(session_id)
    if name not in pending:
        raise SafepointError(f"session {session_id!r} is not waiting for {name!r}; nothing was changed")
    repo.send(session_id, name, forms.value(pending[name].get("schema"), form), by=BY)


def _resolve(repo: Any, session_id: str, form: dict[str, str]) -> None:
    outcome = form.get("outcome", "")
    raw = form.get("result", "")
    result = forms.json_value(raw, "result") if outcome == "done" and raw.strip() else None
    repo.resolve_effect(session_id, form.get("key", ""), outcome, result, by=BY)


def _set(repo: Any, session_id: str, form: dict[str, str]) -> None:
    path = form.get("path", "").strip()
    if not path:
        raise ValueError("path: empty; name a value in the state, e.g. mission.goal or data.notes[0]")
    value = forms.json_value(form.get("value", ""), path)
    repo.set_values(session_id, {path: value}, expect_seq=_seq(form, "seq"), by=BY)


def _fork(repo: Any, session_id: str, form: dict[str, str]) -> str:
    new_id = form.get("new_id", "").strip() or None
    return repo.fork(session_id, at=_seq(form, "at"), new_id=new_id).id


def _fail(repo: Any, session_id: str, form: dict[str, str]) -> None:
    repo.mark_failed(session_id, form.get("reason", "").strip() or "no reason given", by=BY)


def _retry(repo: Any, session_id: str, form: dict[str, str]) -> None:
    repo.retry(session_id, by=BY)


def _seq(form: dict[str, str], name: str) -> int | None:
    text = form.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{name}: {text!r} is not a checkpoint number")
    return int(text)


def _route(path: str, action: Callable[[Any, str, dict[str, str]], str | None], name: str) -> Route:
    async def endpoint(request: Request) -> Response:
        return await _act(request, action)

    return Route(f"/sessions/{{session_id}}/{path}", endpoint, methods=["POST"], name=name)


routes = [
    _route("answer", _answer, "answer"),
    _route("resolve", _resolve, "resolve"),
    _route("set", _set, "set_value"),
    _route("fork", _fork, "fork"),
    _route("fail", _fail, "mark_failed"),
    _route("retry", _retry, "retry"),
]
