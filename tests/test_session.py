"""Sessions as an agent uses them: create, mutate, save, resume, and the errors on the way."""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, Field

import safepoint as sp
from safepoint import AgentState, Status
from safepoint.errors import (
    CheckpointNotFound,
    ConflictError,
    InvalidSessionId,
    NotSerializable,
    SafepointError,
    SessionBusy,
    SessionClosed,
)


@pytest.fixture
def repo() -> sp.Repository:
    return sp.open("memory://")


def test_the_tour(repo: sp.Repository) -> None:
    with repo.session("report-42", agent="researcher", tags=["demo"]) as s:
        assert s.is_new and s.seq == 0 and s.head is None
        assert isinstance(s.state, AgentState)
        s.state.mission.goal = "Write a market report"
        s.state.mission.done.append("collected sources")
        s.state.data["sources"] = ["https://a.example", "https://b.example"]
        first = s.save(step="collect")
        s.state.mission.done.append("outlined")
        s.state.data["outline"] = {"sections": ["intro", "market", "risks"]}
        second = s.save(step="outline")
        s.state.mission.remaining = []
        third = s.save(step="write", status=Status.COMPLETED)
    assert [c.seq for c in (first, second, third)] == [1, 2, 3]
    assert [c.parent for c in (first, second, third)] == [None, 1, 2]
    assert [c.step for c in (first, second, third)] == ["collect", "outline", "write"]
    assert third.status is Status.COMPLETED and first.status is Status.RUNNING
    assert all(c.session == "report-42" and c.checksum for c in (first, second, third))
    expected = s.state.model_dump(mode="json")

    with repo.session("report-42") as again:
        assert not again.is_new
        assert again.seq == 3 and again.head is not None and again.head.seq == 3
        assert again.head.step == "write"
        assert again.state.model_dump(mode="json") == expected
        assert again.state.mission.done == ["collected sources", "outlined"]
        assert again.save(step="revise").seq == 4

    info = repo.info("report-42")
    assert info.agent == "researcher" and info.tags == ["demo"] and info.seq == 4
    assert [c.step for c in repo.history("report-42")] == ["collect", "outline", "write", "revise"]


def test_every_status_round_trips(repo: sp.Repository) -> None:
    s = repo.session("statuses")
    for status in Status:
        checkpoint = s.save(step=f"to-{status}", status=status)
        assert checkpoint.status is status
        assert repo.info("statuses").status is status
    assert s.save(status="waiting").status is Status.WAITING
    assert [c.status for c in s.history()] == [*Status, Status.WAITING]


def test_unknown_status_is_refused_before_writing(repo: sp.Repository) -> None:
    s = repo.session("bad-status")
    with pytest.raises(ValueError):
        s.save(status="sleeping")
    assert repo.store.list("commits/") == []
    assert s.save().seq == 1


def test_meta_is_recorded(repo: sp.Repository) -> None:
    s = repo.session("meta")
    checkpoint = s.save(step="call", tokens=1234, model="m-1")
    assert checkpoint.meta["tokens"] == 1234 and checkpoint.meta["model"] == "m-1"
    assert repo.load("meta").meta["tokens"] == 1234


def test_plain_dict_state(repo: sp.Repository) -> None:
    s = repo.session("plain", schema=dict)
    assert s.is_new and s.state == {}
    s.state["messages"] = [{"role": "user", "content": "hi \U0001f600"}]
    s.state["n"] = 1.5
    s.save(step="first")
    s.state["messages"].append({"role": "assistant", "content": "hello"})
    del s.state["n"]
    s.save(step="second")
    s.close()
    again = repo.session("plain", schema=dict)
    assert again.state == {
        "messages": [{"role": "user", "content": "hi \U0001f600"}, {"role": "assistant", "content": "hello"}]
    }
    assert repo.load("plain", 1).state == {"messages": [{"role": "user", "content": "hi \U0001f600"}], "n": 1.5}


def test_saved_checkpoints_do_not_follow_later_mutation(repo: sp.Repository) -> None:
    s = repo.session("isolated", schema=dict)
    s.state["items"] = [1, 2]
    s.save()
    s.state["items"].append(3)
    s.save()
    s.state["items"].clear()
    s.state["items"].append("changed after saving")
    assert repo.load("isolated", 1).state == {"items": [1, 2]}
    assert repo.load("isolated", 2).state == {"items": [1, 2, 3]}
    s.close()
    again = repo.session("isolated", schema=dict)
    again.state["items"].append(4)
    assert repo.load("isolated").state == {"items": [1, 2, 3]}


class Step(BaseModel):
    name: str
    tokens: int = 0


class ResearchState(BaseModel):
    SCHEMA_VERSION: ClassVar[int] = 1
    topic: str = ""
    steps: list[Step] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)


def test_user_pydantic_schema(repo: sp.Repository) -> None:
    s = repo.session("research", schema=ResearchState)
    assert isinstance(s.state, ResearchState) and s.state.topic == ""
    s.state.topic = "batteries"
    s.state.steps.append(Step(name="search", tokens=120))
    s.state.scores["relevance"] = 0.75
    checkpoint = s.save(step="search")
    assert checkpoint.meta["schema"].endswith("ResearchState")
    s.close()
    again = repo.session("research", schema=ResearchState)
    assert isinstance(again.state, ResearchState)
    assert again.state == s.state
    assert again.state.steps[0] == Step(name="search", tokens=120)
    assert repo.load("research").state == {
        "topic": "batteries",
        "steps": [{"name": "search", "tokens": 120}],
        "scores": {"relevance": 0.75},
    }


def test_resume_an_older_checkpoint_with_at(repo: sp.Repository) -> None:
    s = repo.session("branchy", schema=dict)
    for i in range(1, 6):
        s.state["step"] = i
        s.state.setdefault("log", []).append(f"step {i}")
        s.save(step=f"s{i}")
    s.close()
    older = repo.session("branchy", schema=dict, at=2)
    assert not older.is_new
    assert older.state == {"step": 2, "log": ["step 1", "step 2"]}
    assert older.seq == 2 and older.head is not None and older.head.seq == 2
    older.state["log"].append("retry from 2")
    checkpoint = older.save(step="retry")
    assert checkpoint.seq == 6 and checkpoint.parent == 2
    assert repo.load("branchy").state == {"step": 2, "log": ["step 1", "step 2", "retry from 2"]}
    assert repo.load("branchy", 5).state["step"] == 5
    follow = older.save(step="after-retry")
    assert follow.seq == 7 and follow.parent == 6
    assert [c.parent for c in repo.history("branchy")] == [None, 1, 2, 3, 4, 2, 6]


def test_at_a_missing_checkpoint_is_refused(repo: sp.Repository) -> None:
    repo.session("short", schema=dict).save()
    with pytest.raises(CheckpointNotFound, match="short"):
        repo.session("short", schema=dict, at=9)
    with pytest.raises(CheckpointNotFound):
        repo.session("brand-new", schema=dict, at=1)


# --- two writers --------------------------------------------------------------------------------------


def test_second_writer_of_the_same_seq_gets_a_conflict(repo: sp.Repository) -> None:
    # The lease is off for both writers, so the race for seq 1 itself is exercised.
    first = repo.session("contested", schema=dict, lease=False)
    second = repo.session("contested", schema=dict, lease=False)
    first.state["who"] = "first"
    second.state["who"] = "second"
    won = first.save(step="first")
    with pytest.raises(ConflictError, match="contested") as caught:
        second.save(step="second")
    assert isinstance(caught.value, SafepointError)
    assert [c.seq for c in repo.history("contested")] == [1]
    head = repo.load("contested")
    assert head.seq == 1 and head.state == {"who": "first"} and head.checksum == won.checksum
    with pytest.raises(ConflictError):
        second.save(step="retry without reopening")
    assert [c.seq for c in repo.history("contested")] == [1]
    reopened = repo.session("contested", schema=dict)
    assert reopened.state == {"who": "first"} and reopened.save().seq == 2


def test_conflict_between_writers_resumed_from_the_same_head(repo: sp.Repository) -> None:
    with repo.session("resumed", schema=dict) as s:
        s.state["n"] = 0
        s.save()
    # The lease is off for both writers, so the race for seq 2 itself is exercised.
    a = repo.session("resumed", schema=dict, lease=False)
    b = repo.session("resumed", schema=dict, lease=False)
    a.state["n"] = "a"
    b.state["n"] = "b"
    assert a.save().seq == 2
    with pytest.raises(ConflictError):
        b.save()
    assert [(c.seq, c.parent) for c in repo.history("resumed")] == [(1, None), (2, 1)]
    assert repo.load("resumed").state == {"n": "a"}
    a.state["n"] = "a2"
    assert a.save().seq == 3
    assert repo.load("resumed", 2).state == {"n": "a"}


# --- the lease: one open writer per session ----------------------------------------------------------------


def test_a_second_open_of_an_open_session_is_busy(repo: sp.Repository) -> None:
    holder = repo.session("leased", schema=dict)
    holder.state["n"] = 1
    holder.save()
    with pytest.raises(SessionBusy, match="'leased'") as caught:
        repo.session("leased", schema=dict)
    assert isinstance(caught.value, SafepointError)
    with pytest.raises(SessionBusy, match="'leased'"):
        repo.session("leased", schema=dict, at=1)
    holder.state["n"] = 2
    assert holder.save().seq == 2  # the refused opens took nothing from the holder
    assert [c.seq for c in repo.history("leased")] == [1, 2]
    holder.close()


def test_a_closed_session_reopens_and_resumes_its_head(repo: sp.Repository) -> None:
    s = repo.session("handover", schema=dict)
    s.state["n"] = 1
    s.save(step="one")
    s.close()
    with repo.session("handover", schema=dict) as again:
        assert not again.is_new and again.seq == 1 and again.head is not None and again.head.step == "one"
        assert again.state == {"n": 1}
        again.state["n"] = 2
        assert again.save(step="two").seq == 2
    with repo.session("handover", schema=dict) as third:  # free again once the `with` block is left
        assert third.seq == 2 and third.head is not None and third.head.step == "two"
        assert third.state == {"n": 2}
        assert third.save(step="three").seq == 3
    assert [c.seq for c in repo.history("handover")] == [1, 2, 3]


@pytest.mark.parametrize("lease", [True, False])
def test_a_closed_session_refuses_to_save_and_writes_nothing(repo: sp.Repository, lease: bool) -> None:
    s = repo.session("closed", schema=dict, lease=lease)
    s.state["n"] = 1
    s.save(step="one")
    s.close()
    s.state["n"] = 2
    with pytest.raises(SessionClosed, match=r"session 'closed' is closed .* store\.session\('closed'\)"):
        s.save(step="after close")
    ran = []
    with pytest.raises(SessionClosed):
        s.step("a step", lambda: ran.append(1))  # refused before it runs: its result could not be recorded
    with pytest.raises(SessionClosed):
        s.effect("send-mail", lambda: ran.append(2))
    assert ran == []
    assert [c.step for c in repo.history("closed")] == ["one"]
    assert s.head is not None and s.head.seq == 1  # still readable
    with repo.session("closed", schema=dict) as again:  # the lease was given back
        assert again.state == {"n": 1} and again.save().seq == 2


def test_a_closed_session_lets_go_of_its_copies_of_the_state() -> None:
    repo = sp.open("memory://")
    s = repo.session("big", schema=dict)
    s.state["blob"] = "x" * 100_000
    s.save()
    s.state["blob"] += "y"
    s.save()  # a delta: the writer now keeps the stored state to diff the next save against
    retained = s._previous
    assert retained is not None and retained.base["state"] == s.state
    s.close()
    assert s._previous is None and s._chain._written == {}


def test_wait_takes_the_lease_when_the_holder_closes(repo: sp.Repository) -> None:
    holder = repo.session("queued", schema=dict)
    holder.state["n"] = 1
    holder.save()
    releaser = threading.Timer(0.3, holder.close)
    started = time.monotonic()
    releaser.start()
    try:
        with repo.session("queued", schema=dict, wait=2) as waiter:
            waited = time.monotonic() - started
            assert 0.25 <= waited < 2, f"waited {waited:.2f} s for a holder that closed after 0.3 s"
            assert waiter.seq == 1 and waiter.state == {"n": 1}
            assert waiter.save().seq == 2
    finally:
        releaser.join()
    assert [c.seq for c in repo.history("queued")] == [1, 2]


# --- session ids ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id", ["", ".", "..", "a/b", "a\\b", "a\x00b", "a\nb", "a\tb", "x" * 201, "\u2028", 42, None]
)
def test_invalid_session_ids_are_refused_and_write_nothing(repo: sp.Repository, bad_id: Any) -> None:
    with pytest.raises(InvalidSessionId) as caught:
        repo.session(bad_id)
    assert isinstance(caught.value, SafepointError) and isinstance(caught.value, ValueError)
    assert repo.store.list("") == []
    with pytest.raises(InvalidSessionId):
        repo.session(bad_id, schema=dict)
    assert repo.store.list("") == []


def test_invalid_session_id_message_says_what_is_allowed(repo: sp.Repository) -> None:
    with pytest.raises(InvalidSessionId, match="separator") as caught:
        repo.session("a/b")
    assert "report-42" in str(caught.value)
    with pytest.raises(InvalidSessionId, match="201"):
        repo.session("y" * 201)


@pytest.mark.parametrize(
    "good_id",
    [
        "\U0001f600" * 200,
        "x" * 200,
        "report 42",
        "r\u00e9sum\u00e9-\u65e5\u672c\u8a9e",
        "-leading-dash",
        "~tilde",
        "dots.in.the.middle.",
        "UPPER",
    ],
)
def test_unicode_and_long_ids_work(repo: sp.Repository, good_id: str) -> None:
    s = repo.session(good_id, schema=dict)
    s.state["id"] = good_id
    assert s.save().session == good_id
    s.close()
    again = repo.session(good_id, schema=dict)
    assert not again.is_new and again.state == {"id": good_id}
    assert [info.id for info in repo.sessions()] == [good_id]
    assert repo.info(good_id).seq == 1 and repo.exists(good_id)


def test_ids_that_look_alike_stay_separate(repo: sp.Repository) -> None:
    ids = ["a b", "a_b", "a-b", "A b", "upper", "UPPER", "\U0001f600", "\U0001f601", "x" * 127, "x" * 128]
    for session_id in ids:
        s = repo.session(session_id, schema=dict)
        s.state["id"] = session_id
        s.save()
    assert sorted(info.id for info in repo.sessions()) == sorted(ids)
    for session_id in ids:
        assert repo.load(session_id).state == {"id": session_id}


# --- values without a JSON form ---------------------------------------------------------------------------


def test_not_serializable_in_a_dict_state_names_the_path(repo: sp.Repository) -> None:
    s = repo.session("callbacks", schema=dict)
    s.state["data"] = {"tools": [1, 2, 3]}
    s.save(step="good")
    s.state["data"]["tools"].append({"callback": lambda: 0})
    with pytest.raises(NotSerializable) as caught:
        s.save(step="bad")
    assert caught.value.path == "state.data.tools[3].callback"
    assert "data.tools[3].callback" in str(caught.value)
    assert [c.seq for c in repo.history("callbacks")] == [1]
    assert repo.load("callbacks").state == {"data": {"tools": [1, 2, 3]}}
    s.state["data"]["tools"][3] = {"callback": "noop"}
    assert s.save(step="fixed").seq == 2
    assert repo.load("callbacks").state == {"data": {"tools": [1, 2, 3, {"callback": "noop"}]}}


def test_not_serializable_on_the_first_save_names_the_path(repo: sp.Repository) -> None:
    s = repo.session("first-bad", schema=dict)
    s.state["data"] = {"tools": [1, 2, 3, {"callback": lambda: 0}]}
    with pytest.raises(NotSerializable) as caught:
        s.save()
    assert caught.value.path == "state.data.tools[3].callback"
    assert repo.store.list("commits/") == []


def test_not_serializable_in_agent_state_names_the_path(repo: sp.Repository) -> None:
    s = repo.session("agent-callbacks")
    s.state.data["tools"] = [1, 2, 3]
    first = s.save(step="good")
    s.state.data["tools"].append({"callback": lambda: 0})
    with pytest.raises(NotSerializable) as caught:
        s.save(step="bad")
    assert "data.tools[3].callback" in caught.value.path
    head = repo.load("agent-callbacks")
    assert head.seq == 1 and head.checksum == first.checksum
    assert head.state["data"] == {"tools": [1, 2, 3]}


def test_not_serializable_keys_and_numbers_in_a_later_save(repo: sp.Repository) -> None:
    s = repo.session("numbers", schema=dict)
    s.state["counts"] = {"a": 1}
    s.save()
    s.state["counts"]["big"] = 2**70
    with pytest.raises(NotSerializable) as caught:
        s.save()
    assert "counts.big" in caught.value.path
    del s.state["counts"]["big"]
    s.state["counts"][7] = "seven"
    with pytest.raises(NotSerializable) as caught:
        s.save()
    assert "counts[7]" in caught.value.path
    del s.state["counts"][7]
    s.state["counts"][(1, 2)] = "pair"
    with pytest.raises(NotSerializable) as caught:
        s.save()
    assert "counts[(1, 2)]" in caught.value.path
    assert repo.load("numbers").state == {"counts": {"a": 1}} and repo.info("numbers").seq == 1
    del s.state["counts"][(1, 2)]
    assert s.save().seq == 2
    s.close()
    assert repo.session("numbers", schema=dict).state == {"counts": {"a": 1}}
