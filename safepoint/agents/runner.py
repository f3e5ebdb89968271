"""Running an agent function in a session: registration, one run to its next stop, and the result.

    @sp.agent("researcher")
    def research(s: sp.Session) -> str:
        plan = s.step("plan", llm.plan, s.state.mission.goal)
        ...
        return report

    result = sp.run(research, "report-42")      # completed, waiting (for a human), or failed

A run stops when the agent returns (completed), waits for input (waiting: the process may exit), or a step
fails for good (failed). Running it again resumes from the last checkpoint: recorded steps are replayed,
not re-run.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import codec, tracing
from ..errors import AgentNotRegistered, ConfigDrift, Interrupted, StepFailed, Suspended
from ..model import AgentState, Status
from ..runtime.steps import now

if TYPE_CHECKING:
    from ..repository import Repository
    from ..session import Session

Agent = Callable[["Session"], Any]

_log = tracing.logger("runtime")

#: Agents registered with `@agent`, by name: what `safepoint resume` and `safepoint worker` can run.
AGENTS: dict[str, Agent] = {}


def agent(name: str | None = None, *, schema: Any = AgentState) -> Callable[[Agent], Agent]:
    """Register `fn(session)` as an agent named `name` (default: the function's name)."""

    def register(fn: Agent) -> Agent:
        agent_name = name or fn.__name__
        fn.__safepoint_agent__ = agent_name  # type: ignore[attr-defined]
        fn.__safepoint_schema__ = schema  # type: ignore[attr-defined]
        AGENTS[agent_name] = fn
        return fn

    return register


def import_agents(spec: str) -> None:
    """Import the module that registers agents: a module name (`myagents`) or a file (`./agents/my.py`).

    A file is imported as a module named after it, with its directory put on `sys.path`, so the entry point a
    run records (`my:research`) imports again in a worker started from elsewhere with the same `--agents`.
    """
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = Path(spec).expanduser().resolve()
        if not path.is_file():
            raise ImportError(f"no Python file at {path}")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        importlib.import_module(path.stem)
        return
    importlib.import_module(spec)


def agent_name(fn: Agent) -> str:
    return getattr(fn, "__safepoint_agent__", None) or fn.__name__


def find_agent(name: str | None, entrypoint: str | None = None, agents: dict[str, Agent] | None = None) -> Agent:
    """The agent registered (in `agents`, default every `@agent` of this process) under `name`.

    `entrypoint`, the `module:function` a session recorded, is never imported: a store or a bundle is data, and
    may come from someone else. It only tells the user which module to pass to `--agents`."""
    registry = AGENTS if agents is None else agents
    if name and name in registry:
        return registry[name]
    known = ", ".join(sorted(registry)) or "none"
    module = entrypoint.partition(":")[0] if isinstance(entrypoint, str) else ""
    hint = f" (the session records entry point {entrypoint!r}: if that is your code, pass --agents {module})"
    raise AgentNotRegistered(
        f"no agent named {name!r} is registered in this process (registered: {known}); only agents registered "
        f"with @safepoint.agent in modules you import (--agents MODULE) run, never code a session names"
        + (hint if module else "")
    )


@dataclass
class RunResult:
    """How a run stopped."""

    session: str
    status: Status
    seq: int
    value: Any = None
    waiting_for: list[str] = field(default_factory=list)
    error: str | None = None
    replayed_steps: int = 0
    tokens_saved: float = 0
    cost_saved: float = 0
    interrupted: bool = False


def run(
    fn: Agent,
    session_id: str,
    *,
    store: Repository | Any = None,
    schema: Any = None,
    input: Any = None,  # noqa: A002 - the run's input, as users name it
    **session_options: Any,
) -> RunResult:
    """Run (or resume) agent `fn` in session `session_id` until it completes, waits or fails.

    `input` (JSON data) starts a new session: it is saved in a first checkpoint before the agent runs, so a
    crash right after still leaves it to the resume, and the agent reads it as `session.input`."""
    from ..repository import Repository

    repo = store if isinstance(store, Repository) else Repository(store)
    name = agent_name(fn)
    schema = schema or getattr(fn, "__safepoint_schema__", AgentState)
    attributes = {"safepoint.session.id": session_id, "safepoint.agent": name}
    with tracing.span("safepoint.run", attributes) as span:
        result = _run(fn, repo, session_id, name, schema, input, session_options, span)
        span.set_attributes(
            {
                "safepoint.status": str(result.status),
                "safepoint.seq": result.seq,
                "safepoint.run.replayed_steps": result.replayed_steps,
                "safepoint.input.name": result.waiting_for[0] if result.waiting_for else None,
                "safepoint.run.interrupted": result.interrupted or None,
            }
        )
        event = {"session": result.session, "agent": name, "status": str(result.status), "seq": result.seq}
        if result.status == Status.FAILED:
            span.fail(tracing.scrub(result.error or "failed"))
            _log.error("session %r: run failed at seq %d", result.session, result.seq, extra=event)
        elif result.status == Status.WAITING:
            _log.info("session %r: run suspended, waiting for %s", result.session, result.waiting_for[0], extra=event)
        else:
            _log.info("session %r: run stopped, %s at seq %d", result.session, result.status, result.seq, extra=event)
        return result


def _run(
    fn: Agent, repo: Repository, session_id: str, name: str, schema: Any, input: Any, options: dict, span: Any
) -> RunResult:
    with repo.session(session_id, agent=name, schema=schema, **options) as s:
        span.set_attribute("safepoint.run.resumed", not s.is_new)
        event = {"session": s.id, "agent": name, "seq": s.seq}
        _log.info("session %r: run %s (agent %r)", s.id, "started" if s.is_new else "resumed", name, extra=event)
        s.runtime["agent"] = {"name": name, "entrypoint": f"{fn.__module__}:{fn.__qualname__}"}
        if input is not None and s.is_new:
            s.runtime["input"] = codec.loads(codec.dumps(input, root="the run's input"))
            s.save(step="started")
        head = s.head
        if head is not None and head.status == Status.COMPLETED and "result" in s.runtime:
            return _result(s, Status.COMPLETED, value=s.runtime["result"])
        if head is not None and head.status == Status.CANCELLED:
            return _result(s, Status.CANCELLED, error=f"session {s.id!r} was cancelled; it does not run again")
        try:
            value = fn(s)
        except Suspended as waiting:
            return _result(s, Status.WAITING, waiting_for=[waiting.name])
        except StepFailed as failure:
            return _result(s, Status.FAILED, error=str(failure))
        except Interrupted:
            return _result(s, Status.RUNNING, interrupted=True)
        except ConfigDrift:
            raise  # refused before anything ran: nothing is saved, as its message says
        except Exception as exc:
            s.runtime["error"] = {"error": f"{type(exc).__name__}: {exc}"[:2000], "at": now()}
            s.save(step=s.last_step, status=Status.FAILED)
            _log.error("session %r: agent raised %s", s.id, tracing.describe(exc), extra={**event, "status": "failed"})
            raise
        s.runtime["result"] = codec.copy(value, root="the agent's result", tuples=True)
        s.runtime.pop("error", None)
        s.save(step="completed", status=Status.COMPLETED)
        return _result(s, Status.COMPLETED, value=s.runtime["result"])


def _result(s: Session, status: Status, **fields: Any) -> RunResult:
    return RunResult(
        session=s.id,
        status=status,
        seq=s.seq,
        replayed_steps=s.replayed_steps,
        tokens_saved=s.saved_usage.get("tokens", 0),
        cost_saved=s.saved_usage.get("cost", 0),
        **fields,
    )
