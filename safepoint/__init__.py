"""safepoint: durable checkpoints for AI agents.

import safepoint as sp

store = sp.open()                                  # $SAFEPOINT_STORE or ./.safepoint
with store.session("report-42", agent="researcher") as s:
    if s.is_new:
        s.state.mission.goal = "Write a market report"
    s.state.mission.done.append("collected sources")
    s.save(step="collect")                         # durable when it returns
"""

from .agents.runner import RunResult, agent, run
from .agents.worker import Worker
from .core.migrations import Migrations
from .core.stuck import StuckPolicy
from .core.summary import SessionSummary
from .errors import (
    WAITING_EXIT_CODE,
    ArtifactNotFound,
    CheckpointNotFound,
    ConfigDrift,
    ConflictError,
    CorruptCheckpoint,
    EncryptionKeyError,
    Interrupted,
    InvalidAnswer,
    InvalidSessionId,
    InvalidState,
    LeaseLost,
    MigrationError,
    NotSerializable,
    SafepointError,
    SchemaTooNew,
    SessionBusy,
    SessionClosed,
    SessionNotFound,
    StepFailed,
    StorageError,
    Suspended,
)
from .model import AgentState, ArtifactRef, Checkpoint, Mission, ModelConfig, SessionInfo, Status, Tools
from .repository import Repository, open
from .runtime.effects import NOT_DONE
from .runtime.retry import RetryPolicy
from .runtime.steps import report_usage, step
from .session import Session
from .version import __version__

__all__ = [
    "__version__",
    "NOT_DONE",
    "WAITING_EXIT_CODE",
    "AgentState",
    "ConfigDrift",
    "Interrupted",
    "InvalidAnswer",
    "LeaseLost",
    "RetryPolicy",
    "RunResult",
    "SessionBusy",
    "SessionClosed",
    "SessionSummary",
    "StepFailed",
    "StuckPolicy",
    "Suspended",
    "Worker",
    "agent",
    "report_usage",
    "run",
    "step",
    "ArtifactNotFound",
    "ArtifactRef",
    "Checkpoint",
    "CheckpointNotFound",
    "ConflictError",
    "CorruptCheckpoint",
    "EncryptionKeyError",
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
