"""SafepointSession against the OpenAI Agents SDK's session contract, on every kind of safepoint store.

The contract is the one the SDK's authors prove their SQLiteSession with (tests/memory/test_session.py and
test_session_limit.py in openai-agents-python): items come back in the order added; `limit` gives the latest N in
chronological order (0 gives none, more than stored gives all, `session_settings.limit` is the default and an
explicit limit wins); `pop_item` removes and returns the newest item, None when empty; `clear_session` empties it;
sessions are isolated; concurrent writers lose nothing. Plus what safepoint adds: the conversation is a safepoint
session, bytes written per added item stay flat as the conversation grows, and bad input is refused by path.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from services import require_module

require_module("agents", "openai-agents")

from agents import Agent, Runner  # noqa: E402
from agents.memory import Session, SessionSettings  # noqa: E402
from openai_agents_model import PlannedToolsModel  # noqa: E402
from openai_agents_stores import store_url  # noqa: E402, F401 - the fixture

import safepoint as sp  # noqa: E402
from safepoint.integrations.openai_agents import SafepointSession  # noqa: E402
from safepoint.stores.memory import MemoryStore  # noqa: E402

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
# The test Redis keeps nothing on disk, and says so on every open.
pytestmark = pytest.mark.filterwarnings("ignore:Redis store.*is not durable:safepoint.errors.SafepointWarning")
REPO_ROOT = Path(__file__).resolve().parent.parent


def msg(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "content": content}


def contents(items: list[dict[str, Any]]) -> list[Any]:
    return [item.get("content") for item in items]


def test_it_is_an_sdk_session(store_url: str) -> None:
    session = SafepointSession("conversation_123", store_url)
    assert isinstance(session, Session)
    assert session.session_id == "conversation_123"
    assert session.session_settings == SessionSettings()


def test_add_get_clear_keep_order_and_content(store_url: str) -> None:
    async def scenario() -> None:
        session = SafepointSession("direct", store_url)
        assert await session.get_items() == []
        await session.add_items([msg("user", "Hello"), msg("assistant", "Hi there!")])
        await session.add_items([msg("user", "How are you?")])
        got = await session.get_items()
        assert got == [msg("user", "Hello"), msg("assistant", "Hi there!"), msg("user", "How are you?")]
        again = SafepointSession("direct", sp.open(store_url))  # another handle on the same store sees them
        assert await again.get_items() == got
        await session.clear_session()
        assert await session.get_items() == []
        assert await again.get_items() == []
        await session.add_items([msg("user", "after clear")])
        assert contents(await again.get_items()) == ["after clear"]

    asyncio.run(scenario())


def test_pop_item_returns_newest_first_then_none(store_url: str) -> None:
    async def scenario() -> None:
        session = SafepointSession("pop", store_url)
        assert await session.pop_item() is None
        await session.add_items([msg("user", "Hello"), msg("assistant", "Hi there!"), msg("user", "How are you?")])
        assert await session.pop_item() == msg("user", "How are you?")
        assert contents(await session.get_items()) == ["Hello", "Hi there!"]
        assert await session.pop_item() == msg("assistant", "Hi there!")
        assert await session.pop_item() == msg("user", "Hello")
        assert await session.pop_item() is None
        assert await session.get_items() == []

    asyncio.run(scenario())


def test_sessions_are_isolated(store_url: str) -> None:
    async def scenario() -> None:
        one, two = SafepointSession("session_1", store_url), SafepointSession("session_2", store_url)
        await one.add_items([msg("user", "Session 1 message")])
        await two.add_items([msg("user", "Session 2 message 1"), msg("user", "Session 2 message 2")])
        assert (await two.pop_item())["content"] == "Session 2 message 2"
        assert contents(await one.get_items()) == ["Session 1 message"]
        assert contents(await two.get_items()) == ["Session 2 message 1"]
        await one.clear_session()
        assert contents(await two.get_items()) == ["Session 2 message 1"]

    asyncio.run(scenario())


def test_limit_gives_the_latest_items_in_order(store_url: str) -> None:
    async def scenario() -> None:
        session = SafepointSession("limits", store_url)
        for i in (1, 2, 3):
            await session.add_items([msg("user", f"Message {i}"), msg("assistant", f"Response {i}")])
        assert len(await session.get_items()) == 6
        assert contents(await session.get_items(limit=2)) == ["Message 3", "Response 3"]
        assert contents(await session.get_items(limit=4)) == ["Message 2", "Response 2", "Message 3", "Response 3"]
        assert len(await session.get_items(limit=10)) == 6
        assert await session.get_items(limit=0) == []
        assert len(await session.get_items(limit=-1)) == 6  # SQLiteSession's LIMIT -1: everything

        limited = SafepointSession("limits", store_url, session_settings=SessionSettings(limit=3))
        assert contents(await limited.get_items()) == ["Response 2", "Message 3", "Response 3"]
        assert contents(await limited.get_items(limit=1)) == ["Response 3"]  # explicit wins
        from_dict = SafepointSession("limits", store_url, session_settings={"limit": 0})
        assert isinstance(from_dict.session_settings, SessionSettings) and await from_dict.get_items() == []

    asyncio.run(scenario())


def test_unicode_and_hostile_strings_round_trip(store_url: str) -> None:
    items = [
        msg("user", "こんにちは"),
        msg("assistant", "😊👍"),
        msg("user", "Привет"),
        msg("user", "O'Reilly"),
        msg("user", "DROP TABLE sessions;"),
        msg("user", "Robert'); DROP TABLE students;--"),
        {"role": "user", "content": [{"type": "input_text", "text": "nested \u0000 nul and \\ backslash"}]},
        {"type": "function_call_output", "call_id": "c/1", "output": '{"a": [1, 2.5, null, true]}'},
    ]

    async def scenario() -> None:
        session = SafepointSession("unicode", store_url)
        await session.add_items(items)
        assert await SafepointSession("unicode", sp.open(store_url)).get_items() == items

    asyncio.run(scenario())


def test_returned_items_are_copies(store_url: str) -> None:
    async def scenario() -> None:
        session = SafepointSession("copies", store_url)
        item = msg("user", "original")
        await session.add_items([item])
        item["content"] = "changed by the caller after adding"
        got = await session.get_items()
        got[0]["content"] = "changed by the caller after reading"
        await session.add_items([msg("assistant", "next")])  # a delta against the writer's copy of the head
        assert contents(await SafepointSession("copies", sp.open(store_url)).get_items()) == ["original", "next"]

    asyncio.run(scenario())


def test_concurrent_threads_on_one_session_and_on_two_lose_nothing(store_url: str) -> None:
    """As the SDK's test_sqlite_session_concurrent_access (threads, each with its own event loop), and the same
    across two SafepointSession objects whose commits race for the same seq: every item lands once, and each
    writer's items keep their order."""
    shared = SafepointSession("concurrent", store_url)
    others = [SafepointSession("concurrent", sp.open(store_url)) for _ in range(2)]

    def add(session: SafepointSession, items: list[dict[str, Any]]) -> None:
        loop = asyncio.new_event_loop()
        try:
            for item in items:
                loop.run_until_complete(session.add_items([item]))
        finally:
            loop.close()

    jobs = [(shared, [msg("user", f"shared {w}.{i}") for i in range(5)]) for w in range(3)]
    jobs += [(session, [msg("user", f"other {w}.{i}") for i in range(8)]) for w, session in enumerate(others)]
    threads = [threading.Thread(target=add, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    got = contents(shared.items())
    expected = [item["content"] for _, items in jobs for item in items]
    assert sorted(got) == sorted(expected) and len(got) == len(expected) == 31
    for _, items in jobs:  # each writer's items in its own order
        mine = [c for c in got if c in {item["content"] for item in items}]
        assert mine == [item["content"] for item in items]
    history = sp.open(store_url).history("concurrent")
    assert [cp.seq for cp in history] == list(range(1, 32))  # one checkpoint per add, no fork, no gap


def test_two_processes_appending_to_one_conversation(tmp_path: Path) -> None:
    store = tmp_path / "store"
    script = textwrap.dedent(
        """
        import sys
        from safepoint.integrations.openai_agents import SafepointSession
        session = SafepointSession("shared", sys.argv[1])
        for i in range(15):
            session.add([{"role": "user", "content": f"{sys.argv[2]} {i}"}])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(store), name], env=env) for name in ("a", "b")]
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    got = contents(SafepointSession("shared", store).items())
    assert len(got) == 30
    for name in ("a", "b"):
        assert [c for c in got if c.startswith(name + " ")] == [f"{name} {i}" for i in range(15)]
    assert sp.open(store).fsck().ok


def test_runner_remembers_the_conversation(store_url: str) -> None:
    """As the SDK's test_session_memory_basic_functionality: the second run's model input holds the first run."""

    async def scenario() -> None:
        model = PlannedToolsModel(reply="San Francisco")
        agent = Agent(name="test", model=model)
        session = SafepointSession("runner", store_url)
        first = await Runner.run(agent, "What city is the Golden Gate Bridge in?", session=session)
        assert first.final_output == "San Francisco"
        model.reply = "California"
        second = await Runner.run(agent, "What state is it in?", session=SafepointSession("runner", store_url))
        assert second.final_output == "California"
        assert contents(model.calls[-1])[:3] == [
            "What city is the Golden Gate Bridge in?",
            [{"annotations": [], "text": "San Francisco", "type": "output_text"}],
            "What state is it in?",
        ]
        other = await Runner.run(agent, "Hi", session=SafepointSession("runner-other", store_url))
        assert other.final_output == "California" and len(model.calls[-1]) == 1  # no history of another session

    asyncio.run(scenario())


def test_conversation_is_a_safepoint_session(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from safepoint.cli import app

    store = tmp_path / "store"
    session = SafepointSession("chat-7", store)
    session.add([msg("user", "hello")])
    session.add([msg("assistant", "hi"), msg("user", "bye")])
    session.pop()
    repo = sp.open(store)
    info = repo.info("chat-7")
    assert info.agent == "openai-agents" and info.seq == 3
    assert info.head.status == sp.Status.COMPLETED  # at rest: no durable run in progress, nothing to resume
    assert [cp.step for cp in repo.history("chat-7")] == ["add 1 item (1)", "add 2 items (3)", "pop item"]
    assert repo.load("chat-7", 2).state["items"][-1] == msg("user", "bye")
    assert repo.diff("chat-7", 2, 3) == ['- state.items[2]: {"content":"bye","role":"user"}']
    result = CliRunner().invoke(app, ["--store", str(store), "ls"])
    assert result.exit_code == 0 and "chat-7" in result.output and "openai-agents" in result.output
    assert repo.fsck().ok


def test_bad_items_are_refused_by_path_and_nothing_is_saved(tmp_path: Path) -> None:
    session = SafepointSession("bad", tmp_path / "store")
    session.add([msg("user", "kept")])
    with pytest.raises(sp.NotSerializable, match=r"items\[1\]\.content"):
        session.add([msg("user", "fine"), {"role": "user", "content": object()}])
    assert contents(session.items()) == ["kept"]
    assert sp.open(tmp_path / "store").info("bad").seq == 1


def test_a_native_session_is_never_written(tmp_path: Path) -> None:
    repo = sp.open(tmp_path / "store")
    with repo.session("report-1", agent="researcher") as s:
        s.save(step="one")
    session = SafepointSession("report-1", repo)
    with pytest.raises(sp.SafepointError, match="not an OpenAI Agents SDK conversation"):
        session.add([msg("user", "x")])
    with pytest.raises(sp.SafepointError, match="never writes into a session it did not create"):
        session.items()
    assert repo.info("report-1").seq == 1


def test_bytes_written_per_item_stay_flat_as_the_conversation_grows() -> None:
    """O(change): adding an item to a conversation of 600 writes about what adding one to a conversation of 20
    does (a delta of the new item; a keyframe every 32 checkpoints rewrites only the pages that changed)."""

    class Counting(MemoryStore):
        written = 0

        def _put_if_absent(self, key: str, data: bytes) -> bool:
            Counting.written += len(data)
            return super()._put_if_absent(key, data)

        def _put(self, key: str, data: bytes, expect: Any) -> bool:
            Counting.written += len(data)
            return super()._put(key, data, expect)

    session = SafepointSession("long", Counting())
    text = "a user message of about three hundred bytes, " * 6
    spent = []
    for turn in range(640):
        before = Counting.written
        session.add([msg("user", f"{turn}: {text}")])
        spent.append(Counting.written - before)
    item = len(sp.core.codec.dumps(msg("user", f"100: {text}")))
    early, late = sum(spent[20:84]), sum(spent[576:640])  # two whole keyframe cycles each
    assert late < 1.5 * early, (early, late)
    assert late / 64 < 6 * item, (late / 64, item)  # a full rewrite would write ~600 items a turn


@pytest.mark.parametrize("runner_method", ["run", "run_sync", "run_streamed"])
def test_every_runner_method_keeps_the_conversation(runner_method: str, tmp_path: Path) -> None:
    """As the SDK's parametrized session tests: Runner.run, run_sync and run_streamed all read and save the session
    (here with the SDK's own offline ScriptedModel, which also streams)."""
    from agents.testing import ScriptedModel, assistant_message

    model = ScriptedModel([[assistant_message("Hello")], [assistant_message("I remember you said hi")]])
    agent = Agent(name="test", model=model)
    store = tmp_path / "store"

    async def turn(text: str) -> Any:
        session = SafepointSession("methods", store)
        if runner_method == "run":
            return (await Runner.run(agent, text, session=session)).final_output
        if runner_method == "run_streamed":
            result = Runner.run_streamed(agent, text, session=session)
            async for _ in result.stream_events():
                pass
            return result.final_output
        return await asyncio.to_thread(lambda: Runner.run_sync(agent, text, session=session).final_output)

    assert asyncio.run(turn("hi")) == "Hello"
    assert asyncio.run(turn("Do you remember?")) == "I remember you said hi"
    assert contents(model.calls[-1].input)[:2] == [
        "hi",
        [{"annotations": [], "logprobs": [], "text": "Hello", "type": "output_text"}],
    ]
    assert len(SafepointSession("methods", store).items()) == 4


def test_a_session_id_that_cannot_name_a_session_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(sp.InvalidSessionId, match="path separator"):
        SafepointSession("user/42", tmp_path / "store")
    assert SafepointSession("user:42 chat", tmp_path / "store").session_id == "user:42 chat"  # stored under a hash
