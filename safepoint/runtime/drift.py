"""Configuration drift: the model, temperature, prompts and code a run used, compared on every resume.

    s.configure(model="gpt-4o", temperature=0.2, prompts={"system": SYSTEM}, code_version="1.4.0",
                on_drift="warn")          # or "refuse" (raise ConfigDrift) or "accept"

Prompts are recorded by hash. A difference from the recorded configuration is reported by the policy and
always recorded in `runtime.drift`, so a reader of the history can see which steps ran under which setup.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

from ..errors import ConfigDrift
from .context import RunContext
from .steps import now

POLICIES = ("warn", "refuse", "accept")


class ConfigDriftWarning(UserWarning):
    """The model configuration changed since the run's last checkpoint."""


def fingerprint(
    model: str | None, temperature: float | None, prompts: dict[str, str] | None, code_version: str | None
) -> dict[str, Any]:
    hashes = {name: hashlib.sha256(text.encode()).hexdigest()[:16] for name, text in sorted((prompts or {}).items())}
    return {"model": model, "temperature": temperature, "prompt_hashes": hashes, "code_version": code_version}


def configure(session: RunContext, config: dict[str, Any], on_drift: str) -> list[str]:
    """Record `config`; return the differences from the recorded one (empty when none or first time)."""
    if on_drift not in POLICIES:
        raise ValueError(f"on_drift must be one of {POLICIES}, got {on_drift!r}")
    recorded = session.runtime.get("config")
    changes = [] if recorded is None else _differences(recorded, config)
    if changes:
        message = f"session {session.id!r}: configuration changed since seq {session.seq}: " + "; ".join(changes)
        if on_drift == "refuse":
            raise ConfigDrift(message + "; nothing was changed (configure with on_drift='accept' to continue)")
        session.runtime.setdefault("drift", []).append(
            {"at": now(), "seq": session.seq, "changes": changes, "policy": on_drift}
        )
        if on_drift == "warn":
            warnings.warn(message, ConfigDriftWarning, stacklevel=3)
    session.runtime["config"] = config
    return changes


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for field in ("model", "temperature", "code_version"):
        if old.get(field) != new.get(field):
            out.append(f"{field} {old.get(field)!r} -> {new.get(field)!r}")
    old_prompts, new_prompts = old.get("prompt_hashes", {}), new.get("prompt_hashes", {})
    for name in sorted(set(old_prompts) | set(new_prompts)):
        if old_prompts.get(name) != new_prompts.get(name):
            out.append(
                f"prompt {name!r} {'changed' if name in old_prompts and name in new_prompts else 'added or removed'}"
            )
    return out
