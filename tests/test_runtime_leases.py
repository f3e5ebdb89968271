"""Leases with fencing: one writer per session, takeover after expiry or death, stale writers rejected."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import safepoint as sp
from safepoint.core.history import session_segment
from safepoint.runtime.leases import _encode as encode_lease
from safepoint.runtime.leases import read_lease

HOLDER = textwrap.dedent(
    """
    import sys, time
    import safepoint as sp
    url, ttl = sys.argv[1], float(sys.argv[2])
    s = sp.open(url).session("shared", schema=dict, lease_ttl=ttl)
    s.state["writer"] = "first"
    s.save(step="first holder")
    print("ready", s._lease.token, flush=True)
    sys.stdin.readline()          # frozen here (SIGSTOP) while the lease expires
    s.state["writer"] = "stale"
    try:
        s.save(step="stale write")
        print("saved", flush=True)
    except sp.LeaseLost as exc:
        print("lost", exc, flush=True)
    """
)


@pytest.fixture(params=["files", "sqlite"])
def url(request, tmp_path):
    return str(tmp_path / "store") if request.param == "files" else f"sqlite:///{tmp_path / 'agents.db'}"


def _token(url: str) -> int:
    lease, _ = read_lease(sp.open(url).store, session_segment("shared"))
    return lease.token


def test_a_frozen_holder_is_taken_over_after_expiry_and_then_commits_nothing(url):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url, "1.0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().split() == ["ready", "1"]
        os.kill(holder.pid, signal.SIGSTOP)  # alive but frozen: no heartbeat
        store = sp.open(url)
        with pytest.raises(sp.SessionBusy, match="shared"):
            store.session("shared", schema=dict)
        time.sleep(1.3)  # past the ttl
        with store.session("shared", schema=dict) as s:
            assert s._lease.token == 2
            assert s.state == {"writer": "first"}
            s.state["writer"] = "second"
            checkpoint = s.save(step="took over")
            assert checkpoint.lease == 2
            os.kill(holder.pid, signal.SIGCONT)
            holder.stdin.write("go\n")
            holder.stdin.flush()
            line = holder.stdout.readline()
        assert line.startswith("lost"), line
        assert "token 1" in line
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.kill()
        holder.wait()
    history = store.history("shared")
    assert [(c.seq, c.step, c.lease) for c in history] == [(1, "first holder", 1), (2, "took over", 2)]
    assert store.load("shared").state == {"writer": "second"}


def test_a_save_whose_lease_record_changed_is_refused_by_the_store_and_commits_nothing(url):
    # The holder's clock says its lease is good, but the record moved on (a takeover it has not seen): the
    # fence the commit carries no longer matches, so the store refuses the commit itself.
    store = sp.open(url)
    with store.session("shared", schema=dict) as s:
        s.state["n"] = 1
        s.save(step="one")
        key = f"leases/{session_segment('shared')}"
        store.store.put(key, encode_lease("elsewhere:1:00000000", 2, time.time() + 30))
        s.state["n"] = 2
        with pytest.raises(sp.LeaseLost, match=r"token 1\).*held by elsewhere:1:00000000 \(token 2\)"):
            s.save(step="two")
        with pytest.raises(sp.LeaseLost):
            s.save(step="two again")  # lost stays lost
    assert [c.step for c in store.history("shared")] == ["one"]
    assert store.load("shared").state == {"n": 1}


def test_a_leased_save_reads_nothing_before_its_commit(url, monkeypatch):
    # The fence rides in the commit: no separate read of the lease (on a server, one round trip less).
    store = sp.open(url)
    with store.session("counted", schema=dict) as s:
        s.save(step="one")
        calls = []

        def spy(name, real):
            def counted(*args):
                calls.append(name)
                return real(*args)

            return counted

        for name in ("get", "exists", "list", "last"):
            monkeypatch.setattr(store.store, name, spy(name, getattr(store.store, name)))
        s.state["n"] = 2
        s.save(step="two")
    # The lease is checked inside the commit itself: in its transaction (SQLite), or under the store lock with
    # the link (directory). So is the packed floor: both stores read it inside the commit, never through `get`.
    assert calls == []


def test_a_dead_holder_on_this_host_is_taken_over_at_once(url):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, "600"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline().split()[0] == b"ready"
    holder.kill()  # SIGKILL: no release, a 10-minute lease left behind
    holder.wait()
    started = time.monotonic()
    with sp.open(url).session("shared", schema=dict) as s:
        assert time.monotonic() - started < 5
        assert s._lease.token == 2
        assert s.save(step="after the crash").seq == 2


def test_tokens_only_grow_and_release_keeps_the_token(url):
    store = sp.open(url)
    for expected in (1, 2, 3):
        with store.session("shared", schema=dict) as s:
            assert s._lease.token == expected
            s.state["n"] = expected
            assert s.save().lease == expected
        assert _token(url) == expected  # released: expires_at 0, token kept for the next holder to exceed


def test_wait_for_a_busy_session(url):
    store = sp.open(url)
    first = store.session("shared", schema=dict)
    with pytest.raises(sp.SessionBusy):
        store.session("shared", schema=dict, wait=0.2)
    import threading

    threading.Timer(0.3, first.close).start()
    with store.session("shared", schema=dict, wait=5) as second:
        assert second._lease.token == 2


def _advance(url: str, worker: int, rounds: int, queue) -> None:
    store = sp.open(url)
    acknowledged = []
    for i in range(rounds):
        with store.session("shared", schema=dict, wait=60, lease_ttl=10) as s:
            s.state.setdefault("entries", []).append(f"{worker}:{i}")
            checkpoint = s.save(step=f"worker {worker} round {i}")
            acknowledged.append((checkpoint.seq, f"{worker}:{i}"))
    queue.put(acknowledged)


def test_eight_processes_racing_to_advance_one_session_never_fork(url):
    processes, rounds = 8, 6
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_advance, args=(url, w, rounds, queue)) for w in range(processes)]
    for process in workers:
        process.start()
    acknowledged = [item for _ in workers for item in queue.get(timeout=120)]
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    store = sp.open(url)
    history = store.history("shared")
    assert [c.seq for c in history] == list(range(1, processes * rounds + 1))
    assert all(c.parent == c.seq - 1 for c in history[1:])  # a single chain: no two children of one parent
    tokens = [c.lease for c in history]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)  # every open took a newer token
    entries = store.load("shared").state["entries"]
    assert len(entries) == processes * rounds
    for seq, entry in acknowledged:  # every acknowledged checkpoint is in the chain, with its entry
        assert store.load("shared", seq).state["entries"][-1] == entry
    assert store.fsck().ok
