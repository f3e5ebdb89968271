#!/usr/bin/env python3
"""Many workers, one PostgreSQL store: 1, 2, 4 and 8 `safepoint worker` processes sharing 200 sessions x 20 steps.

    python benchmarks/workers.py                  # the full run (1-2 minutes on 2 cores)
    python benchmarks/workers.py --quick          # a smoke test: 1, 2 and 4 workers, 40 sessions x 5 steps
    python benchmarks/workers.py --out part.md    # also write the "## Many workers, one PostgreSQL store" section

For each worker count the run gets a fresh schema (dropped afterwards), starts that many processes of
`python -m safepoint --store postgresql://...?schema=... worker --agents workers -n 1` (standing in for as many
machines), waits until each has connected, then lets the queue go: every session is created and saved once
while its lease is held, and all are released together. Each session runs agent `bench-steps`: 20 durable
steps, each a `time.sleep` of `--step-ms` (default 5 ms) standing in for a model call, returning ~250 bytes
recorded in the checkpoint; a checkpoint is committed after every step and once more on completion.

Also measured: what one worker pass (`Worker.candidates()`) costs on a store holding 2,000 completed sessions
and 20 left running, reading only the sessions listed open (`safepoint.open_sessions`) against reading every
session (as a pass does on a store whose index is not complete yet).

Measured: checkpoints committed by the workers per second, from the release of the queue to the last
completion checkpoint (its `created_at`). Checked from the store and from a record kept outside safepoint:
every session completed with each step committed once, on a linear chain whose lease tokens never go back;
and no session held by two workers at once, from the (session, worker pid, start, end) interval each agent
run records in a table of the run's schema when it stops. A takeover is a session whose step commits carry
more than one lease token (it changed hands mid-run); with healthy workers there should be none.

The worker processes import this file as their agents module (`--agents workers`, run in this directory).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import describe_machine, md_table, parser, write_out  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.core import open_sessions  # noqa: E402

AGENT = "bench-steps"
#: Where an agent run records its interval: the libpq URL of the server, and the run's schema.
SINK_URL_VAR, SINK_SCHEMA_VAR = "SAFEPOINT_BENCH_SINK_URL", "SAFEPOINT_BENCH_SINK_SCHEMA"
MODEL_TEXT = "The quarterly figures show steady growth in the northern region, driven by repeat customers. " * 3


# --- the agent the worker processes run ------------------------------------------------------------------
class _Sink:
    """One connection per worker process (psycopg connections are thread-safe), opened on first use."""

    connection: Any = None
    lock = threading.Lock()

    @classmethod
    def record_hold(cls, session_id: str, started: float, ended: float, finished: bool) -> None:
        import psycopg

        with cls.lock:
            if cls.connection is None:
                cls.connection = psycopg.connect(os.environ[SINK_URL_VAR], autocommit=True)
        table = f'"{os.environ[SINK_SCHEMA_VAR]}".holds'
        cls.connection.execute(
            f"INSERT INTO {table} (session, pid, started, ended, finished) VALUES (%s, %s, %s, %s, %s)",
            (session_id, os.getpid(), started, ended, finished),
        )


def call_model(call: int, seconds: float) -> dict[str, Any]:
    """Stands in for a model call: waits `seconds` and answers ~250 bytes."""
    time.sleep(seconds)
    return {"call": call, "text": MODEL_TEXT[:240], "tokens": 180}


@sp.agent(AGENT, schema=dict)
def bench_steps(s: sp.Session) -> int:
    """A benchmark session: `steps` model calls, each a durable step (checkpointed when it returns)."""
    started, finished = time.time(), False
    try:
        for call in range(s.state["steps"]):
            s.step(f"call-{call:02d}", call_model, call, s.state["step_seconds"])
        finished = True
        return s.state["steps"]
    finally:
        _Sink.record_hold(s.id, started, time.time(), finished)


# --- one run: N workers over one queue -------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    workers: tuple[int, ...]
    sessions: int
    steps: int
    step_ms: float
    concurrency: int
    lease_ttl: float
    poll: float


FULL = dict(workers=(1, 2, 4, 8), sessions=200, steps=20, closed=2000)
QUICK = dict(workers=(1, 2, 4), sessions=40, steps=5, closed=200)
#: Sessions left running (candidates) in the scan measurement, and the passes timed each way.
SCAN_OPEN, SCAN_PASSES = 20, 5


@dataclass
class Outcome:
    workers: int
    wall: float = 0.0
    checkpoints: int = 0
    completed: int = 0
    overlapping: int = 0
    takeovers: int = 0
    reported_runs: int = 0
    per_worker: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load: float = 0.0

    @property
    def rate(self) -> float:
        return self.checkpoints / self.wall if self.wall else 0.0


def with_query(url: str, **options: str) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in options.items())


class Run:
    """A fresh schema with its worker processes; `close()` stops them and drops the schema."""

    def __init__(self, server: str, workers: int, settings: Settings, logs: Path) -> None:
        import psycopg

        self.server, self.settings, self.logs = server, settings, logs
        self.schema = f"bench_workers_{uuid.uuid4().hex[:10]}"
        self.url = with_query(server, schema=self.schema)
        self.repo = sp.open(self.url)  # creates the schema
        self.raw = psycopg.connect(server, autocommit=True)
        self.raw.execute(
            f'CREATE TABLE "{self.schema}".holds (session text NOT NULL, pid integer NOT NULL, '
            "started float8 NOT NULL, ended float8 NOT NULL, finished boolean NOT NULL)"
        )
        self.processes: list[subprocess.Popen] = []
        env = {**os.environ, SINK_URL_VAR: server, SINK_SCHEMA_VAR: self.schema}
        for n in range(workers):
            # application_name marks the worker's connections: it is up once the server lists one of them.
            url = with_query(self.url, application_name=f"{self.schema}_w{n}")
            command = [sys.executable, "-m", "safepoint", "--store", url, "worker", "--agents", "workers"]
            command += ["-n", str(settings.concurrency), "--poll", str(settings.poll)]
            command += ["--lease-ttl", str(settings.lease_ttl)]
            with open(logs / f"w{n}.out", "w") as out, open(logs / f"w{n}.err", "w") as err:
                self.processes.append(subprocess.Popen(command, cwd=HERE, env=env, stdout=out, stderr=err))

    def wait_for_workers(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            (up,) = self.raw.execute(
                "SELECT count(DISTINCT application_name) FROM pg_stat_activity WHERE application_name LIKE %s",
                (f"{self.schema}_w%",),
            ).fetchone()
            if up == len(self.processes):
                return
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {up} of {len(self.processes)} workers connected within {timeout:.0f} s")
            time.sleep(0.1)

    def check_alive(self) -> None:
        for n, process in enumerate(self.processes):
            if process.poll() is not None:
                err = (self.logs / f"w{n}.err").read_text()[-1500:]
                raise RuntimeError(f"worker {n} exited with {process.returncode}: {err}")

    def queue(self) -> tuple[list[str], float]:
        """Create every session, each held until all are saved; return the ids and when the queue was let go."""
        ids = [f"s{n:04d}" for n in range(self.settings.sessions)]
        with ExitStack() as held:
            for session_id in ids:
                s = held.enter_context(self.repo.session(session_id, agent=AGENT, schema=dict))
                s.state.update(steps=self.settings.steps, step_seconds=self.settings.step_ms / 1000)
                s.save(step="queued")
            released = time.time()
        return ids, released

    def finished_sessions(self) -> int:
        query = f'SELECT count(DISTINCT session) FROM "{self.schema}".holds WHERE finished'
        return self.raw.execute(query).fetchone()[0]

    def holds(self) -> list[tuple[str, int, float, float]]:
        return self.raw.execute(f'SELECT session, pid, started, ended FROM "{self.schema}".holds').fetchall()

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return [process.wait(timeout=60) for process in self.processes]

    def reported_runs(self) -> int:
        """Runs the workers say they did (`N run(s): ...`): with no run reported twice, one per session."""
        total = 0
        for n in range(len(self.processes)):
            line = (self.logs / f"w{n}.out").read_text().strip()
            total += int(line.split()[0]) if line[:1].isdigit() else 0
        return total

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.repo.store.close()
        self.raw.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.raw.close()


def sessions_held_by_two_at_once(holds: list[tuple[str, int, float, float]]) -> int:
    """Sessions with agent runs of two different worker processes overlapping in time."""
    by_session: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for session_id, pid, started, ended in holds:
        by_session[session_id].append((pid, started, ended))
    return sum(
        any(
            a_pid != b_pid and a_start < b_end and b_start < a_end
            for i, (a_pid, a_start, a_end) in enumerate(runs)
            for b_pid, b_start, b_end in runs[i + 1 :]
        )
        for runs in by_session.values()
    )


def verify_chains(repo: sp.Repository, ids: list[str], steps: int, outcome: Outcome) -> float:
    """Check every session's chain; count checkpoints and takeovers; return the last completion time."""
    expected = ["queued", *(f"call-{n:02d}" for n in range(steps)), "completed"]
    last = 0.0
    for session_id in ids:
        history = repo.history(session_id)
        if history[-1].status == sp.Status.COMPLETED:
            outcome.completed += 1
        last = max(last, history[-1].created_at.timestamp())
        outcome.checkpoints += len(history) - 1  # all but the queued one were committed by workers
        if [c.step for c in history] != expected:
            outcome.problems.append(f"{session_id}: steps committed {[c.step for c in history]}")
        if [(c.seq, c.parent) for c in history] != [(n, n - 1 or None) for n in range(1, len(history) + 1)]:
            outcome.problems.append(f"{session_id}: the chain is not linear")
        tokens = [c.lease for c in history]
        if tokens != sorted(tokens):
            outcome.problems.append(f"{session_id}: lease tokens went back: {tokens}")
        if len(set(tokens[1:])) > 1:
            outcome.takeovers += 1
    return last


def bench(server: str, workers: int, settings: Settings, logs: Path) -> Outcome:
    outcome = Outcome(workers)
    run = Run(server, workers, settings, logs)
    try:
        run.wait_for_workers()
        ids, released = run.queue()
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{workers} worker(s)", total=len(ids))
            deadline = time.monotonic() + 60 + settings.sessions * settings.steps * 0.05
            while (done := run.finished_sessions()) < len(ids):
                progress.update(task, completed=done)
                run.check_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} worker(s) finished only {done} of {len(ids)} sessions in time")
                time.sleep(0.25)
        # An agent run records its end just before the runner commits the completion checkpoint.
        while not all(run.repo.info(sid).head.status == sp.Status.COMPLETED for sid in ids):
            run.check_alive()
            time.sleep(0.1)
        outcome.load = os.getloadavg()[0]
        outcome.exit_codes = run.stop()
        outcome.reported_runs = run.reported_runs()
        outcome.wall = verify_chains(run.repo, ids, settings.steps, outcome) - released
        holds = run.holds()
        outcome.overlapping = sessions_held_by_two_at_once(holds)
        per_pid: dict[int, set[str]] = defaultdict(set)
        for session_id, pid, _started, _ended in holds:
            per_pid[pid].add(session_id)
        outcome.per_worker = sorted(len(sessions) for sessions in per_pid.values())
        if outcome.exit_codes != [0] * workers:
            outcome.problems.append(f"worker exit codes {outcome.exit_codes} (expected 0 after SIGTERM)")
        if outcome.reported_runs != len(ids):
            outcome.problems.append(f"the workers reported {outcome.reported_runs} runs for {len(ids)} sessions")
    finally:
        run.close()
    return outcome


@dataclass
class ScanCost:
    closed: int
    listed_ms: float = 0.0
    every_ms: float = 0.0
    found: tuple[int, int] = (0, 0)  # candidates found by each way


def scan_cost(server: str, closed: int) -> ScanCost:
    """Median time of a worker pass reading the open sessions only, and reading every session."""
    import psycopg

    schema = f"bench_scan_{uuid.uuid4().hex[:10]}"
    repo = sp.open(with_query(server, schema=schema))
    cost = ScanCost(closed)
    try:
        with Progress(transient=True) as progress:
            task = progress.add_task("sessions for the scan", total=closed + SCAN_OPEN)
            for n in range(closed):
                with repo.session(f"done-{n:05d}", agent=AGENT) as s:
                    s.save(step="end", status=sp.Status.COMPLETED)
                progress.advance(task)
            for n in range(SCAN_OPEN):
                with repo.session(f"left-{n:02d}", agent=AGENT, lease=False) as s:
                    s.save(step="queued")
                progress.advance(task)
        worker = sp.Worker(repo, agents={AGENT: bench_steps})
        worker.candidates()  # completes the index
        timings: dict[str, list[float]] = {"listed": [], "every": []}
        found = {}
        for _ in range(SCAN_PASSES):
            for way in timings:
                if way == "every":
                    repo.store.delete(open_sessions.COMPLETE)  # the pass then reads every session (and re-marks)
                started = time.perf_counter()
                found[way] = len(worker.candidates())
                timings[way].append(time.perf_counter() - started)
        cost.listed_ms = statistics.median(timings["listed"]) * 1e3
        cost.every_ms = statistics.median(timings["every"]) * 1e3
        cost.found = (found["listed"], found["every"])
    finally:
        repo.store.close()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return cost


# --- report ------------------------------------------------------------------------------------------------
def postgres_facts(server: str) -> tuple[list[str], Path | None]:
    """One line about the server, and its data directory when it is on this machine and readable."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = [conn.execute(f"SHOW {name}").fetchone()[0] for name in ("fsync", "synchronous_commit")]
        try:
            data = Path(conn.execute("SHOW data_directory").fetchone()[0])
        except psycopg.Error:
            data = None
    line = f"PostgreSQL {version} at {server.split('@')[-1]}, fsync={settings[0]}, synchronous_commit={settings[1]}"
    return [line], data if data is not None and data.exists() else None


def markdown(
    outcomes: list[Outcome], scan: ScanCost, header: list[str], settings: Settings, command: str, elapsed: float
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    base = outcomes[0].rate if outcomes and outcomes[0].workers == 1 else None
    lines = ["## Many workers, one PostgreSQL store", ""]
    lines += [f"{when}: `{command}`, {elapsed:.0f} s in all.", ""]
    lines += [f"- {line}" for line in header] + [""]
    lines += [
        f"Workload: {settings.sessions} sessions x {settings.steps} steps; each step sleeps {settings.step_ms:g} ms "
        "(standing in for a model call) and returns ~250 bytes, then the step is checkpointed; one more "
        f"checkpoint when a session completes. Each worker process runs `-n {settings.concurrency}` session(s) "
        f"at a time, `--poll {settings.poll:g}`, `--lease-ttl {settings.lease_ttl:g}`. "
        "**This machine has 2 cores, shared with other jobs** (load average in the table). Each step spends "
        f"its {settings.step_ms:g} ms asleep, the rest as CPU (the worker's Python, PostgreSQL) and the commit's WAL flush; the CPU "
        "part is what 2 cores run out of as workers are added, so these rates say little about larger machines.",
        "",
    ]
    rows = []
    for o in outcomes:
        speedup = f"{o.rate / base:.2f}x" if base else "-"
        spread = f"{o.per_worker[0]}-{o.per_worker[-1]}" if o.per_worker else "-"
        rows.append(
            [str(o.workers), f"{o.wall:.1f} s", f"{o.checkpoints:,}", f"{o.rate:,.0f}", speedup]
            + [f"{o.completed}/{settings.sessions}", str(o.overlapping), str(o.takeovers), spread, f"{o.load:.2f}"]
        )
    lines += md_table(
        ["worker processes", "wall time", "checkpoints", "checkpoints/s", "vs 1 worker", "sessions completed"]
        + ["held by two workers at once", "takeovers", "sessions per worker (min-max)", "load (1 min) at end"],
        rows,
    )
    problems = [f"{o.workers} worker(s): {p}" for o in outcomes for p in o.problems]
    lines += [""]
    lines += [
        'Wall time runs from the release of the queue to the last completion checkpoint. "Held by two workers '
        'at once" counts sessions whose agent runs (start and end recorded by each worker process) overlap '
        "between two processes; it must be 0. A takeover is a session whose step commits carry more than one "
        "lease token. Every chain was also checked: linear (seq n on seq n-1), each step committed once, lease "
        "tokens never going back, and the runs the workers report add up to one per session.",
        "",
        "Checks: " + ("all passed." if not problems else "**FAILED**: " + "; ".join(problems[:10])),
        "",
        f"One worker pass on a store of {scan.closed:,} completed sessions and {SCAN_OPEN} left running (median "
        f"of {SCAN_PASSES}): **{scan.listed_ms:,.1f} ms** reading the sessions listed open, against "
        f"{scan.every_ms:,.1f} ms reading every session (as on a store whose index is not complete yet); "
        f"candidates found: {scan.found[0]} and {scan.found[1]}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    options = parser(
        __doc__,
        quick="1, 2 and 4 workers, 40 sessions x 5 steps",
        postgres="the server (a fresh schema is created for each run and dropped afterwards)",
        out="also write the Markdown section to FILE",
    )
    options.add_argument("--workers", help="worker process counts, comma-separated (default 1,2,4,8)")
    options.add_argument("--sessions", type=int, help="sessions per run (default 200)")
    options.add_argument("--steps", type=int, help="steps per session (default 20)")
    options.add_argument("--step-ms", type=float, default=5.0, help="the sleep of each step (default 5 ms)")
    options.add_argument("-n", "--concurrency", type=int, default=1, help="sessions each worker runs at once")
    options.add_argument("--lease-ttl", type=float, default=30.0, help="the workers' --lease-ttl")
    options.add_argument("--poll", type=float, default=0.5, help="the workers' --poll")
    args = options.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    settings = Settings(
        workers=tuple(int(n) for n in args.workers.split(",")) if args.workers else sizes["workers"],
        sessions=args.sessions or sizes["sessions"],
        steps=args.steps or sizes["steps"],
        step_ms=args.step_ms,
        concurrency=args.concurrency,
        lease_ttl=args.lease_ttl,
        poll=args.poll,
    )
    command = "python benchmarks/workers.py" + ("".join(f" {a}" for a in sys.argv[1:]) if argv is None else "")
    server_lines, data_directory = postgres_facts(args.postgres)
    logs = Path(tempfile.mkdtemp(prefix="safepoint-workers-"))
    header = describe_machine(data_directory or logs) + server_lines
    for line in header:
        print(line)
    started = time.perf_counter()
    outcomes = []
    for workers in settings.workers:
        outcome = bench(args.postgres, workers, settings, logs)
        outcomes.append(outcome)
        print(
            f"{workers} worker(s): {outcome.checkpoints:,} checkpoints in {outcome.wall:.1f} s = "
            f"{outcome.rate:,.0f}/s; {outcome.completed} completed; held by two at once: {outcome.overlapping}; "
            f"takeovers: {outcome.takeovers}" + (f"; PROBLEMS: {outcome.problems[:3]}" if outcome.problems else "")
        )
    scan = scan_cost(args.postgres, sizes["closed"])
    print(
        f"one pass over {scan.closed:,} completed + {SCAN_OPEN} running sessions: {scan.listed_ms:.1f} ms listed open, "
        f"{scan.every_ms:.1f} ms reading every session"
    )
    section = markdown(outcomes, scan, header, settings, command, time.perf_counter() - started)
    print()
    print(section)
    write_out(section, args.out)
    scan_wrong = scan.found != (SCAN_OPEN, SCAN_OPEN)
    return 1 if scan_wrong or any(o.problems or o.overlapping for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
