"""SafepointSessionService against ADK's `BaseSessionService` contract, as ADK's `InMemorySessionService` behaves.

Each scenario runs on ADK's in-memory service (the reference) and on ours, and the sessions they hand back must
be the same: state with `app:` / `user:` merged in and `temp:` dropped, events in order, the
`num_recent_events` / `after_timestamp` filters, listing order without events, delete, re-delivered events.
Then what only a persistent, shared service must also get right: stale writers refused like ADK's
`DatabaseSessionService` refuses them, a second process seeing everything, and O(change) storage.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from services import require_module

require_module("google.adk", "adk")
pytest_plugins = ["adapter_stores"]  # the store_url fixture: a directory, SQLite, PostgreSQL, Redis
pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")  # Redis without disk

from google.adk.errors._stale_session_error import StaleSessionError  # noqa: E402
from google.adk.errors.already_exists_error import AlreadyExistsError  # noqa: E402
from google.adk.errors.session_not_found_error import SessionNotFoundError  # noqa: E402
from google.adk.events.event import Event  # noqa: E402
from google.adk.events.event_actions import EventActions  # noqa: E402
from google.adk.sessions import InMemorySessionService  # noqa: E402
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.genai import types  # noqa: E402

import safepoint as sp  # noqa: E402
from safepoint.errors import SafepointError  # noqa: E402
from safepoint.integrations.adk import SafepointSessionService  # noqa: E402


def event(author: str, text: str, ts: float, delta: dict | None = None, **more) -> Event:
    content = types.Content(role="user" if author == "user" else "model", parts=[types.Part(text=text)])
    return Event(
        author=author,
        invocation_id="inv",
        content=content,
        timestamp=ts,
        actions=EventActions(state_delta=dict(delta or {})),
        **more,
    )


def view(session) -> tuple | None:
    """What a caller sees of a session (not its times: each service stamps its own)."""
    if session is None:
        return None
    events = [
        (e.id, e.author, e.content.parts[0].text if e.content else None, e.actions.state_delta, e.timestamp)
        for e in session.events
    ]
    return session.id, session.app_name, session.user_id, session.state, events


async def state_scenario(svc) -> list:
    seen = []
    s = await svc.create_session(
        app_name="shop",
        user_id="ann",
        session_id="s1",
        state={"k": 1, "app:currency": "EUR", "user:lang": "de", "temp:t": 0},
    )
    seen.append(view(s))
    e1 = event("user", "hi", 100.0, {"k": 2, "app:currency": "USD", "user:lang": "fr", "temp:scratch": 9}, id="e1")
    await svc.append_event(s, e1)
    seen.append((s.state, e1.actions.state_delta))  # temp stays in the caller's session, not in the event
    seen.append(view(await svc.get_session(app_name="shop", user_id="ann", session_id="s1")))
    other = await svc.create_session(app_name="shop", user_id="bob", session_id="s2")
    seen.append(other.state)  # app state is shared, user state is not
    ann2 = await svc.create_session(app_name="shop", user_id="ann", session_id="s3")
    seen.append(ann2.state)  # user state is shared by the user's sessions
    seen.append(await svc.get_user_state(app_name="shop", user_id="ann"))
    seen.append(await svc.get_user_state(app_name="shop", user_id="nobody"))
    seen.append((await svc.create_session(app_name="other", user_id="ann", session_id="s1")).state)
    try:
        await svc.create_session(app_name="shop", user_id="ann", session_id="s1")
    except AlreadyExistsError:
        seen.append("AlreadyExistsError")
    generated = await svc.create_session(app_name="shop", user_id="ann")
    seen.append(len(generated.id) > 10)
    seen.append(view(await svc.get_session(app_name="shop", user_id="ann", session_id=" s1 ")))
    seen.append(await svc.get_session(app_name="shop", user_id="zed", session_id="s1"))
    seen.append(await svc.get_session(app_name="nope", user_id="ann", session_id="s1"))
    return seen


async def filters_scenario(svc) -> list:
    s = await svc.create_session(app_name="a", user_id="u", session_id="s")
    for i in range(6):
        await svc.append_event(s, event("user" if i % 2 == 0 else "bot", f"m{i}", 10.0 + i, id=f"e{i}"))
    partial = event("bot", "typing", 99.0, partial=True)
    await svc.append_event(s, partial)  # partial events are not stored
    get = lambda **c: svc.get_session(app_name="a", user_id="u", session_id="s", config=GetSessionConfig(**c))  # noqa: E731
    texts = lambda session: [e.content.parts[0].text for e in session.events]  # noqa: E731
    return [
        texts(await get()),
        texts(await get(num_recent_events=2)),
        texts(await get(num_recent_events=0)),
        texts(await get(num_recent_events=50)),
        texts(await get(after_timestamp=13.0)),
        texts(await get(after_timestamp=13.5)),
        texts(await get(num_recent_events=4, after_timestamp=13.0)),
        texts(await get(after_timestamp=100.0)),
    ]


async def listing_scenario(svc) -> list:
    made = []
    for user, sid in [("u2", "b"), ("u1", "c"), ("u1", "a")]:
        made.append(await svc.create_session(app_name="app", user_id=user, session_id=sid, state={"user:n": sid}))
    # Touch them in an order unlike their creation, so the listing order comes from the last update.
    for i, s in enumerate([made[1], made[0], made[2]]):
        await svc.append_event(s, event("user", f"x{i}", 1000.0 + i, id=f"x{i}"))
    everyone = (await svc.list_sessions(app_name="app")).sessions
    one = (await svc.list_sessions(app_name="app", user_id="u1")).sessions
    await svc.delete_session(app_name="app", user_id="u1", session_id="c")
    await svc.delete_session(app_name="app", user_id="u1", session_id="never-existed")
    after = (await svc.list_sessions(app_name="app")).sessions
    return [
        [(s.user_id, s.id, s.state, s.events) for s in everyone],
        [(s.user_id, s.id) for s in one],
        [(s.user_id, s.id) for s in after],
        await svc.get_session(app_name="app", user_id="u1", session_id="c"),
        (await svc.list_sessions(app_name="none")).sessions,
        (await svc.list_sessions(app_name="app", user_id="nobody")).sessions,
        (await svc.create_session(app_name="app", user_id="u1", session_id="c")).id,  # a deleted id can be reused
    ]


async def redelivery_scenario(svc) -> list:
    s = await svc.create_session(app_name="a", user_id="u", session_id="s")
    e = event("user", "once", 5.0, {"n": 1}, id="fixed")
    await svc.append_event(s, e)
    await svc.append_event(s, e)  # the same event again: kept once, delta applied once
    stored = await svc.get_session(app_name="a", user_id="u", session_id="s")
    twin = event("user", "different", 6.0, {"n": 2}, id="fixed")  # same id, other content: a distinct event
    await svc.append_event(stored, twin)
    ghost = s.model_copy(update={"id": "ghost"})
    try:
        await svc.append_event(ghost, event("user", "x", 7.0))
    except SessionNotFoundError:
        missing = "SessionNotFoundError"
    final = await svc.get_session(app_name="a", user_id="u", session_id="s")
    return [[e.content.parts[0].text for e in final.events], final.state, missing]


SCENARIOS = [state_scenario, filters_scenario, listing_scenario, redelivery_scenario]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_answers_as_adk_in_memory_service_does(scenario, store_url):
    expected = asyncio.run(scenario(InMemorySessionService()))
    assert asyncio.run(scenario(SafepointSessionService(store_url))) == expected


def test_a_stale_copy_cannot_append(store_url):
    """Two copies of one session (two workers): the first append wins, the other is refused and saves nothing."""
    svc, other_process = SafepointSessionService(store_url), SafepointSessionService(store_url)
    asyncio.run(svc.create_session(app_name="a", user_id="u", session_id="s"))
    mine = asyncio.run(svc.get_session(app_name="a", user_id="u", session_id="s"))
    theirs = asyncio.run(other_process.get_session(app_name="a", user_id="u", session_id="s"))
    asyncio.run(other_process.append_event(theirs, event("user", "first", 1.0, {"who": "them"})))
    with pytest.raises(StaleSessionError):
        asyncio.run(svc.append_event(mine, event("user", "late", 2.0, {"who": "me"})))
    stored = asyncio.run(svc.get_session(app_name="a", user_id="u", session_id="s"))
    assert [e.content.parts[0].text for e in stored.events] == ["first"] and stored.state == {"who": "them"}
    # Reloaded, the same writer continues, and its copy keeps working for the appends after it.
    asyncio.run(svc.append_event(stored, event("user", "second", 3.0)))
    asyncio.run(svc.append_event(stored, event("user", "third", 4.0)))
    with pytest.raises(StaleSessionError):
        asyncio.run(other_process.append_event(theirs, event("user", "stale again", 5.0)))
    assert len(asyncio.run(svc.get_session(app_name="a", user_id="u", session_id="s")).events) == 3


def test_a_markerless_copy_is_checked_by_its_events(tmp_path):
    """A Session built by hand (no storage marker) is refused only when storage has moved past its events."""
    svc = SafepointSessionService(str(tmp_path / "s"))
    asyncio.run(svc.create_session(app_name="a", user_id="u", session_id="s"))
    loaded = asyncio.run(svc.get_session(app_name="a", user_id="u", session_id="s"))
    asyncio.run(svc.append_event(loaded, event("user", "one", 10.0, id="e1")))
    by_hand = loaded.model_copy(deep=True)  # same events, no storage marker (as a hand-built Session has)
    by_hand._storage_update_marker = None
    asyncio.run(svc.append_event(by_hand, event("user", "two", 11.0, id="e2")))  # up to date: accepted
    old = loaded.model_copy(update={"events": loaded.events[:0], "last_update_time": 0.0})
    old._storage_update_marker = None
    with pytest.raises(StaleSessionError):
        asyncio.run(svc.append_event(old, event("user", "three", 12.0)))


def test_scoped_state_left_pending_by_a_crash_is_applied_on_the_next_read(tmp_path):
    """The event commits first; if the process dies before the user state is updated, the next read applies it."""
    url = str(tmp_path / "s")
    svc = SafepointSessionService(url)
    s = asyncio.run(svc.create_session(app_name="a", user_id="u", session_id="s"))
    svc._settle = lambda source, body: None  # the process "dies" right after the event's commit
    asyncio.run(svc.append_event(s, event("user", "x", 1.0, {"user:plan": "pro", "app:motd": "hi"})))
    fresh = SafepointSessionService(url)  # the next process
    assert asyncio.run(fresh.get_user_state(app_name="a", user_id="u")) == {}
    got = asyncio.run(fresh.get_session(app_name="a", user_id="u", session_id="s"))
    assert got.state == {"user:plan": "pro", "app:motd": "hi"}
    assert asyncio.run(fresh.get_user_state(app_name="a", user_id="u")) == {"plan": "pro"}
    asyncio.run(fresh.get_session(app_name="a", user_id="u", session_id="s"))  # applied once, not again
    assert len(sp.open(url).history("adk-user:a.u")) == 1


def test_names_cannot_collide(tmp_path):
    svc = SafepointSessionService(str(tmp_path / "s"))
    asyncio.run(svc.create_session(app_name="a.b", user_id="c", session_id="d", state={"x": 1}))
    asyncio.run(svc.create_session(app_name="a", user_id="b.c", session_id="d", state={"x": 2}))
    asyncio.run(svc.create_session(app_name="adk-user:a", user_id="u", session_id="d", state={"x": 3}))
    got = [
        asyncio.run(svc.get_session(app_name=a, user_id=u, session_id="d")).state["x"]
        for a, u in [("a.b", "c"), ("a", "b.c"), ("adk-user:a", "u")]
    ]
    assert got == [1, 2, 3]
    long = asyncio.run(svc.create_session(app_name="a", user_id="u" * 300, session_id="d"))
    assert asyncio.run(svc.get_session(app_name="a", user_id="u" * 300, session_id="d")).id == long.id


def test_a_native_session_is_never_written_to(tmp_path):
    url = str(tmp_path / "s")
    with sp.open(url).session("a.u.s", agent="researcher") as s:
        s.save(step="one")
    with pytest.raises(SafepointError, match="belongs to agent 'researcher'"):
        asyncio.run(SafepointSessionService(url).create_session(app_name="a", user_id="u", session_id="s"))
    assert len(sp.open(url).history("a.u.s")) == 1


def test_a_long_conversation_costs_what_changed(tmp_path):
    """300 events of ~500 bytes: stored as deltas, far below 300 copies of the growing session."""
    url = tmp_path / "s"
    svc = SafepointSessionService(str(url))
    s = asyncio.run(svc.create_session(app_name="a", user_id="u", session_id="long"))
    for i in range(300):
        svc.append_event_sync(s, event("user" if i % 2 else "bot", f"{i} " + "word " * 100, float(i)))
    total = sum(f.stat().st_size for f in url.rglob("*") if f.is_file())
    one_copy = len(json.dumps([e.model_dump(mode="json") for e in s.events]))
    assert total < 3 * one_copy, (total, one_copy)  # 300 full copies would be ~150x one copy
    assert len(asyncio.run(svc.get_session(app_name="a", user_id="u", session_id="long")).events) == 300


def test_events_round_trip_whole(store_url):
    """Bytes, grounding metadata and every action field come back equal; so does the whole session object."""
    svc = SafepointSessionService(store_url)
    session = asyncio.run(svc.create_session(app_name="my_app", user_id="user", state={"key": "value"}))
    assert asyncio.run(svc.get_session(app_name="my_app", user_id="user", session_id=session.id)) == session
    image = types.Content(role="user", parts=[types.Part.from_bytes(data=b"\x89PNG\x00data", mime_type="image/png")])
    grounding = types.GroundingMetadata(search_entry_point=types.SearchEntryPoint(sdk_blob=b"blob\xff"))
    asyncio.run(
        svc.append_event(session, Event(invocation_id="i", author="user", content=image, grounding_metadata=grounding))
    )
    full = Event(
        invocation_id="i",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="test_text")]),
        turn_complete=True,
        partial=False,
        actions=EventActions(artifact_delta={"file": 0}, transfer_to_agent="agent", escalate=True),
        long_running_tool_ids={"tool1"},
        error_code="error_code",
        error_message="error_message",
        interrupted=True,
    )
    asyncio.run(svc.append_event(session, full))
    again = SafepointSessionService(store_url)  # another process
    loaded = asyncio.run(again.get_session(app_name="my_app", user_id="user", session_id=session.id))
    assert loaded == session
    assert loaded.events[0].content == image and loaded.events[0].grounding_metadata == grounding
    assert loaded.events[1].long_running_tool_ids == {"tool1"} and loaded.events[1].actions.escalate is True


def test_sessions_list_in_the_order_they_were_created(tmp_path):
    svc = SafepointSessionService(str(tmp_path / "s"))
    ids = [f"session{i}" for i in range(5)]
    for sid in ids:
        asyncio.run(svc.create_session(app_name="my_app", user_id="u", session_id=sid))
    assert [s.id for s in asyncio.run(svc.list_sessions(app_name="my_app", user_id="u")).sessions] == ids


def test_concurrent_sessions_of_one_user_share_user_state_without_losing_a_change(store_url):
    """Two processes, each appending to its own session of the same user, both setting `user:` and `app:` keys:
    every change reaches the shared state (a lost commit race is re-applied on the new head)."""
    services = [SafepointSessionService(store_url), SafepointSessionService(store_url)]
    sessions = [services[n].create_session_sync("shop", "ann", None, f"s{n}") for n in range(2)]

    def work(n: int) -> None:
        for i in range(8):
            delta = {f"user:seen_{n}_{i}": i, f"app:hits_{n}": i}
            services[n].append_event_sync(sessions[n], event("user", f"{n}-{i}", 100.0 * n + i, delta))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    user = asyncio.run(services[0].get_user_state(app_name="shop", user_id="ann"))
    assert user == {f"seen_{n}_{i}": i for n in range(2) for i in range(8)}
    state = asyncio.run(services[1].get_session(app_name="shop", user_id="ann", session_id="s0")).state
    assert state["app:hits_0"] == 7 and state["app:hits_1"] == 7
