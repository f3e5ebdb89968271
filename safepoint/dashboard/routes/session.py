"""A session's page: head and lease, timeline, state tree, diff, artifacts, questions and effects in doubt."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ...errors import CheckpointNotFound, SafepointError
from ...model import Checkpoint
from .. import forms

#: Bytes of an artifact shown as a text preview.
PREVIEW_BYTES = 64 * 1024
TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-ndjson", "application/yaml")


def context(request: Request, session_id: str, **extra: Any) -> dict[str, Any]:
    """Everything the session page shows (also re-rendered, in parts, by live updates and refused actions)."""
    dash = request.app.state.dashboard
    repo = dash.repo
    summary = repo.summary(session_id, policy=dash.settings.policy)
    info = summary.info
    rows = repo.timeline(session_id) if info.head else []
    seq = _int(request.query_params.get("seq"))
    head = repo.load(session_id) if info.head else None
    shown: Checkpoint | None = head
    if head is not None and seq not in (None, head.seq):
        try:
            shown = repo.load(session_id, seq)
        except CheckpointNotFound:
            shown = head
    pending = head and repo.pending_inputs(session_id) or {}
    questions = [
        {"name": name, "prompt": req.get("prompt") or "", "asked_at": req.get("asked_at"),
         "fields": forms.fields(req.get("schema")), "effect": name.startswith("effect:")}
        for name, req in sorted(pending.items())
    ]  # fmt: skip
    effects = (head.runtime.get("effects") or {}) if head else {}
    return {
        "page": "session",
        "s": summary,
        "info": info,
        "rows": rows,
        "shown": shown,
        "head": head,
        "questions": questions,
        "doubts": [{"key": key, **effects[key]} for key in summary.in_doubt],
        "lease": repo.lease(session_id),
        "children": repo.children(session_id),
        "artifacts": _artifacts(shown.state if shown else None),
        "diff": None,
        **extra,
    }


def page(request: Request) -> Response:
    dash = request.app.state.dashboard
    return dash.render(request, "session.html", context(request, request.path_params["session_id"]))


def live(request: Request) -> Response:
    """The parts of the page that follow the session: head, usage, questions, effects and timeline."""
    dash = request.app.state.dashboard
    return dash.render(request, "_session_live.html", context(request, request.path_params["session_id"]))


def diff(request: Request) -> Response:
    dash = request.app.state.dashboard
    session_id = request.path_params["session_id"]
    a, b = _int(request.query_params.get("a")), _int(request.query_params.get("b"))
    if a is None or b is None:
        raise HTTPException(400, "pick two checkpoints (a and b)")
    try:
        lines = dash.repo.diff(session_id, a, b)
    except CheckpointNotFound as exc:
        lines, error = [], str(exc)
    else:
        error = None
    name = "_diff.html" if request.headers.get("hx-request") else "session.html"
    ctx = {"diff": {"a": a, "b": b, "lines": lines, "error": error}}
    if name == "session.html":
        ctx = context(request, session_id, **ctx)
    return dash.render(request, name, ctx)


def artifact(request: Request) -> Response:
    """Download (or, with ?preview, show as text) an artifact the session's state lists."""
    dash = request.app.state.dashboard
    session_id = request.path_params["session_id"]
    index = request.path_params["index"]
    shown = dash.repo.load(session_id, _int(request.query_params.get("seq")))
    listed = _artifacts(shown.state)
    if index >= len(listed):
        raise HTTPException(404, "no such artifact")
    ref = listed[index]
    try:
        handle = dash.repo.open_artifact(ref["ref"])
    except SafepointError as exc:
        return dash.render(request, "error.html", {"message": str(exc)}, status=404)
    if "preview" in request.query_params:
        with handle:
            data = handle.read(PREVIEW_BYTES + 1)
        text = data[:PREVIEW_BYTES].decode("utf-8", errors="replace")
        ctx = {"ref": ref, "text": text, "cut": len(data) > PREVIEW_BYTES, "info_id": session_id}
        return dash.render(request, "_preview.html", ctx)
    name = str(ref.get("name") or "artifact").replace('"', "").replace("\\", "")
    headers = {"content-disposition": f'attachment; filename="{name}"', "x-content-type-options": "nosniff"}

    def chunks():  # type: ignore[no-untyped-def]
        with handle:
            while block := handle.read(1 << 16):
                yield block

    # Served as bytes to save, never rendered here: a hostile HTML artifact cannot run in the dashboard's origin.
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


def _artifacts(state: Any) -> list[dict[str, Any]]:
    items = state.get("artifacts") if isinstance(state, dict) else None
    if isinstance(items, dict):
        items = list(items.values())
    found = []
    for item in items or ():
        if isinstance(item, dict) and isinstance(item.get("ref"), str):
            media = str(item.get("media_type") or "application/octet-stream")
            found.append({**item, "text": media.startswith(TEXT_TYPES)})
    return found


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


routes = [
    Route("/sessions/{session_id}", page, name="session"),
    Route("/sessions/{session_id}/live", live, name="session_live"),
    Route("/sessions/{session_id}/diff", diff, name="diff"),
    Route("/sessions/{session_id}/artifacts/{index:int}", artifact, name="artifact"),
]
