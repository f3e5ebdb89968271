"""Schema versions of the user's state, and the registered steps that upgrade old checkpoints on read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import MigrationError, SchemaTooNew

Step = Callable[[dict[str, Any]], dict[str, Any]]


class Migrations:
    """A registry of upgrade steps, each from one schema version to the next.

        migrations = Migrations()

        @migrations.register(from_version=1)
        def add_priority(state):            # version 1 -> 2
            state["data"].setdefault("priority", "normal")
            return state

    Loading a checkpoint written at version 1 by code at version 3 runs steps 1->2 and 2->3 on the loaded
    copy; what is stored stays as it was. The next save writes the upgraded state with the new version.
    """

    def __init__(self) -> None:
        self._steps: dict[int, Step] = {}

    def register(self, from_version: int) -> Callable[[Step], Step]:
        if not isinstance(from_version, int) or from_version < 1:
            raise MigrationError(f"from_version must be a positive int, got {from_version!r}")

        def decorator(step: Step) -> Step:
            if from_version in self._steps:
                raise MigrationError(
                    f"a migration from schema version {from_version} is already registered "
                    f"({self._steps[from_version].__name__}); register one step per version"
                )
            self._steps[from_version] = step
            return step

        return decorator

    def upgrade(self, state: dict[str, Any], stored: int, current: int, *, where: str) -> dict[str, Any]:
        """Upgrade `state` from version `stored` to `current`; `where` names the checkpoint in errors."""
        if stored > current:
            raise SchemaTooNew(
                f"{where} was saved with schema version {stored}, but this code knows version {current}; "
                "run the newer code, or pass schema_version to match"
            )
        for version in range(stored, current):
            step = self._steps.get(version)
            if step is None:
                raise MigrationError(
                    f"{where} is at schema version {stored} and needs {current}, but no migration from "
                    f"version {version} to {version + 1} is registered; add "
                    f"@migrations.register(from_version={version})"
                )
            try:
                state = step(state)
            except Exception as exc:  # the user's code: report which step broke, keep the cause
                raise MigrationError(
                    f"migration {step.__name__} ({version} -> {version + 1}) failed on {where}: {exc}"
                ) from exc
            if not isinstance(state, dict):
                raise MigrationError(f"migration {step.__name__} must return the state dict, got {type(state)}")
        return state
