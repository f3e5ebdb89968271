"""The SIGKILL crash torture, shared by the tests of every durable store (test_crash.py, test_store_*.py).

A child process saves in a loop and reports each acknowledged seq through a pipe; the parent kills it with
SIGKILL at a random moment. After every kill the store must pass fsck, and its head must be at least the last
seq the child was told was durable, with exactly the state that was saved at that seq.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from collections.abc import Callable

import safepoint as sp

SESSION = "torture"


def _saver(url: str, session_id: str, ack_fd: int) -> None:
    """Child body: resume, then save forever; write each acknowledged seq to the pipe."""
    store = sp.open(url)
    with store.session(session_id, schema=dict) as s:
        if s.is_new:
            s.state.update(n=0, log=[], blob="")
        os.write(ack_fd, f"resumed {s.seq}\n".encode())
        while True:
            s.state["n"] += 1
            s.state["log"].append(f"entry {s.state['n']} " + "x" * random.randint(10, 400))
            if s.state["n"] % 7 == 0:
                s.state["blob"] = os.urandom(random.randint(1, 30_000)).hex()  # sometimes a big change
            checkpoint = s.save(step=f"step {s.state['n']}")
            os.write(ack_fd, f"{checkpoint.seq}\n".encode())


def _read_until(read_fd: int, chunks: list[bytes], done: Callable[[bytes], bool], give_up: float) -> None:
    """Collect the child's reports until `done(everything so far)` or the child is gone or `give_up` passes."""
    while not done(b"".join(chunks)) and time.monotonic() < give_up:
        ready, _, _ = select.select([read_fd], [], [], 1.0)
        if ready:
            data = os.read(read_fd, 65536)
            if not data:
                return  # the child died on its own; the checks after the kill will say why
            chunks.append(data)


def _acks(reported: bytes) -> int:
    return sum(1 for line in reported.split(b"\n")[:-1] if line and not line.startswith(b"resumed"))


def run_and_kill(url: str, session_id: str, rng: random.Random, max_delay: float, *, acks_first: int = 0) -> list[int]:
    """Fork a saver and SIGKILL it; return the seqs it acknowledged.

    With `acks_first` 0 the kill lands up to `max_delay` seconds after the fork: while the child opens the store,
    resumes, or saves. Otherwise the delay starts once the child has acknowledged `acks_first` saves since it
    resumed, so that kills land in the middle of the save loop however slowly a loaded machine runs the child
    (a store client that takes long to start, or a busy CPU, would otherwise get killed before its first save).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _saver(url, session_id, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    chunks: list[bytes] = []
    if acks_first:
        _read_until(read_fd, chunks, lambda got: b"resumed" in got and _acks(got) >= acks_first, time.monotonic() + 60)
    deadline = time.monotonic() + rng.uniform(0.0, max_delay)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            chunks.append(os.read(read_fd, 65536))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    while data := os.read(read_fd, 65536):
        chunks.append(data)
    os.close(read_fd)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    lines = b"".join(chunks).decode().split("\n")[:-1]  # a torn last line was never acknowledged
    return [int(line) for line in lines if line and not line.startswith("resumed")]


def torture(
    fresh_url: Callable[[int], str],
    *,
    kills: int,
    kills_per_store: int = 20,
    max_delay: float = 0.06,
    seed: int = 2026,
    check: Callable[[str], None] | None = None,
    after_resume: bool = False,
) -> int:
    """Kill a saver `kills` times; a new store (`fresh_url(kill)`) every `kills_per_store` kills keeps fsck
    cheap. With `after_resume` no kill lands before the child has resumed (for slow-starting store
    clients). `check(url)` adds backend checks after each kill. Returns how many saves were acknowledged."""
    rng = random.Random(seed)
    acknowledged_total = 0
    url = ""
    last_acked = 0
    for kill in range(kills):
        if kill % kills_per_store == 0:
            url = fresh_url(kill)
            last_acked = 0
        # One kill in five lands anywhere from the fork on (opening, resuming); the rest after 1-3 saves.
        early = not after_resume and rng.random() < 0.2
        acked = run_and_kill(url, SESSION, rng, max_delay, acks_first=0 if early else rng.randint(1, 3))
        if acked:
            assert acked == list(range(acked[0], acked[-1] + 1))
            # Never a seq acknowledged twice. The first may lie beyond the head the parent saw: on a server, the
            # statement a killed client had sent can still commit after the parent looked.
            assert acked[0] > last_acked, f"kill {kill}: seq {acked[0]} acknowledged again (head was {last_acked})"
            last_acked = acked[-1]
            acknowledged_total += len(acked)
        store = sp.open(url)
        try:
            report = store.fsck()
            assert report.ok, f"after kill {kill}: {report.problems}"
            if not store.exists(SESSION) or store.info(SESSION).seq == 0:
                assert last_acked == 0, f"kill {kill}: acknowledged seq {last_acked} but no checkpoint"
                continue
            head = store.load(SESSION)
            assert head.seq >= last_acked, f"kill {kill}: head {head.seq} < acknowledged {last_acked}"
            assert head.state["n"] == head.seq  # the state is exactly the one saved at that seq
            assert len(head.state["log"]) == head.seq
            if check is not None:
                check(url)
            last_acked = head.seq
        finally:
            store.store.close()  # no pool threads or sockets carried into the next fork
    return acknowledged_total
