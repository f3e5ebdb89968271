"""Writers without leases racing on one session: a commit reported as a conflict never landed, and one reported
as committed always did. Part of `StoreTests`, so every backend runs it.

Eight writers (processes when the store can be opened by URL from another process, threads otherwise) save the
same session for `SAFEPOINT_RACE_SECONDS` (default 4; the figure in issue 19 is 20). Each save replaces 40 KB of
the state, so about every other checkpoint is a keyframe and, on stores that pack records, every keyframe packs
the cycle before it: the floor moves all the time. A writer that loses reopens the session at the new head and
tries again. Every attempt is named by its step, so the history says which attempts landed.

    SAFEPOINT_RACE_SECONDS=20 pytest tests/test_store_files.py -k false_conflicts
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import secrets
import threading
import time
from typing import Any

from ..errors import ConflictError
from ..repository import Repository
from ..stores import open_store
from ..stores.base import Store

WRITERS = 8
SESSION = "commit-race"
BLOB_HEX = 20_000  # 40 KB of new text a save: deltas outgrow the budget fast, so keyframes (and packs) are frequent


def race_seconds() -> float:
    return float(os.environ.get("SAFEPOINT_RACE_SECONDS", "4"))


def write_until(repo: Repository, writer: int, seconds: float) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Save the race session until `seconds` pass: (step, seq) of the saves that returned, and of those that
    raised ConflictError."""
    landed: list[tuple[str, int]] = []
    refused: list[tuple[str, int]] = []
    deadline = time.monotonic() + seconds
    session = repo.session(SESSION, schema=dict, lease=False)
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        step = f"writer{writer}-{attempt}"
        session.state["blob"] = secrets.token_hex(BLOB_HEX)
        session.state["step"] = step
        seq = session.seq + 1
        try:
            landed.append((step, session.save(step=step).seq))
        except ConflictError:
            refused.append((step, seq))
            session = repo.session(SESSION, schema=dict, lease=False)
    return landed, refused


def _write_process(url: str, writer: int, seconds: float, results: Any) -> None:
    """Child process body: open the store by URL, race, report (or report the error, so the parent fails with it)."""
    try:
        with Repository(open_store(url)) as repo:
            results.put((writer, write_until(repo, writer, seconds)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put((writer, f"{type(exc).__name__}: {exc}"))


def race(store: Store, url: str | None, seconds: float) -> dict[int, Any]:
    """Run the writers (processes on `url`, else threads on `store`); writer -> its outcome."""
    repo = Repository(store)
    repo.session(SESSION, schema=dict, lease=False).close()  # the session exists before the race
    if url is None:
        found: queue.Queue = queue.Queue()

        def body(writer: int) -> None:
            try:
                found.put((writer, write_until(repo, writer, seconds)))
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                found.put((writer, f"{type(exc).__name__}: {exc}"))

        threads = [threading.Thread(target=body, args=(w,)) for w in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return dict(found.get_nowait() for _ in threads)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_write_process, args=(url, w, seconds, results)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    try:
        return dict(results.get(timeout=seconds + 120) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()


class CommitRaceTests:
    """Mixed into `StoreTests`: needs its `store` and `store_url` fixtures."""

    def test_writers_without_leases_get_no_false_conflicts(self, store: Store, store_url: str | None) -> None:
        outcomes = race(store, store_url, race_seconds())
        errors = {writer: outcome for writer, outcome in outcomes.items() if isinstance(outcome, str)}
        assert errors == {}
        landed = [item for outcome in outcomes.values() for item in outcome[0]]
        refused = [item for outcome in outcomes.values() for item in outcome[1]]
        history = Repository(store).history(SESSION)
        at = {checkpoint.step: checkpoint.seq for checkpoint in history}
        false_conflicts = [(step, seq) for step, seq in refused if step in at]
        lost = [(step, seq) for step, seq in landed if at.get(step) != seq]
        print(
            f"\n{type(store).__name__}: {len(landed)} commits, {len(refused)} conflicts, "
            f"{len(false_conflicts)} false conflicts, {len(lost)} lost, {len(history)} checkpoints"
        )
        assert false_conflicts == []  # told "conflict", although the checkpoint is in the history
        assert lost == []  # told "committed", although the history holds another checkpoint there
        assert [c.seq for c in history] == list(range(1, len(history) + 1))
        assert len(history) == len(landed) > 0  # every checkpoint is one somebody was told had landed
