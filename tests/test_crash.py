"""Crash torture: a child saves in a loop and reports each acknowledged seq; we SIGKILL it at random moments.

After every kill the store must pass fsck, and its head must be at least the last seq the child was told
was durable, with exactly the state that was saved at that seq.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time

import pytest

import safepoint as sp

KILLS = 200
KILLS_PER_STORE = 20  # a fresh store every so often keeps fsck after each kill cheap


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


def _run_and_kill(url: str, session_id: str, rng: random.Random) -> list[int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _saver(url, session_id, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    deadline = time.monotonic() + rng.uniform(0.0, 0.06)
    chunks = []
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


@pytest.mark.parametrize("backend", ["files", "sqlite"])
def test_sigkill_at_random_moments_loses_nothing_acknowledged(backend, tmp_path):
    rng = random.Random(2026)
    acknowledged_total = 0
    url = ""
    last_acked = 0
    for kill in range(KILLS):
        if kill % KILLS_PER_STORE == 0:
            where = tmp_path / f"store{kill}"
            url = str(where) if backend == "files" else f"sqlite:///{where}.db"
            last_acked = 0
        acked = _run_and_kill(url, "torture", rng)
        if acked:
            assert acked == list(range(acked[0], acked[-1] + 1))
            assert acked[0] == last_acked + 1
            last_acked = acked[-1]
            acknowledged_total += len(acked)
        store = sp.open(url)
        report = store.fsck()
        assert report.ok, f"after kill {kill}: {report.problems}"
        if not store.exists("torture") or store.info("torture").seq == 0:
            assert last_acked == 0, f"kill {kill}: acknowledged seq {last_acked} but no checkpoint"
            continue
        head = store.load("torture")
        assert head.seq >= last_acked, f"kill {kill}: head {head.seq} < acknowledged {last_acked}"
        assert head.state["n"] == head.seq  # the state is exactly the one saved at that seq
        assert len(head.state["log"]) == head.seq
        if backend == "files":
            assert not list(where.rglob(".tmp-*")), "fsck must sweep temp files of dead writers"
        last_acked = head.seq
    assert acknowledged_total > KILLS, "the child should get several saves in between kills"
