"""MCP resources (sessions, checkpoints, artifacts by reference) and the `resume_session` prompt.

safepoint://sessions                     every session this server may show, newest first
safepoint://sessions/{id}                the head checkpoint with its state and pending questions
safepoint://sessions/{id}/{seq}          one checkpoint with its state
safepoint://artifacts/{sha256 hex}       an artifact's bytes
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from ..core import summary
from ..errors import ArtifactNotFound, CheckpointNotFound, SafepointError, SessionNotFound
from ..model import Checkpoint, SessionInfo
from ..repository import Repository
from ..runtime import inputs
from .models import SessionItem
from .policy import Policy

#: A rough, model-independent token count: English text and JSON run about four characters a token.
CHARS_PER_TOKEN = 4


def register_resources(server: MCPServer, repo: Repository, policy: Policy) -> None:
    def guarded(fn: Any, *args: Any) -> str | bytes:
        try:
            return fn(*args)
        except (SessionNotFound, CheckpointNotFound, ArtifactNotFound) as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except SafepointError as exc:
            raise ResourceError(str(exc)) from None

    def allowed(session_id: str) -> str:
        if not policy.allows(session_id):
            raise ResourceNotFoundError(f"session {session_id!r} is outside this server's allow-list")
        return session_id

    def checkpoint_json(session_id: str, seq: int | None) -> str:
        cp = repo.load(allowed(session_id), seq)
        pending = inputs.pending(cp.runtime)
        return _dump({"checkpoint": cp.to_dict(), "state": cp.state, "pending_inputs": pending})

    @server.resource("safepoint://sessions", name="sessions", mime_type="application/json")
    def sessions() -> str:
        """Every session this server may show, newest activity first."""
        shown = [i for i in repo.sessions() if policy.allows(i.id) and not i.damaged]  # damaged: see fsck
        items = [SessionItem.of(repo.summary(i.id)).model_dump() for i in shown]
        return _dump(items)

    @server.resource("safepoint://sessions/{session_id}", name="session head", mime_type="application/json")
    def session_head(session_id: str) -> str:
        """A session's head checkpoint: metadata, state and the questions it waits for."""
        return guarded(checkpoint_json, session_id, None)  # type: ignore[return-value]

    @server.resource("safepoint://sessions/{session_id}/{seq}", name="checkpoint", mime_type="application/json")
    def checkpoint(session_id: str, seq: str) -> str:
        """One checkpoint of a session, with its state."""
        if not seq.isdigit() or int(seq) < 1:
            raise ResourceNotFoundError(f"{seq!r} is not a checkpoint seq; seqs are 1, 2, 3 ... (see history)")
        return guarded(checkpoint_json, session_id, int(seq))  # type: ignore[return-value]

    @server.resource("safepoint://artifacts/{digest}", name="artifact", mime_type="application/octet-stream")
    def artifact(digest: str) -> bytes:
        """An artifact's bytes, by its reference (`sha256:<hex>`, or the hex digest alone)."""
        ref = "sha256:" + digest.removeprefix("sha256:")
        if policy.sessions and not _listed_by_allowed(repo, policy, ref):
            raise ResourceNotFoundError(f"artifact {ref} is not listed by any session of this server's allow-list")

        def read() -> bytes:
            with repo.open_artifact(ref) as stream:
                return stream.read()

        return guarded(read)  # type: ignore[return-value]

    @server.prompt()
    def resume_session(session: str, max_tokens: int = 2000) -> str:
        """What an agent needs to continue a session after a restart: its mission, what is done, what remains
        and the questions it waits for, within about `max_tokens` tokens."""
        try:
            cp = repo.load(allowed(session))
            return resume_brief(repo.info(session), cp, max_tokens)
        except SafepointError as exc:
            raise ValueError(str(exc)) from None


def _listed_by_allowed(repo: Repository, policy: Policy, ref: str) -> bool:
    for info in repo.sessions():
        if info.seq and policy.allows(info.id) and not info.damaged:
            state = repo.load(info.id).state
            items = state.get("artifacts") if isinstance(state, dict) else None
            if any(isinstance(i, dict) and i.get("ref") == ref for i in items or ()):
                return True
    return False


def resume_brief(info: SessionInfo, cp: Checkpoint, max_tokens: int = 2000) -> str:
    """The resume prompt: most important first (mission, remaining, open questions, doubts), then what is done
    (newest first) and the state as JSON, each cut to what still fits in `max_tokens`."""
    budget = max(200, max_tokens) * CHARS_PER_TOKEN
    state = cp.state if isinstance(cp.state, dict) else {}
    mission = state.get("mission") if isinstance(state.get("mission"), dict) else {}
    lines = [
        f"You are resuming session {cp.session}" + (f" of agent {info.agent}" if info.agent else "") + ".",
        f"Last checkpoint: seq {cp.seq}, step {cp.step or '-'}, status {cp.status}, "
        f"saved {cp.created_at:%Y-%m-%d %H:%M:%S} UTC.",
        f"Mission: {mission.get('goal') or '(no goal recorded in state.mission.goal)'}",
    ]  # fmt: skip
    lines += _items("Remaining", mission.get("remaining") or [])
    for name, request in sorted(inputs.pending(cp.runtime).items()):
        lines.append(f"Waiting for an answer to {name!r}: {request.get('prompt')} (ask_user or answer_input)")
    for key in summary.in_doubt(cp.runtime):
        lines.append(f"Effect {key!r} was started but never recorded as done: check whether it happened first.")
    lines.append(f"Save progress with save_checkpoint(session={cp.session!r}, expected_seq={cp.seq}, ...).")
    text = "\n".join(lines)
    done = list(mission.get("done") or [])
    shown: list[str] = []
    for item in reversed(done):  # the newest first: that is where the work continues
        line = f"- {item}"
        if len(text) + sum(len(s) + 1 for s in shown) + len(line) + 40 > budget:
            break
        shown.append(line)
    if done:
        skipped = len(done) - len(shown)
        text += f"\nDone ({len(done)}" + (f", the {len(shown)} newest shown" if skipped else "") + "):\n"
        text += "\n".join(reversed(shown))
    room = budget - len(text) - 80
    if room > 40:
        body = json.dumps(cp.state, ensure_ascii=False, sort_keys=True)
        if len(body) > room:
            body = body[:room] + " ... (cut to fit; load_checkpoint returns all of it)"
        text += "\nState (JSON):\n" + body
    return text[:budget]


def _items(title: str, items: list[Any]) -> list[str]:
    if not items:
        return [f"{title}: nothing recorded."]
    return [f"{title} ({len(items)}):", *(f"- {item}" for item in items)]


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)
