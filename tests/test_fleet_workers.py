"""Many workers, one PostgreSQL store: `safepoint worker` processes (standing in for machines) share the sessions.

Every test starts real `python -m safepoint worker` processes against a schema of its own (dropped afterwards).
The agents' step function writes each run of a step to a table of that schema (`step_runs`: session, step,
worker pid, start and end by the server's clock) before and after its work, so "each step ran once" and "no
session was advanced by two workers at once" are checked against a record kept outside safepoint, one that
survives a SIGKILL. The checkpoint chains are checked too: linear, and their lease tokens never go backwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from services import fresh_name, postgres_url, require_module, with_query

import safepoint as sp
from safepoint.runtime.leases import LeaseInfo, read_lease

psycopg = require_module("psycopg", "postgres")

# Imported by every worker process (`--agents fleet_agents`). Announces the worker in `workers` once it is up.
AGENTS = textwrap.dedent(
    """
    import os, time
    import psycopg
    import safepoint as sp

    SCHEMA = os.environ["FLEET_SCHEMA"]
    STEPS = int(os.environ["FLEET_STEPS"])
    STEP_SECONDS = float(os.environ["FLEET_STEP_SECONDS"])
    SINK = psycopg.connect(os.environ["FLEET_SINK"], autocommit=True)  # thread-safe: shared by the runs
    SINK.execute(f'INSERT INTO "{SCHEMA}".workers (pid) VALUES (%s)', (os.getpid(),))

    def work(session_id, step, seconds):
        run = SINK.execute(
            f'INSERT INTO "{SCHEMA}".step_runs (session, step, pid, started) '
            "VALUES (%s, %s, %s, clock_timestamp()) RETURNING id",
            (session_id, step, os.getpid()),
        ).fetchone()[0]
        time.sleep(seconds)
        SINK.execute(f'UPDATE "{SCHEMA}".step_runs SET ended = clock_timestamp() WHERE id = %s', (run,))
        return step

    @sp.agent("fleet")
    def fleet(s):
        seconds = s.state.data.get("step_seconds", STEP_SECONDS)
        return [s.step(f"step{i}", work, s.id, i, seconds) for i in range(STEPS)]
    """
)


@dataclass(frozen=True)
class StepRun:
    session: str
    step: int
    pid: int
    started: float  # epoch seconds, server clock
    ended: float | None  # None: the worker died (or froze) inside the step


@dataclass
class Fleet:
    """A fresh store schema, the agents module, and the worker processes started on it."""

    url: str
    schema: str
    directory: Path
    repo: sp.Repository
    sink: psycopg.Connection
    workers: list[subprocess.Popen] = field(default_factory=list)
    steps: int = 5
    step_seconds: float = 0.0

    def start(self, count: int, *, steps: int, step_seconds: float, concurrency: int, lease_ttl: float) -> None:
        """Start `count` workers and wait until each has imported the agents (so all see the same queue)."""
        self.steps, self.step_seconds = steps, step_seconds
        env = {
            **os.environ,
            "FLEET_SCHEMA": self.schema,
            "FLEET_SINK": postgres_url(),
            "FLEET_STEPS": str(steps),
            "FLEET_STEP_SECONDS": str(step_seconds),
        }
        command = [sys.executable, "-m", "safepoint", "--store", self.url, "worker", "--agents", "fleet_agents"]
        command += ["-n", str(concurrency), "--poll", "0.1", "--lease-ttl", str(lease_ttl)]
        for n in range(len(self.workers), len(self.workers) + count):
            output = self.directory / f"worker{n}"
            with open(f"{output}.out", "w") as out, open(f"{output}.err", "w") as err:
                self.workers.append(subprocess.Popen(command, cwd=self.directory, env=env, stdout=out, stderr=err))
        self.wait_until(lambda: self.query("SELECT count(*) FROM {s}.workers")[0][0] == len(self.workers), 60)

    def queue(self, count: int, *, step_seconds: dict[str, float] | None = None) -> list[str]:
        """Create `count` sessions of agent `fleet`: running, saved once, then nobody holding them.

        Each is held until all are saved, and job000 is let go last, so every worker's first scan that finds
        job000 finds the whole queue. `step_seconds` sets the length of a session's steps.
        """
        ids = [f"job{n:03d}" for n in range(count)]
        with ExitStack() as held:
            for session_id in ids:
                s = held.enter_context(self.repo.session(session_id, agent="fleet"))
                s.state.data.update(step_seconds=(step_seconds or {}).get(session_id, self.step_seconds))
                s.save(step="queued")
        return ids

    def query(self, text: str, params: tuple = ()) -> list[tuple]:
        cursor = self.sink.execute(text.replace("{s}", f'"{self.schema}"'), params)
        return cursor.fetchall() if cursor.description else []

    def runs(self) -> list[StepRun]:
        rows = self.query(
            "SELECT session, step, pid, extract(epoch FROM started)::float8, extract(epoch FROM ended)::float8 "
            "FROM {s}.step_runs ORDER BY started"
        )
        return [StepRun(*row) for row in rows]

    def now(self) -> float:
        """The server's clock, the one the step runs are stamped with."""
        return self.query("SELECT extract(epoch FROM clock_timestamp())::float8")[0][0]

    def completed(self, ids: list[str]) -> bool:
        return all(self.repo.info(sid).head.status == sp.Status.COMPLETED for sid in ids)

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [w for w in self.workers if w.poll() not in (None, -signal.SIGKILL)]
            assert not dead, f"a worker exited with {dead[0].returncode}: {self.stderr(self.workers.index(dead[0]))}"
            assert time.monotonic() < deadline, f"timed out after {timeout} s"
            time.sleep(0.1)

    def stop(self) -> list[int]:
        """SIGTERM every live worker and return the exit codes of all of them."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        return [worker.wait(timeout=30) for worker in self.workers]

    def reported(self, n: int) -> list[str]:
        """The sessions worker `n` says it ran to completion (its `N run(s): id status, ...` line)."""
        line = (self.directory / f"worker{n}.out").read_text().strip()
        runs = line.partition(": ")[2]
        return [item.split()[0] for item in runs.split(", ") if item.endswith(" completed")]

    def stderr(self, n: int) -> str:
        return (self.directory / f"worker{n}.err").read_text()[-2000:]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    schema = fresh_name("fleet")
    url = with_query(postgres_url(), schema=schema)
    repo = sp.open(url)  # creates the schema
    (tmp_path / "fleet_agents.py").write_text(AGENTS)
    with psycopg.connect(postgres_url(), autocommit=True) as sink:
        fleet = Fleet(url, schema, tmp_path, repo, sink)
        fleet.query("CREATE TABLE {s}.workers (pid integer PRIMARY KEY)")
        fleet.query(
            "CREATE TABLE {s}.step_runs (id bigserial PRIMARY KEY, session text NOT NULL, step integer NOT NULL, "
            "pid integer NOT NULL, started timestamptz NOT NULL, ended timestamptz)"
        )
        try:
            yield fleet
        finally:
            for worker in fleet.workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGCONT)  # a frozen worker must be able to die
                    worker.kill()
                    worker.wait()
            repo.store.close()
            fleet.query("DROP SCHEMA {s} CASCADE")


# --- what must hold after any run -------------------------------------------------------------------------
def sessions_advanced_by_two_workers_at_once(runs: list[StepRun], cut_off: float) -> list[str]:
    """Sessions with step runs of two different workers overlapping in time; an unfinished run ends at `cut_off`."""
    by_session: dict[str, list[StepRun]] = defaultdict(list)
    for run in runs:
        by_session[run.session].append(run)
    overlapping = set()
    for session_id, session_runs in by_session.items():
        for i, a in enumerate(session_runs):
            for b in session_runs[i + 1 :]:
                a_end, b_end = a.ended or cut_off, b.ended or cut_off
                if a.pid != b.pid and a.started < b_end and b.started < a_end:
                    overlapping.add(session_id)
    return sorted(overlapping)


def assert_completed_with_linear_fenced_chains(fleet: Fleet, ids: list[str]) -> dict[str, list[sp.Checkpoint]]:
    """Every session completed, each step committed once, seqs 1..n each on its parent, tokens never going back."""
    step_names = [f"step{i}" for i in range(fleet.steps)]
    histories = {}
    for session_id in ids:
        head = fleet.repo.load(session_id)
        assert head.status == sp.Status.COMPLETED, session_id
        assert head.runtime["result"] == list(range(fleet.steps))
        history = fleet.repo.history(session_id)
        assert [c.step for c in history] == ["queued", *step_names, "completed"], session_id
        assert [(c.seq, c.parent) for c in history] == [(n, n - 1 or None) for n in range(1, len(history) + 1)]
        tokens = [c.lease for c in history]
        assert None not in tokens and tokens == sorted(tokens), f"{session_id}: lease tokens {tokens}"
        histories[session_id] = history
    return histories


# --- the tests ---------------------------------------------------------------------------------------------
def test_workers_share_the_sessions_and_run_every_step_once_never_two_at_a_time(fleet: Fleet) -> None:
    fleet.start(3, steps=5, step_seconds=0.02, concurrency=1, lease_ttl=30)
    # The worker that takes the long job000 comes back to a queue the others have finished meanwhile.
    ids = fleet.queue(30, step_seconds={"job000": 0.3})
    fleet.wait_until(lambda: fleet.completed(ids), 60)
    assert fleet.stop() == [0, 0, 0]

    assert_completed_with_linear_fenced_chains(fleet, ids)
    runs = fleet.runs()
    assert all(run.ended is not None for run in runs)
    ran = defaultdict(list)
    for run in runs:
        ran[run.session, run.step].append(run.pid)
    assert sorted(ran) == [(sid, step) for sid in ids for step in range(5)]
    assert {key: pids for key, pids in ran.items() if len(pids) != 1} == {}  # each step ran exactly once
    assert sessions_advanced_by_two_workers_at_once(runs, fleet.now()) == []

    # The work was shared, and nothing changed hands: one worker ran all the steps of each session.
    pids = [worker.pid for worker in fleet.workers]
    assert {run.pid for run in runs} == set(pids)
    runners: dict[str, set[int]] = defaultdict(set)
    for run in runs:
        runners[run.session].add(run.pid)
    assert {sid: pids for sid, pids in runners.items() if len(pids) != 1} == {}
    # Each worker reports exactly the sessions it ran: none that another worker finished while it was busy.
    for n, pid in enumerate(pids):
        assert sorted(fleet.reported(n)) == sorted(sid for sid in ids if runners[sid] == {pid}), fleet.stderr(n)


@pytest.mark.parametrize(
    ("failure", "lease_ttl"),
    [
        ("killed", 30.0),  # SIGKILL: its pid is gone, so workers on its host take over at once
        ("hung", 3.0),  # SIGSTOP, like a machine that stops answering: taken over only when its leases expire
    ],
)
def test_a_lost_workers_sessions_are_taken_over_and_finished(fleet: Fleet, failure: str, lease_ttl: float) -> None:
    fleet.start(3, steps=4, step_seconds=0.25, concurrency=2, lease_ttl=lease_ttl)
    ids = fleet.queue(12)
    fleet.wait_until(lambda: any(run.ended is None for run in fleet.runs()), 30)
    victim = next(run.pid for run in fleet.runs() if run.ended is None)  # a worker in the middle of a step
    worker = next(w for w in fleet.workers if w.pid == victim)
    if failure == "killed":
        worker.kill()
        worker.wait()  # reaped: its pid is gone, as after a real crash
    else:
        worker.send_signal(signal.SIGSTOP)
        time.sleep(0.2)  # a renewal already on the wire lands; then its leases stand still
    lost_at = fleet.now()
    held: dict[str, LeaseInfo] = {}
    for key in fleet.repo.store.list("leases/"):
        lease, _ = read_lease(fleet.repo.store, key.removeprefix("leases/"))
        if lease is not None and lease.owner.split(":")[1] == str(victim) and lease.expires_at > lost_at:
            held[key.removeprefix("leases/")] = lease
    assert held, "the victim held no session when it was lost"

    fleet.wait_until(lambda: fleet.completed(ids), 60)
    if failure == "hung":
        worker.kill()  # the hung machine never comes back
        worker.wait()
    assert sorted(fleet.stop()) == sorted([0, 0, -signal.SIGKILL])

    histories = assert_completed_with_linear_fenced_chains(fleet, ids)
    runs = fleet.runs()
    assert sessions_advanced_by_two_workers_at_once(runs, cut_off=lost_at) == []
    for session_id, lease in held.items():
        # Taken over by another worker with a larger token: after expiry when hung, at once when killed.
        taken_over = [run for run in runs if run.session == session_id and run.started > lost_at]
        assert taken_over and victim not in {run.pid for run in taken_over}, session_id
        first = taken_over[0].started
        assert first > lease.expires_at if failure == "hung" else first < lease.expires_at, (first, lease)
        # Tokens never go back (checked above), so the new holder's last commit proves the fence moved on.
        assert histories[session_id][-1].lease > lease.token
    # Every step ran once, except a step the victim was in when lost: run again (once) by its new holder.
    ran = defaultdict(list)
    for run in runs:
        ran[run.session, run.step].append(run)
    assert sorted(ran) == [(sid, step) for sid in ids for step in range(4)]
    for (session_id, _), step_runs in ran.items():
        if len(step_runs) > 1:
            first, again = step_runs
            assert session_id in held and first.pid == victim and again.pid != victim, step_runs
            victims_runs = [run for run in runs if run.session == session_id and run.pid == victim]
            assert first is victims_runs[-1]  # its last step there: the one it was in when lost
    in_flight = [run for run in runs if run.ended is None]
    assert in_flight and {run.pid for run in in_flight} == {victim} and len(in_flight) <= 2
    assert all(len(ran[run.session, run.step]) == 2 for run in in_flight)
