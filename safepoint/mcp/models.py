"""The pydantic models of the MCP tools' inputs and results: clients get them as JSON Schemas.

Field descriptions are what an agent reads when it decides how to call a tool, so they say what a value
means and what to pass, in a sentence.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from ..core.summary import SessionSummary
from ..model import Checkpoint

StatusName = Literal["running", "waiting", "paused", "failed", "completed"]


class Change(BaseModel):
    """One value to set inside the state."""

    path: str = Field(description='Where in the state, e.g. `mission.goal`, `data.notes[0]` or `data["odd key"]`.')
    value: Any = Field(description="The new value (any JSON).")


class SessionItem(BaseModel):
    """One session as a list shows it."""

    id: str
    agent: str | None = None
    tags: list[str] = Field(default_factory=list)
    status: str | None = Field(None, description="Status of the head checkpoint; null before the first save.")
    step: str | None = None
    seq: int = Field(description="Seq of the head checkpoint (0: none yet).")
    updated_at: str | None = None
    parent: dict[str, Any] | None = Field(None, description="Where a forked session came from.")
    waiting_for: list[str] = Field(default_factory=list, description="Questions waiting for an answer.")
    in_doubt: list[str] = Field(default_factory=list, description="Effects started but never recorded as done.")
    stuck: str | None = Field(None, description="Why the session needs a person, or null.")
    tokens: float = 0
    cost: float = 0

    @classmethod
    def of(cls, summary: SessionSummary) -> SessionItem:
        data = summary.to_dict()
        return cls(**{name: data.get(name) for name in cls.model_fields if name in data})


class SessionList(BaseModel):
    sessions: list[SessionItem]


class PendingInput(BaseModel):
    """A question a session waits for."""

    name: str
    prompt: str | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema", description="JSON Schema the answer must fit.")
    asked_at: str | None = None

    model_config = {"populate_by_name": True}


def pending_list(pending: dict[str, dict[str, Any]]) -> list[PendingInput]:
    return [
        PendingInput(name=name, prompt=r.get("prompt"), schema=r.get("schema"), asked_at=r.get("asked_at"))
        for name, r in sorted(pending.items())
    ]


class CheckpointMeta(BaseModel):
    """A checkpoint's metadata (without its state)."""

    session: str
    seq: int
    parent: int | None = None
    created_at: str
    step: str | None = None
    status: str
    manual_edit: bool = False
    checksum: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> CheckpointMeta:
        data = checkpoint.to_dict()
        return cls(**{name: data[name] for name in cls.model_fields})


class LoadedCheckpoint(BaseModel):
    """A checkpoint with its state: what an agent resumes from."""

    session: str
    seq: int = Field(description="Pass it as `expected_seq` to the next save_checkpoint.")
    parent: int | None = None
    created_at: str
    step: str | None = None
    status: str
    state: Any = Field(description="The saved state (a JSON object).")
    pending_inputs: list[PendingInput] = Field(default_factory=list)
    in_doubt: list[str] = Field(default_factory=list, description="Effects started but never recorded as done.")


class SavedCheckpoint(BaseModel):
    """What a save committed."""

    session: str
    seq: int = Field(description="The new head; pass it as `expected_seq` next time.")
    parent: int | None = None
    step: str | None = None
    status: str
    created: bool = Field(False, description="True when this save created the session.")


class History(BaseModel):
    session: str
    checkpoints: list[CheckpointMeta] = Field(description="Oldest first.")


class Diff(BaseModel):
    session: str
    a: int
    b: int
    changes: list[str] = Field(description="One line per change: `+` added, `-` removed, `~` changed, with its path.")


class Forked(BaseModel):
    session: str = Field(description="Id of the new session.")
    forked_from: str
    at: int = Field(description="The seq of the source session it started from.")
    seq: int


class Artifact(BaseModel):
    """An artifact: small ones carry their bytes inline, large ones a resource link to read them by."""

    name: str
    ref: str = Field(description="Content address, `sha256:<hex>`.")
    size: int
    media_type: str
    data_base64: str | None = Field(None, description="The bytes, base64-encoded, when small enough to inline.")
    resource_uri: str | None = Field(None, description="Read this resource for the bytes when they are not inline.")
    attached_at: int | None = Field(None, description="Seq of the checkpoint that listed it in state.artifacts.")


class PendingInputs(BaseModel):
    session: str
    pending: list[PendingInput]


class Answered(BaseModel):
    session: str
    name: str
    seq: int = Field(description="The checkpoint that recorded the answer.")
    ready: bool = Field(description="True when nothing else is waiting: the session can resume.")


class Asked(BaseModel):
    """What came of putting a waiting session's question to the user."""

    session: str
    name: str
    action: Literal["accept", "decline", "cancel"]
    answer: Any = None
    seq: int | None = Field(None, description="The checkpoint that recorded the answer (accept only).")
    ready: bool = False


class Effect(BaseModel):
    """An action taken outside, under an idempotency key."""

    session: str
    key: str
    status: Literal["none", "intent", "done"] = Field(
        description="none: never started; intent: started, outcome unknown (in doubt); done: result recorded."
    )
    result: Any = None
    at: str | None = None
    attempt: int | None = None
    seq: int | None = Field(None, description="The checkpoint that recorded it (record_effect only).")
