"""The safepoint MCP server: an `MCPServer` (the official SDK) with safepoint's tools, resources and prompt.

    from safepoint.mcp import build_server
    build_server("sqlite:///agents.db", read_only=True).run("stdio")

Each tool is a few lines over `Repository` (safepoint.mcp.tools); what a client may touch is a `Policy`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from mcp.server import MCPServer

from ..repository import Repository
from ..repository import open as open_repository
from ..stores import Store
from ..version import __version__
from .elicit import register_elicitation
from .policy import DEFAULT_INLINE_ARTIFACT, DEFAULT_MAX_PAYLOAD, Policy
from .resources import register_resources
from .tools import register_reading, register_writing

INSTRUCTIONS = """\
safepoint keeps your state durable. After each expensive step call save_checkpoint (the whole `state`, or
`changes` to it) with the `expected_seq` you loaded. After a restart call load_checkpoint (or the
resume_session prompt) and continue from there. Record outside actions with record_effect ('intent'
before, 'done' after) and check get_effect before repeating one. Big files go to put_artifact."""

RepoLike = Repository | Store | str | os.PathLike[str] | None


def build_server(
    repo: RepoLike = None,
    *,
    read_only: bool = False,
    sessions: Sequence[str] = (),
    max_payload: int = DEFAULT_MAX_PAYLOAD,
    inline_artifact: int = DEFAULT_INLINE_ARTIFACT,
) -> MCPServer:
    """An MCP server over `repo` (a Repository, store or store URL; default `$SAFEPOINT_STORE` or ./.safepoint).

    `read_only` leaves the writing tools out; `sessions` is an allow-list of fnmatch patterns of session ids;
    `max_payload` caps what one call may send (bytes); `inline_artifact` is the largest artifact returned
    inline.
    """
    repository = repo if isinstance(repo, Repository) else open_repository(repo)
    policy = Policy(
        read_only=read_only,
        sessions=tuple(sessions),
        max_payload=max_payload,
        inline_artifact=inline_artifact,
    )
    server = MCPServer(
        "safepoint",
        title="safepoint",
        description="Durable checkpoints for AI agents: save, load, search and hand off agent state.",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    register_reading(server, repository, policy)
    if not read_only:
        register_writing(server, repository, policy)
        register_elicitation(server, repository, policy)
    register_resources(server, repository, policy)
    return server
