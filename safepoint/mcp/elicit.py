"""`ask_user`: put a waiting session's question to the client's user (MCP elicitation), deliver the answer.

The question comes from the store (what `wait_for` saved); the SDK asks it on any connection (a request to
the client on older protocol versions, an input-required round on 2026-07-28), and an accepted answer is
delivered exactly as `safepoint send` delivers one, checked against the question's schema. A client that
cannot elicit gets a tool error pointing to `answer_input`, which delivers an answer obtained some other way.
"""

# (no `from __future__ import annotations`: the tool's annotations name a local resolver, `ask`)

from typing import Annotated, Any, Literal

import anyio.to_thread
from mcp.server import MCPServer
from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field, create_model

from ..core.paths import parse_value
from ..errors import SafepointError
from ..repository import Repository
from .models import Asked
from .policy import Policy
from .tools import WRITE, SessionId

_PRIMITIVE = {"boolean": bool, "string": str, "integer": int, "number": float}


def answer_model(schema: dict[str, Any] | None) -> tuple[type[BaseModel], bool]:
    """A one-field form (`answer`) for a question's JSON Schema; True when the answer is JSON typed as text.

    An elicitation form holds only flat primitive fields: a boolean, string, number or a choice of strings
    maps to one; anything else is asked as text and read as JSON when it parses (as `safepoint send` does).
    """
    kind = (schema or {}).get("type")
    choices = (schema or {}).get("enum")
    if kind == "string" and choices and all(isinstance(c, str) for c in choices):
        field_type: Any = Literal[tuple(choices)]  # type: ignore[valid-type]
    elif kind in _PRIMITIVE and not choices:
        field_type = _PRIMITIVE[kind]
    else:
        return create_model("Answer", answer=(str, Field(description="Your answer (JSON or text)."))), True
    return create_model("Answer", answer=(field_type, Field(description="Your answer."))), False


def register_elicitation(server: MCPServer, repo: Repository, policy: Policy) -> None:
    def question(session: str, name: str) -> tuple[str, dict[str, Any] | None]:
        try:
            waiting = repo.pending_inputs(policy.check_session(session))
        except SafepointError as exc:
            raise ToolError(str(exc)) from None
        if name not in waiting:
            asked = ", ".join(sorted(waiting)) or "nothing"
            raise ToolError(f"session {session!r} is not waiting for {name!r} (it waits for: {asked}); nothing asked")
        return waiting[name].get("prompt") or name, waiting[name].get("schema")

    async def ask(session: str, name: str, ctx: Context) -> Elicit[BaseModel]:
        capabilities = ctx.client_capabilities
        elicitation = capabilities.elicitation if capabilities is not None else None
        if elicitation is None or (elicitation.form is None and elicitation.url is not None):
            raise ToolError(
                "this client cannot put questions to its user (it declared no form elicitation); "
                f"ask them yourself and deliver the answer with answer_input(session={session!r}, name={name!r})"
            )
        prompt, schema = await anyio.to_thread.run_sync(question, session, name)
        model, _ = answer_model(schema)
        return Elicit(f"Session {session} asks ({name}): {prompt}", model)

    @server.tool(annotations=WRITE)
    async def ask_user(
        session: SessionId,
        name: Annotated[str, Field(description="The question's name (see pending_inputs).")],
        outcome: Annotated[ElicitationResult[BaseModel], Resolve(ask)],
    ) -> Asked:
        """Put a waiting session's question to your user and deliver the answer (as answer_input does).
        Needs a client that supports elicitation."""
        if not isinstance(outcome, AcceptedElicitation):
            return Asked(session=session, name=name, action=outcome.action)
        _, schema = await anyio.to_thread.run_sync(question, session, name)
        _, as_text = answer_model(schema)
        value = outcome.data.answer  # type: ignore[attr-defined]
        value = parse_value(value) if as_text else value
        try:
            cp = await anyio.to_thread.run_sync(lambda: repo.send(session, name, value, by="mcp-elicitation"))
        except SafepointError as exc:
            raise ToolError(str(exc)) from None
        return Asked(
            session=session, name=name, action="accept", answer=value, seq=cp.seq, ready=bool(cp.meta.get("ready"))
        )
