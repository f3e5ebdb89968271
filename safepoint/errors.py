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
        reason = hint or (
            f"a {self.value_type} has no JSON form; store plain JSON values (dict, list, str, int, float, bool, "
            "None) or a pydantic model"
        )
        super().__init__(f"cannot save {path}: {reason}; nothing was written")


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


class ArtifactMismatch(CorruptCheckpoint):
    """An artifact's manifest or content does not hash to the name it is stored under (`artifacts/<sha256>`).

    Either the store is damaged or someone wrote another file's manifest under this name (a hostile bundle, a
    shared store): the bytes are never handed out as the artifact."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        SafepointError.__init__(
            self,
            f"artifact {key} does not match its name: {reason}; the store is damaged or was given this artifact "
            "by a hostile bundle or writer, so it is not read; run `safepoint fsck`, then store the file again "
            "with put_artifact (which replaces a mismatched manifest)",
        )


class EncryptionKeyError(SafepointError):
    """An encrypted store opened without its key or with another one, or a key that cannot be used."""


class SchemaTooNew(SafepointError):
    """A checkpoint was written by newer code (storage format or user schema) than this process runs."""


class MigrationError(SafepointError):
    """A registered schema migration is missing or failed."""


class StorageError(SafepointError, OSError):
    """The backend failed to read or write (disk full, I/O error, lost connection)."""


class SafepointWarning(UserWarning):
    """Something works but is weaker than it looks (a Redis store that keeps nothing on disk...)."""


class ArtifactNotFound(SafepointError, KeyError):
    """No artifact with this reference is stored."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidState(SafepointError, ValueError):
    """A state does not match the session's schema (on load, on edit, or from the CLI)."""


class SessionBusy(SafepointError):
    """Another live worker holds the session's lease."""


class LeaseLost(SafepointError):
    """This worker's lease was taken over (it stalled past its time-to-live); it must stop writing."""


class SessionClosed(SafepointError):
    """`save()` on a session after `close()`: it no longer holds the lease that makes it the only writer."""


class FenceMismatch(SafepointError):
    """A fenced commit found its fence key changed (the writer's lease was taken over); nothing was written."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"commit refused: {key} no longer holds the value this writer's lease had; nothing written")


class Suspended(SafepointError):
    """The session waits for something outside the process (a human's answer). Not a failure.

    Raised by `wait_for` after the request is saved; `safepoint.run` turns it into a `waiting` result and the
    CLI into exit code `WAITING_EXIT_CODE`. The process may exit: nothing is held open while it waits.
    """

    def __init__(self, session_id: str, name: str, prompt: str) -> None:
        self.session_id, self.name, self.prompt = session_id, name, prompt
        super().__init__(
            f"session {session_id!r} is waiting for {name!r}: {prompt}; answer with "
            f"`safepoint send {session_id} {name} VALUE`, then `safepoint resume {session_id}`"
        )


class AgentNotRegistered(SafepointError):
    """A session names an agent that this process has not registered (`@safepoint.agent` in a module it imported).

    Stored data never chooses code to run: the `module:function` a session records is only shown as a hint."""


class UntrustedType(SafepointError):
    """A stored value names a Python type or callable outside the allow-list of what may be rebuilt on load.

    Nothing is imported or called: a store or a bundle may come from someone else (see docs/security.md)."""

    def __init__(self, named: str, how: str) -> None:
        self.named = named
        super().__init__(
            f"refused to load a stored value naming {named}: it is not on the list of types this process may "
            f"rebuild, and loading it would import and call it (the store is damaged, or was written by a "
            f"program or bundle you do not trust); {how}"
        )


class StepFailed(SafepointError):
    """A durable step failed for good (a permanent error, or transient ones beyond the retry limit)."""


class Interrupted(SafepointError):
    """A shutdown was requested (SIGTERM to a worker): the run stopped between two steps, all saved."""


class InvalidAnswer(SafepointError, ValueError):
    """An answer sent to a waiting session does not fit what it asked for; nothing was changed."""


class ConfigDrift(SafepointError):
    """The model configuration differs from the one recorded, and the policy is to refuse."""


#: Process exit code for "waiting for input" (EX_TEMPFAIL): not a failure, resume when answered.
WAITING_EXIT_CODE = 75
