"""gc in a loop beside live agents and a worker: nothing any checkpoint references is ever deleted.

Four agents per store upload artifacts (from a small pool of contents, so uploads keep reusing objects an
earlier gc found unreferenced), wait a little before saving (the window in which gc used to take an uploaded
artifact), and save; half their sessions are left running for a worker to finish. gc runs in a loop with
`keep_last=1`, so every pass has garbage to delete. The directory, SQLite and PostgreSQL stores run at once for
SAFEPOINT_GC_SOAK_SECONDS (default 20; CI runs 60). Afterwards every checkpoint loads with all its artifacts and
fsck is clean.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

from services import fresh_name, postgres_url, with_query

import safepoint as sp
from safepoint.core import gc_guard

CI = os.environ.get("CI", "").lower() == "true"
SECONDS = float(os.environ.get("SAFEPOINT_GC_SOAK_SECONDS") or (60 if CI else 20))
AGENTS = 4
POOL = [random.Random(n).randbytes(2_000 + 3_000 * n) for n in range(6)]


@sp.agent("finisher", schema=dict)
def finish(s: sp.Session) -> str:
    """The worker's agent: one more artifact and checkpoint, then done."""
    s.put_artifact("final", random.choice(POOL))
    s.state["finished"] = True
    s.save(step="finish")
    return "done"


def agent_loop(url: str, who: int, deadline: float, errors: list[BaseException], saved: list[int]) -> None:
    repo = sp.open(url)
    rng = random.Random(who)
    n = 0
    completed: list[str] = []
    try:
        while time.monotonic() < deadline:
            n += 1
            with repo.session(f"a{who}-{n}", agent="finisher", schema=dict) as s:
                s.runtime["agent"] = {"name": "finisher", "entrypoint": f"{__name__}:finish"}
                for step in range(2):
                    # From the pool (reusing what gc may find unreferenced), or new (garbage once replaced).
                    content = rng.choice(POOL) if rng.random() < 0.5 else rng.randbytes(rng.randint(100, 9_000))
                    s.put_artifact(f"file{step % 2}", content)
                    # Uploaded, not saved yet; sometimes for longer than a gc takes to settle and delete.
                    time.sleep(rng.uniform(0, 0.3) if rng.random() < 0.85 else 2.5)
                    s.state["step"] = step
                    s.save(step=f"step{step}")
                    saved.append(1)
                if rng.random() < 0.5:
                    s.save(step="completed", status=sp.Status.COMPLETED)
                    completed.append(s.id)
                # else: left running, as by a crash: the worker finishes it
            if len(completed) > 1:
                try:
                    repo.delete(completed[0])  # what only it referenced is garbage now
                    completed.pop(0)
                except sp.SessionBusy:
                    pass  # a worker pass is looking at it (it holds the lease for that): delete it next time
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)
    finally:
        repo.close()


def gc_loop(url: str, deadline: float, errors: list[BaseException], reports: list) -> None:
    repo = sp.open(url)
    try:
        while time.monotonic() < deadline:
            reports.append(repo.gc(keep_last=1, settle=2 * gc_guard.WINDOW))
    except BaseException as exc:  # noqa: BLE001
        errors.append(exc)
    finally:
        repo.close()


def check_everything_loads(url: str) -> int:
    repo = sp.open(url)
    checked = 0
    for session_id in repo.session_ids():
        for checkpoint in repo.history(session_id):
            state = repo.load(session_id, checkpoint.seq).state
            for item in state.get("artifacts", []):
                with repo.open_artifact(item["ref"]) as handle:
                    assert "sha256:" + hashlib.sha256(handle.read()).hexdigest() == item["ref"]
                checked += 1
    report = repo.fsck()
    assert report.ok, [(p.key, p.reason, p.broken) for p in report.problems]
    repo.close()
    return checked


def test_gc_in_a_loop_beside_agents_and_a_worker(tmp_path: Path) -> None:
    urls = {
        "directory": str(tmp_path / "store"),
        "sqlite": f"sqlite:///{tmp_path / 'store.db'}",
        "postgres": with_query(postgres_url(), schema=fresh_name("gc")),
    }
    deadline = time.monotonic() + SECONDS
    errors: list[BaseException] = []
    saved: dict[str, list[int]] = {name: [] for name in urls}
    reports: dict[str, list] = {name: [] for name in urls}
    workers = {
        name: sp.Worker(sp.open(url), agents={"finisher": finish}, poll_interval=0.2) for name, url in urls.items()
    }
    threads = [
        threading.Thread(target=gc_loop, args=(url, deadline, errors, reports[name])) for name, url in urls.items()
    ]
    threads += [
        threading.Thread(target=agent_loop, args=(url, who, deadline, errors, saved[name]))
        for name, url in urls.items()
        for who in range(AGENTS)
    ]
    threads += [threading.Thread(target=w.run, kwargs={"handle_signals": False}) for w in workers.values()]
    for thread in threads:
        thread.start()
    time.sleep(SECONDS)
    for thread in threads[: len(urls) * (AGENTS + 1)]:
        thread.join()
    for worker in workers.values():
        worker.run_once()  # whatever the agents left running in the last moments
        worker.stop()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for name, url in urls.items():
        runs = reports[name]
        assert len(runs) >= 2, f"{name}: gc ran {len(runs)} times"
        assert sum(r.deleted_objects for r in runs) > 0, f"{name}: gc never had anything to delete"
        assert len(saved[name]) > 20, f"{name}: the agents saved only {len(saved[name])} checkpoints"
        assert workers[name].results, f"{name}: the worker finished no session"
        assert all(r.status == sp.Status.COMPLETED for r in workers[name].results)
        checked = check_everything_loads(url)
        assert checked > 0
        print(  # the figures the closing note quotes (pytest -s)
            f"{name}: {SECONDS:.0f} s, gc ran {len(runs)} times and deleted "
            f"{sum(r.deleted_objects for r in runs)} objects; the agents saved {len(saved[name])} checkpoints; "
            f"the worker finished {len(workers[name].results)} sessions; every checkpoint loads, {checked} "
            "artifact references read back and verified; fsck clean"
        )
        workers[name].repo.close()
