"""core.index_check: listings (`Repository.sessions()`, `summaries()`, `safepoint ls`) read the summary index, yet
never show a session as it was before its last commit, nor leave one out, whatever state the index is in."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import safepoint as sp
from safepoint.core import session_index
from safepoint.core.history import Chain, session_segment
from safepoint.errors import Suspended


@pytest.fixture(params=["memory", "file", "sqlite"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> sp.Repository:
    url = {"memory": "memory://", "file": str(tmp_path / "s"), "sqlite": f"sqlite:///{tmp_path / 's.db'}"}
    return sp.open(url[request.param])


def truth(repo: sp.Repository) -> list[dict]:
    """Every session as its own chain describes it (what `sessions()` read before the index)."""
    infos = sorted((repo.info(i) for i in repo.session_ids()), key=lambda i: i.updated_at, reverse=True)
    return [info.to_dict() for info in infos]


def listed(repo: sp.Repository) -> list[dict]:
    return [info.to_dict() for info in repo.sessions()]


def entry_bytes(repo: sp.Repository, session_id: str) -> bytes:
    blob = repo.store.get(session_index.key(session_segment(session_id)))
    assert blob is not None
    return blob


def mixed(repo: sp.Repository) -> None:
    """Sessions of every kind: long (packed records), waiting, failed, cancelled, edited, forked, tagged, new."""
    with repo.session("long", agent="a", tags=["t1", "t2"]) as s:
        for n in range(40):  # past a keyframe cycle: the first records are packed
            s.state.data["n"] = n
            s.save(f"step-{n}")
    with repo.session("asks", agent="b") as s, pytest.raises(Suspended):
        s.save("start")
        s.wait_for("ok", prompt="Go?")
    with repo.session("broke", agent="a", tags=["t2"]) as s:
        s.save("start")
    repo.mark_failed("broke", "it broke")
    with repo.session("stopped", agent="b") as s:
        s.save("start")
    repo.cancel("stopped")
    repo.set_value("long", "data.note", "edited")
    repo.fork("long", at=10, new_id="forked")
    repo.session("empty", agent="a", lease=False).close()  # created, never saved


def test_the_listing_is_what_the_chains_say(repo: sp.Repository) -> None:
    mixed(repo)
    assert len(listed(repo)) == 6
    assert listed(repo) == truth(repo)


def test_an_entry_a_commit_behind_is_not_shown(repo: sp.Repository) -> None:
    with repo.session("s", agent="a") as s:
        s.save("one")
        s.save("two")
        before = entry_bytes(repo, "s")
        s.save("three")
    repo.store.put(session_index.key("s"), before)  # a writer killed between the commit key and its entry
    assert [(i.id, i.seq, i.head and i.head.step) for i in repo.sessions()] == [("s", 3, "three")]
    assert listed(repo) == truth(repo)
    assert session_index.read(repo.store, "s")["head"]["seq"] == 3  # healed, so the next listing pays nothing
    assert [s.info.seq for s in repo.summaries()] == [3]


def test_an_entry_from_before_the_first_checkpoint_is_not_shown(repo: sp.Repository) -> None:
    with repo.session("s", agent="a") as s:
        created = entry_bytes(repo, "s")
        s.save("one")
    repo.store.put(session_index.key("s"), created)
    assert [(i.id, i.seq) for i in repo.sessions()] == [("s", 1)]
    assert listed(repo) == truth(repo)


def test_an_entry_ahead_of_its_chain_is_not_shown(repo: sp.Repository) -> None:
    with repo.session("s", agent="a") as s:
        for step in ("one", "two", "three"):
            s.save(step)
    Chain(repo.store, "s").delete_records([3])  # what an adapter's pruning of the newest checkpoint does
    assert [(i.id, i.seq, i.head and i.head.step) for i in repo.sessions()] == [("s", 2, "two")]
    assert listed(repo) == truth(repo)


def test_a_missing_or_damaged_entry_is_listed_from_its_chain(repo: sp.Repository) -> None:
    mixed(repo)
    repo.store.delete(session_index.key("asks"))
    repo.store.put(session_index.key("broke"), b"SPx torn")
    repo.store.delete(session_index.key("empty"))
    assert listed(repo) == truth(repo)
    assert len(listed(repo)) == 6


def test_a_deleted_session_is_not_listed(repo: sp.Repository) -> None:
    mixed(repo)
    repo.delete("asks")
    assert "asks" not in [i.id for i in repo.sessions()] and listed(repo) == truth(repo)


def test_sessions_are_exact_beside_a_followed_copy(repo: sp.Repository) -> None:
    with repo.session("s", agent="a") as s:
        s.save("one")
    repo.follow_index(max_age=3600)  # a dashboard's copy of the index, re-read only when an hour old
    assert [s.info.seq for s in repo.summaries()] == [1]
    with repo.session("s", agent="a") as s:
        s.save("two")
    assert [s.info.seq for s in repo.summaries()] == [1]  # the page lists from its copy (its choice)
    assert [i.seq for i in repo.sessions()] == [2]  # sessions() (MCP's list, scripts) reads the store


def cli(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safepoint", "--store", store, *args], capture_output=True, text=True, check=True
    )


@pytest.mark.parametrize("kind", ["file", "sqlite"])
def test_safepoint_ls_reads_the_index_checked_and_filters(tmp_path: Path, kind: str) -> None:
    url = str(tmp_path / "s") if kind == "file" else f"sqlite:///{tmp_path / 's.db'}"
    with sp.open(url) as repo:
        mixed(repo)
        repo.send("asks", "ok", True)
        behind = entry_bytes(repo, "asks")
        with repo.session("asks", agent="b") as s:
            s.save("answered")
        repo.store.put(session_index.key("asks"), behind)
        expected = truth(repo)
    assert json.loads(cli(url, "ls", "--json").stdout) == expected
    rows = cli(url, "ls").stdout.splitlines()
    assert rows[0].split() == ["session", "agent", "status", "step", "seq", "updated", "parent"]
    assert [row.split()[0] for row in rows[1:]] == [doc["id"] for doc in expected]
    asks = next(doc for doc in expected if doc["id"] == "asks")
    assert asks["step"] == "answered" and asks["seq"] == 4  # (the answer itself is checkpoint 3)
    assert [row.split()[:5] for row in rows[1:] if row.startswith("asks ")] == [
        ["asks", "b", asks["status"], "answered", "4"]
    ]

    def ids(*args: str) -> list[str]:
        return [doc["id"] for doc in json.loads(cli(url, "ls", "--json", *args).stdout)]

    assert ids("--agent", "a") == [d["id"] for d in expected if d["agent"] == "a"]
    assert sorted(ids("--tag", "t2")) == ["broke", "forked", "long"]
    assert ids("--agent", "a", "--tag", "t2", "--status", "failed") == ["broke"]
    assert sorted(ids("--status", "failed", "--status", "cancelled")) == ["broke", "stopped"]
    assert ids("--agent", "nobody") == []


def a_commit_behind(repo: sp.Repository, session_id: str) -> None:
    """Session `session_id` at seq 3 ("three") with its entry left at seq 2: a writer killed between the two."""
    with repo.session(session_id, agent="a") as s:
        s.save("one")
        s.save("two")
        before = entry_bytes(repo, session_id)
        s.save("three")
    repo.store.put(session_index.key(session_segment(session_id)), before)


def test_a_followed_copy_heals_an_entry_a_commit_behind(repo: sp.Repository) -> None:
    a_commit_behind(repo, "s")
    repo.follow_index(max_age=3600, check_every=0.2)  # never re-read for its age: only the check can heal it
    deadline = time.monotonic() + 10
    while [s.info.seq for s in repo.summaries()] != [3] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(s.info.seq, s.info.head and s.info.head.step) for s in repo.summaries()] == [(3, "three")]
    assert session_index.read(repo.store, "s")["head"]["seq"] == 3  # and the store's entry is rebuilt too


def test_a_followed_copy_checks_each_changed_entry_at_its_next_refresh(repo: sp.Repository) -> None:
    with repo.session("other", agent="a") as s:
        s.save("one")
    mirror = repo.follow_index(max_age=3600, check_every=3600)
    mirror.refresh()  # the first refresh checks every entry; the next full check is an hour away
    a_commit_behind(repo, "s")  # a new entry, and behind its chain
    assert sorted(mirror.refresh()) == ["s"]
    assert {d["id"]: d["head"]["seq"] for d in mirror.docs()} == {"other": 1, "s": 3}
    assert session_index.read(repo.store, "s")["head"]["seq"] == 3


def test_a_healed_entry_is_reported_as_changed(repo: sp.Repository) -> None:
    a_commit_behind(repo, "s")
    mirror = repo.follow_index(max_age=3600, check_every=3600)
    assert session_index.read(repo.store, "s")["head"]["seq"] == 2
    mirror.refresh(check=False)  # what a page's cold read does: the copy as read, the check left to the background
    assert mirror.refresh() == ["s"]  # so the change feed tells the open pages
    assert [d["head"]["seq"] for d in mirror.docs()] == [3]
