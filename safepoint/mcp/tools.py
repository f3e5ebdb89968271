"""The MCP tools: each a few lines over the Repository, with pydantic inputs and results.

Reading tools are always there; writing tools only when the server is not `--read-only`. Every tool checks
the allow-list first, and every safepoint error reaches the client as a tool error (`is_error`) with its
one-line message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ResourceLink, TextContent, ToolAnnotations
from pydantic import Field

from ..core import summary
from ..core.paths import assign
from ..errors import SafepointError
from ..repository import Repository
from ..runtime import effects, inputs
from . import writes
from .models import (
    Answered,
    Artifact,
    Change,
    Diff,
    Effect,
    Forked,
    History,
    LoadedCheckpoint,
    PendingInputs,
    SavedCheckpoint,
    SessionItem,
    SessionList,
    StatusName,
    pending_list,
)
from .models import CheckpointMeta as Meta
from .policy import Policy, tool_errors

SessionId = Annotated[str, Field(description="The session id (see list_sessions).")]
ExpectedSeq = Annotated[
    int | None,
    Field(
        description="Optimistic concurrency: the seq you loaded (0 for a new session). If the head has moved, "
        "nothing is written and the error names the current head.",
        ge=0,
    ),
]

READ = ToolAnnotations(read_only_hint=True, idempotent_hint=True)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False)

#: The tools that change the store: left out entirely by `--read-only`.
WRITING_TOOLS = ("save_checkpoint", "fork", "put_artifact", "answer_input", "ask_user", "record_effect")


def artifact_uri(ref: str) -> str:
    return "safepoint://artifacts/" + ref.removeprefix("sha256:")


def register_reading(server: MCPServer, repo: Repository, policy: Policy) -> None:
    @server.tool(annotations=READ)
    @tool_errors
    def list_sessions(
        status: Annotated[StatusName | None, Field(description="Only sessions with this status.")] = None,
        agent: Annotated[str | None, Field(description="Only sessions of this agent.")] = None,
        tag: Annotated[str | None, Field(description="Only sessions carrying this tag.")] = None,
        stuck: Annotated[
            bool | None, Field(description="true: only sessions that need a person; false: only the others.")
        ] = None,
    ) -> SessionList:
        """List the sessions in the store, newest activity first, with their status and whether they are stuck."""
        found = []
        for info in repo.sessions():
            if info.damaged or not policy.allows(info.id) or (agent is not None and info.agent != agent):
                continue
            if (tag is not None and tag not in info.tags) or (status is not None and str(info.status) != status):
                continue
            item = repo.summary(info.id)
            if stuck is None or (item.stuck is not None) == stuck:
                found.append(SessionItem.of(item))
        return SessionList(sessions=found)

    @server.tool(annotations=READ)
    @tool_errors
    def load_checkpoint(
        session: SessionId,
        seq: Annotated[int | None, Field(description="Which checkpoint; the head when omitted.", ge=1)] = None,
    ) -> LoadedCheckpoint:
        """Load a checkpoint with its state: what to resume from after a restart. Its seq is your next expected_seq."""
        cp = repo.load(policy.check_session(session), seq)
        return LoadedCheckpoint(
            session=cp.session, seq=cp.seq, parent=cp.parent, created_at=cp.created_at.isoformat(), step=cp.step,
            status=str(cp.status), state=cp.state, pending_inputs=pending_list(inputs.pending(cp.runtime)),
            in_doubt=summary.in_doubt(cp.runtime),
        )  # fmt: skip

    @server.tool(annotations=READ)
    @tool_errors
    def history(session: SessionId) -> History:
        """List a session's checkpoints, oldest first (metadata only: seq, time, step, status)."""
        checkpoints = repo.history(policy.check_session(session))
        return History(session=session, checkpoints=[Meta.of(cp) for cp in checkpoints])

    @server.tool(annotations=READ)
    @tool_errors
    def diff(
        session: SessionId,
        a: Annotated[int, Field(description="The older seq.", ge=1)],
        b: Annotated[int, Field(description="The newer seq.", ge=1)],
    ) -> Diff:
        """What changed from checkpoint a to checkpoint b, one line per change."""
        return Diff(session=session, a=a, b=b, changes=repo.diff(policy.check_session(session), a, b))

    @server.tool(annotations=READ)
    @tool_errors
    def get_artifact(
        ref: Annotated[str | None, Field(description="The artifact's `sha256:...` reference.")] = None,
        session: Annotated[str | None, Field(description="With `name`: the session listing the artifact.")] = None,
        name: Annotated[str | None, Field(description="The artifact's name in the session's state.artifacts.")] = None,
    ) -> Annotated[CallToolResult, Artifact]:
        """Get an artifact: small ones inline (base64), large ones as a resource link to read."""
        entry = _artifact_entry(repo, policy, ref, session, name)
        with repo.open_artifact(entry["ref"]) as stream:
            size = stream.raw.size  # type: ignore[attr-defined]
            data = stream.read() if size <= policy.inline_artifact else None
        found = Artifact(
            name=entry.get("name") or entry["ref"], ref=entry["ref"], size=size,
            media_type=entry.get("media_type") or "application/octet-stream",
            data_base64=base64.b64encode(data).decode() if data is not None else None,
            resource_uri=None if data is not None else artifact_uri(entry["ref"]),
        )  # fmt: skip
        content: list[Any] = [TextContent(type="text", text=found.model_dump_json(exclude_none=True))]
        if data is None:
            content.append(
                ResourceLink(type="resource_link", uri=artifact_uri(found.ref), name=found.name,
                             mime_type=found.media_type, size=size)
            )  # fmt: skip
        return CallToolResult(content=content, structured_content=found.model_dump(mode="json"))

    @server.tool(annotations=READ)
    @tool_errors
    def pending_inputs(session: SessionId) -> PendingInputs:
        """The questions a session waits for (answer them with answer_input or ask_user)."""
        return PendingInputs(session=session, pending=pending_list(repo.pending_inputs(policy.check_session(session))))

    @server.tool(annotations=READ)
    @tool_errors
    def get_effect(
        session: SessionId, key: Annotated[str, Field(description="The effect's idempotency key.")]
    ) -> Effect:
        """Whether an outside action was done: 'done' (do not repeat it; its result is here), 'intent' (started,
        outcome unknown: check before retrying) or 'none' (never started)."""
        policy.check_session(session)
        runtime = repo.load(session).runtime if repo.info(session).seq else {}
        return _effect(session, key, (runtime.get("effects") or {}).get(key))


def register_writing(server: MCPServer, repo: Repository, policy: Policy) -> None:
    @server.tool(annotations=WRITE)
    @tool_errors
    def save_checkpoint(
        session: SessionId,
        state: Annotated[
            dict[str, Any] | None, Field(description="The whole new state (a JSON object). Or give `changes`.")
        ] = None,
        changes: Annotated[
            list[Change] | None, Field(description="Values to set inside the head state, applied in order.")
        ] = None,
        step: Annotated[str | None, Field(description="Name of the step just finished, e.g. 'collect'.")] = None,
        status: Annotated[StatusName, Field(description="The session's status after this save.")] = "running",
        expected_seq: ExpectedSeq = None,
        agent: Annotated[str | None, Field(description="Agent name, recorded when this save creates it.")] = None,
        tags: Annotated[list[str] | None, Field(description="Tags, recorded when this save creates it.")] = None,
    ) -> SavedCheckpoint:
        """Save a checkpoint: durable when this returns. A new session id creates the session.

        Give the whole `state`, or `changes` to the head state. Pass the seq you loaded as `expected_seq` so a
        concurrent writer cannot be overwritten: if the head moved, nothing is written.
        """
        policy.check_session(session)
        if (state is None) == (changes is None):
            raise ToolError(
                "give either `state` (the whole new state) or `changes` (a list of {path, value}), one of them"
            )
        edits = [(c.path, c.value) for c in changes or ()]
        policy.check_size("the state" if state is not None else "the changes", state if state is not None else edits)

        def build(head: Any) -> tuple[Any, dict[str, Any]]:
            if state is not None:
                return writes.checked_state(session, head, state), writes.base_runtime(head)
            new = writes.base_state(head)
            for path, value in edits:
                assign(new, path, value, session)
            return writes.checked_state(session, head, new), writes.base_runtime(head)

        cp, created = writes.commit(
            repo,
            session,
            build,
            step=step,
            status=status,
            expected_seq=expected_seq,
            create=True,
            agent=agent,
            tags=tags,
        )
        return SavedCheckpoint(
            session=session, seq=cp.seq, parent=cp.parent, step=cp.step, status=str(cp.status), created=created
        )

    @server.tool(annotations=WRITE)
    @tool_errors
    def fork(
        session: SessionId,
        at: Annotated[int | None, Field(description="The seq to fork from; the head when omitted.", ge=1)] = None,
        new_id: Annotated[str | None, Field(description="Id of the new session (default: <id>-fork-<seq>).")] = None,
    ) -> Forked:
        """Start a new session from a checkpoint of another (to try another path, or hand the work off)."""
        source_seq = at or repo.info(policy.check_session(session)).seq
        target = policy.check_session(new_id or f"{session}-fork-{source_seq}")
        info = repo.fork(session, at=at, new_id=target)
        return Forked(session=info.id, forked_from=session, at=(info.parent or {}).get("seq", source_seq), seq=info.seq)

    @server.tool(annotations=WRITE)
    @tool_errors
    def put_artifact(
        name: Annotated[str, Field(description="File name, e.g. 'draft.md' (its media type is guessed from it).")],
        data_base64: Annotated[str, Field(description="The file's bytes, base64-encoded.")],
        media_type: Annotated[
            str | None, Field(description="e.g. 'text/csv'; guessed from the name by default.")
        ] = None,
        session: Annotated[str | None, Field(description="List it in this session's state.artifacts.")] = None,
        expected_seq: ExpectedSeq = None,
    ) -> Artifact:
        """Store a file apart from the state, by content hash; with `session`, list it in state.artifacts
        (one checkpoint). Unlisted artifacts are removed by `safepoint gc`."""
        if session is not None:  # everything that could refuse the listing is checked before the bytes are stored
            head = writes.writable_head(repo, policy.check_session(session), expected_seq, create=False)
            if (
                head is not None
                and isinstance(head.state, dict)
                and not isinstance(head.state.get("artifacts", []), list)
            ):
                raise ToolError(f"state.artifacts of session {session!r} is not a list; cannot list the artifact")
        policy.check_size("the artifact", size=len(data_base64) * 3 // 4)
        try:
            data = base64.b64decode(data_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("data_base64 is not valid base64; encode the file's bytes with standard base64") from None
        ref = repo.put_artifact(name, data, media_type)
        found = Artifact(**ref.model_dump())
        if session is None:
            return found

        def build(head: Any) -> tuple[Any, dict[str, Any]]:
            new = writes.base_state(head)
            items = new.setdefault("artifacts", [])
            if not isinstance(items, list):
                raise ToolError(f"state.artifacts of session {session!r} is not a list; cannot list the artifact")
            items[:] = [i for i in items if not (isinstance(i, dict) and i.get("name") == name)] + [ref.model_dump()]
            return writes.checked_state(session, head, new), writes.base_runtime(head)

        cp, _ = writes.commit(repo, session, build, step=f"artifact {name}", expected_seq=expected_seq)
        return found.model_copy(update={"attached_at": cp.seq})

    @server.tool(annotations=WRITE)
    @tool_errors
    def answer_input(
        session: SessionId,
        name: Annotated[str, Field(description="The question's name (see pending_inputs).")],
        value: Annotated[Any, Field(description="The answer, as JSON; checked against the question's schema.")],
    ) -> Answered:
        """Answer a waiting session's question, as `safepoint send` does; then the session is ready to resume."""
        policy.check_session(session)
        policy.check_size("the answer", value)
        cp = repo.send(session, name, value, by="mcp")
        return Answered(session=session, name=name, seq=cp.seq, ready=bool(cp.meta.get("ready")))

    @server.tool(annotations=WRITE)
    @tool_errors
    def record_effect(
        session: SessionId,
        key: Annotated[str, Field(description="Idempotency key of the outside action, e.g. 'email:report-42'.")],
        status: Annotated[
            Literal["intent", "done"],
            Field(description="'intent' just before you act; 'done' with its result once it happened."),
        ],
        result: Annotated[Any, Field(description="With 'done': what the action returned (JSON).")] = None,
        expected_seq: ExpectedSeq = None,
    ) -> Effect:
        """Record an action taken outside (an email sent, a payment made) under an idempotency key, so a resumed
        agent does not do it twice. Record 'intent' before acting and 'done' after; get_effect tells which."""
        policy.check_session(session)
        policy.check_size("the effect result", result)
        already: dict[str, Any] = {}

        def build(head: Any) -> tuple[Any, dict[str, Any]]:
            runtime = writes.base_runtime(head)
            records = runtime.setdefault("effects", {})
            previous = records.get(key)
            if previous is not None and previous.get("status") == "done":
                raise _AlreadyDone(previous)
            records[key] = effects.intent_record(previous) if status == "intent" else (
                effects.done_record(key, result, previous)
            )  # fmt: skip
            already["record"] = records[key]
            return writes.base_state(head), runtime

        step = f"effect {key}: intent" if status == "intent" else f"effect {key}"
        try:
            cp, _ = writes.commit(repo, session, build, step=step, expected_seq=expected_seq)
        except _AlreadyDone as done:
            return _effect(session, key, done.record)  # done before: nothing to record, do not act again
        return _effect(session, key, already["record"], seq=cp.seq)


class _AlreadyDone(SafepointError):
    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("effect already done")
        self.record = record


def _effect(session: str, key: str, record: dict[str, Any] | None, seq: int | None = None) -> Effect:
    if record is None:
        return Effect(session=session, key=key, status="none")
    return Effect(
        session=session, key=key, status=record.get("status", "none"), result=record.get("result"),
        at=record.get("at"), attempt=record.get("attempt"), seq=seq,
    )  # fmt: skip


def _artifact_entry(
    repo: Repository, policy: Policy, ref: str | None, session: str | None, name: str | None
) -> dict[str, Any]:
    """The state.artifacts entry (name, ref, media_type) an artifact request names."""
    if session is not None:
        policy.check_session(session)
        state = repo.load(session).state
        for item in (state.get("artifacts") if isinstance(state, dict) else None) or []:
            if isinstance(item, dict) and (item.get("name") == name if name is not None else item.get("ref") == ref):
                return item
        raise ToolError(
            f"session {session!r} lists no artifact {name or ref!r} in state.artifacts; see load_checkpoint for them"
        )
    if ref is None:
        raise ToolError("give `ref` (sha256:...), or `session` and `name` of an artifact listed in its state")
    if policy.sessions:
        # An allow-listed client reads only what its sessions list, not any content address it guesses.
        raise ToolError("this server has a session allow-list: give the `session` whose state lists the artifact")
    return {"ref": ref}
