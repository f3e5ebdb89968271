"""What a checkpoint is: its status, the default agent state, and the records the API hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Version of safepoint's own storage format (commit records, tree nodes). Bumped on incompatible change.
FORMAT = 1


class Status(StrEnum):
    """Where a session stands."""

    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    FAILED = "failed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class _Part(BaseModel):
    # Extra keys are kept, so agents can grow their state without a schema change.
    model_config = ConfigDict(extra="allow", validate_assignment=True)


class Mission(_Part):
    """What the agent is trying to do and how far it got."""

    goal: str = ""
    done: list[str] = Field(default_factory=list)
    remaining: list[str] = Field(default_factory=list)
    reasoning: list[str] = Field(default_factory=list)


class Tools(_Part):
    """Tool and environment context: cursors, search results, temporary paths."""

    cursors: dict[str, Any] = Field(default_factory=dict)
    results: dict[str, Any] = Field(default_factory=dict)
    temp_paths: list[str] = Field(default_factory=list)


class ModelConfig(_Part):
    """The model configuration a step ran with."""

    name: str | None = None
    temperature: float | None = None
    prompts: dict[str, str] = Field(default_factory=dict)


class ArtifactRef(_Part):
    """A large file stored apart from the state, by content hash (`ref` is `sha256:<hex>`)."""

    name: str
    ref: str
    size: int
    media_type: str = "application/octet-stream"


class AgentState(_Part):
    """The default state: mission, tools, model, artifacts, summarised context and the user's own `data`."""

    mission: Mission = Field(default_factory=Mission)
    tools: Tools = Field(default_factory=Tools)
    model: ModelConfig = Field(default_factory=ModelConfig)
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    context: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """One immutable snapshot of a session.

    `state` (the agent's state) and `runtime` (safepoint's records of steps, effects, inputs and usage) are
    filled when the checkpoint was loaded with its contents; `lease` is the fencing token of its writer.
    """

    session: str
    seq: int
    parent: int | None
    created_at: datetime
    step: str | None
    status: Status
    schema_version: int
    format: int
    checksum: str
    meta: dict[str, Any] = field(default_factory=dict)
    keyframe: bool = False
    lease: int | None = None
    state: Any = None
    runtime: dict[str, Any] = field(default_factory=dict)

    @property
    def is_manual_edit(self) -> bool:
        return bool(self.meta.get("manual_edit"))

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's metadata as JSON-ready data (without state and runtime), as front ends show it."""
        return {
            "session": self.session,
            "seq": self.seq,
            "parent": self.parent,
            "created_at": self.created_at.isoformat(),
            "step": self.step,
            "status": str(self.status),
            "schema_version": self.schema_version,
            "format": self.format,
            "keyframe": self.keyframe,
            "manual_edit": self.is_manual_edit,
            "checksum": self.checksum,
            "meta": self.meta,
        }


@dataclass(frozen=True)
class SessionInfo:
    """A session's identity and where its head stands."""

    id: str
    agent: str | None
    tags: list[str]
    parent: dict[str, Any] | None
    created_at: datetime
    head: Checkpoint | None = None
    #: why the session cannot be read as a whole (a damaged record, see `safepoint fsck`); None when it can
    damaged: str | None = None

    @property
    def status(self) -> Status | None:
        return self.head.status if self.head else None

    @property
    def seq(self) -> int:
        return self.head.seq if self.head else 0

    @property
    def updated_at(self) -> datetime:
        """When the session last changed: its head's time, or its creation for a session with no checkpoint."""
        return self.head.created_at if self.head else self.created_at

    def to_dict(self) -> dict[str, Any]:
        """The session's identity and head as JSON-ready data, as front ends show it."""
        head = self.head
        return {
            "id": self.id,
            "agent": self.agent,
            "tags": self.tags,
            "status": str(head.status) if head else None,
            "step": head.step if head else None,
            "seq": self.seq,
            "created_at": self.created_at.isoformat(),
            "updated_at": head.created_at.isoformat() if head else None,
            "parent": self.parent,
            **({"damaged": self.damaged} if self.damaged else {}),
        }
