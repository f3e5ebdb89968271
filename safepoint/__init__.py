"""safepoint: durable checkpoints for AI agents.

import safepoint as sp

store = sp.open()                                  # $SAFEPOINT_STORE or ./.safepoint
with store.session("report-42", agent="researcher") as s:
    if s.is_new:
        s.state.mission.goal = "Write a market report"
    s.state.mission.done.append("collected sources")
    s.save(step="collect")                         # durable when it returns
"""

from .errors import (
    ArtifactNotFound,
    CheckpointNotFound,
    ConflictError,
    CorruptCheckpoint,
    InvalidSessionId,
    InvalidState,
    MigrationError,
    NotSerializable,
    SafepointError,
    SchemaTooNew,
    SessionNotFound,
    StorageError,
)
from .migrations import Migrations
from .model import AgentState, ArtifactRef, Checkpoint, Mission, ModelConfig, SessionInfo, Status, Tools
from .repository import Repository, open
from .session import Session

__version__ = "0.1.0"

__all__ = [
    "AgentState",
    "ArtifactNotFound",
    "ArtifactRef",
    "Checkpoint",
    "CheckpointNotFound",
    "ConflictError",
    "CorruptCheckpoint",
    "InvalidSessionId",
    "InvalidState",
    "MigrationError",
    "Migrations",
    "Mission",
    "ModelConfig",
    "NotSerializable",
    "Repository",
    "SafepointError",
    "SchemaTooNew",
    "Session",
    "SessionInfo",
    "SessionNotFound",
    "Status",
    "StorageError",
    "Tools",
    "open",
]
