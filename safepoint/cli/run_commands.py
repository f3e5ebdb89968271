"""Commands that run agents: `send` an answer, `resume` a session, serve as a `worker`, run the `demo`."""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from ..agents.runner import RunResult, find_agent, import_agents, run
from ..agents.worker import serve
from ..core.paths import parse_value
from ..demo import agent as demo_agent
from ..errors import WAITING_EXIT_CODE
from ..model import Status
from ..runtime.leases import DEFAULT_TTL
from .app import JsonFlag, SessionArg, command, fail, note, open_repo, print_json

AgentsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--agents",
        metavar="MODULE|FILE.py",
        help="Import this module (or Python file) first; it registers agents with @safepoint.agent. Repeatable.",
    ),
]


def _import_agents(modules: list[str] | None) -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `--agents myagents` finds ./myagents.py, like `python -m`
    for module in modules or ():
        try:
            import_agents(module)
        except (ImportError, OSError) as exc:
            fail(f"cannot import --agents {module!r}: {exc}")


def _result_json(result: RunResult) -> dict[str, Any]:
    return {**dataclasses.asdict(result), "status": str(result.status)}


@command()
def send(
    ctx: typer.Context,
    session_id: SessionArg,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The question the session waits for.")],
    value: Annotated[str, typer.Argument(metavar="VALUE", help="The answer: JSON if it parses, else a string.")],
    as_json: JsonFlag = False,
) -> None:
    """Answer a waiting session's question (checked against what it asked for); then it is ready to resume."""
    repo = open_repo(ctx)
    checkpoint = repo.send(session_id, name, parse_value(value), by="cli")
    ready = checkpoint.meta.get("ready")
    if as_json:
        return print_json({"session": session_id, "answered": name, "seq": checkpoint.seq, "ready": bool(ready)})
    typer.echo(f"session {session_id}: answer to {name!r} recorded at seq {checkpoint.seq}")
    if ready:
        # A session run by another framework's adapter says how it resumes (safepoint.integrations).
        hint = repo.load(session_id).runtime.get("resume_hint")
        note(hint or f"it is ready: `safepoint resume {session_id}` (or a running `safepoint worker`) continues it")


@command()
def resume(ctx: typer.Context, session_id: SessionArg, agents: AgentsOption = None, as_json: JsonFlag = False) -> None:
    """Run a session on from its last checkpoint with its agent. Exit 0 done, 75 waiting for input, 1 failed."""
    _import_agents(agents)
    repo = open_repo(ctx)
    info = repo.info(session_id)  # a session that crashed before its first checkpoint has no head: run it anew
    recorded = repo.load(session_id).runtime.get("agent", {}) if info.head is not None else {}
    # The recorded entry point is only named in the error: stored data never chooses the code that runs.
    agent = find_agent(info.agent, recorded.get("entrypoint") if isinstance(recorded, dict) else None)
    _report(run(agent, session_id, store=repo), as_json)


@command()
def cancel(
    ctx: typer.Context,
    session_id: SessionArg,
    reason: Annotated[str, typer.Option("--reason", metavar="TEXT", help="Why (recorded).")] = "cancelled",
    as_json: JsonFlag = False,
) -> None:
    """Stop a session for good: workers skip it, and a run still on it fails at its next save."""
    checkpoint = open_repo(ctx).cancel(session_id, reason=reason, by="cli")
    if as_json:
        return print_json({"session": session_id, "status": str(checkpoint.status), "seq": checkpoint.seq})
    typer.echo(f"session {session_id}: cancelled at seq {checkpoint.seq}")


@command("run")
def run_(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="A registered agent's name (see --agents).")],
    session_id: Annotated[
        str | None, typer.Option("--session", metavar="ID", help="The session id (default: AGENT-<random>).")
    ] = None,
    input_json: Annotated[
        str | None,
        typer.Option("--input", metavar="JSON", help="The run's input (JSON; else a string), as `session.input`."),
    ] = None,
    agents: AgentsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Start (or continue) a session of AGENT here. Exit 0 done, 75 waiting for input, 1 failed."""
    _import_agents(agents)
    fn = find_agent(agent)
    session_id = session_id or f"{agent}-{uuid.uuid4().hex[:8]}"
    value = parse_value(input_json) if input_json is not None else None
    _report(run(fn, session_id, store=open_repo(ctx), input=value), as_json)


@command()
def worker(
    ctx: typer.Context,
    agents: AgentsOption = None,
    concurrency: Annotated[int, typer.Option("-n", "--concurrency", min=1, help="Sessions run at once.")] = 1,
    poll: Annotated[float, typer.Option("--poll", min=0.05, metavar="SECONDS", help="Pause between scans.")] = 1.0,
    until: Annotated[
        float | None, typer.Option("--for", min=0, metavar="SECONDS", help="Stop after this long.")
    ] = None,
    lease_ttl: Annotated[
        float,
        typer.Option(
            "--lease-ttl",
            min=1.0,
            metavar="SECONDS",
            help="Lease length: how soon other workers take over a session of a worker that hangs or loses its host.",
        ),
    ] = DEFAULT_TTL,
    as_json: Annotated[bool, typer.Option("--json", help="Print the runs as JSON when the worker stops.")] = False,
) -> None:
    """Resume answered and crashed sessions with their registered agents until SIGTERM (or --for)."""
    _import_agents(agents)
    results = serve(
        open_repo(ctx), concurrency=concurrency, poll_interval=poll, until=until, lease_ttl=lease_ttl, log=note
    )
    if as_json:
        return print_json([_result_json(r) for r in results])
    typer.echo(f"{len(results)} run(s): " + ", ".join(f"{r.session} {r.status}" for r in results))


def _report(result: RunResult, as_json: bool = False) -> None:
    if as_json:
        print_json(_result_json(result))
        if result.status in (Status.WAITING, Status.FAILED, Status.CANCELLED):
            raise typer.Exit(WAITING_EXIT_CODE if result.status == Status.WAITING else 1)
        return
    if result.replayed_steps:
        note(
            f"resumed: {result.replayed_steps} step(s) replayed from checkpoints, "
            f"{result.tokens_saved:,.0f} tokens"
            + (f" (cost {result.cost_saved:g})" if result.cost_saved else "")
            + " not spent again"
        )
    if result.status == Status.WAITING:
        names = ", ".join(result.waiting_for)
        typer.echo(f"session {result.session} is waiting for {names} (seq {result.seq})")
        note(f"answer with `safepoint send {result.session} {result.waiting_for[0]} VALUE`, then resume it")
        raise typer.Exit(WAITING_EXIT_CODE)
    if result.status in (Status.FAILED, Status.CANCELLED):
        fail(result.error or f"session {result.session} failed")
    if result.interrupted:
        typer.echo(f"session {result.session}: stopped by a shutdown at seq {result.seq}, all saved")
        return
    typer.echo(f"session {result.session}: {result.status} at seq {result.seq}")


@command()
def demo(
    ctx: typer.Context,
    session: Annotated[
        str | None, typer.Option("--session", metavar="ID", help="Run or resume this session here, once.")
    ] = None,
    crash_at: Annotated[
        int | None,
        typer.Option(
            "--crash-at", min=1, max=len(demo_agent.step_names()), metavar="N", help="Kill the process in step N."
        ),
    ] = None,
    crash_rate: Annotated[
        float, typer.Option("--crash-rate", min=0, max=1, metavar="P", help="Kill it at each crash point with P.")
    ] = 0.0,
    fail_rate: Annotated[
        float, typer.Option("--fail-rate", min=0, max=1, metavar="P", help="Model calls failing with 503/429.")
    ] = 0.2,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Approve the outline without asking.")] = False,
    outbox: Annotated[
        Path | None, typer.Option("--outbox", metavar="FILE", help="The outbox SQLite file (new sessions).")
    ] = None,
    delay: Annotated[
        float, typer.Option("--delay", min=0, metavar="SECONDS", help="Offline model latency; 0: no waits at all.")
    ] = demo_agent.DEFAULT_DELAY,
    seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="Seed the injected failures.")] = None,
) -> None:
    """Run a research-and-write agent over a small corpus. Without --session: crash, resume, approve, summary."""
    repo = open_repo(ctx)
    options = demo_agent.Options(
        crash_at=crash_at, crash_rate=crash_rate, fail_rate=fail_rate, delay=delay, seed=seed, outbox=outbox
    )
    if session is None:
        code = demo_agent.tour(repo, ctx.obj.store, options)
    else:
        code = demo_agent.run_session(repo, ctx.obj.store, session, options, auto_approve=auto_approve)
    if code:
        raise typer.Exit(code)
