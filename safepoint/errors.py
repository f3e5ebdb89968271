"""The exceptions safepoint raises. Every one derives from `SafepointError`.

Messages follow one template: what failed, for which session/seq/key/path, and what to do next.
"""

from __future__ import annotations


class SafepointError(Exception):
    """Base class of every error safepoint raises on purpose."""


class InvalidSessionId(SafepointError, ValueError):
    """A session id that could not be stored safely (empty, `.`/`..`, separators, control characters...)."""


class InvalidKey(SafepointError, ValueError):
    """A store key outside the allowed alphabet; raised before anything is written."""


class NotSerializable(SafepointError, TypeError):
    """A value in the state that has no JSON form; `path` names where it sits (`data.tools[3].callback`)."""

    def __init__(self, path: str, value: object, hint: str = "") -> None:
        self.path = path
        self.value_type = type(value).__name__
        advice = hint or "store plain JSON values (dict, list, str, int, float, bool, None) or a pydantic model"
        super().__init__(f"cannot save {path}: a {self.value_type} has no JSON form; {advice}")


class ConflictError(SafepointError):
    """Another writer committed the same checkpoint seq first; reload the head and retry."""


class SessionNotFound(SafepointError, KeyError):
    """The named session does not exist in this store."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointNotFound(SafepointError, KeyError):
    """The session exists but has no checkpoint with the requested seq."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CorruptCheckpoint(SafepointError):
    """Stored bytes failed their checksum or could not be decoded; `key` names the damaged object."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"corrupt object {key}: {reason}; run `safepoint fsck` to see which checkpoints it breaks "
            "and the last good one to fall back to"
        )


class SchemaTooNew(SafepointError):
    """A checkpoint was written by newer code (storage format or user schema) than this process runs."""


class MigrationError(SafepointError):
    """A registered schema migration is missing or failed."""


class StorageError(SafepointError, OSError):
    """The backend failed to read or write (disk full, I/O error, lost connection)."""


class ArtifactNotFound(SafepointError, KeyError):
    """No artifact with this reference is stored."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidState(SafepointError, ValueError):
    """A state does not match the session's schema (on load, on edit, or from the CLI)."""
