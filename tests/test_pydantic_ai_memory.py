"""SafepointMemoryStore against pydantic-ai-harness's `MemoryStore` contract, as its in-memory store behaves.

Compare-and-set on versions, operation receipts (replayed, or refused when an id is reused with other
arguments), list order and limits, truncated reads, write metadata, and search, each answered as the harness's
`InMemoryStore` answers; then what only a shared store must get right: two processes writing different paths
both succeed, the same path exactly one, and each change is a checkpoint the CLI can show.
"""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from services import require_module

require_module("pydantic_ai_harness", "pydantic-ai")
pytest_plugins = ["adapter_stores"]  # the store_url fixture: a directory, SQLite, PostgreSQL, Redis
pytestmark = pytest.mark.filterwarnings("ignore::safepoint.errors.SafepointWarning")  # Redis without disk

from pydantic_ai_harness.memory import (  # noqa: E402
    InMemoryStore,
    MemoryConflictError,
    MemoryOperation,
    MemoryOperationConflictError,
    MemoryStore,
    MetadataMemoryStore,
    SearchableMemoryStore,
)

import safepoint as sp  # noqa: E402
from safepoint.integrations.pydantic_ai import SafepointMemoryStore  # noqa: E402


def outcome(fn):
    """What a call gave: its value, or the kind of error it raised (versions are opaque, so not compared)."""

    async def run(*args, **kwargs):
        try:
            return await fn(*args, **kwargs)
        except (MemoryConflictError, MemoryOperationConflictError, ValueError) as exc:
            return type(exc).__name__

    return run


async def cas_scenario(store) -> list:
    seen = []
    first = await store.write("notes/a.md", "alpha", expected_version=None)
    seen.append((first.replayed, first.existed))
    seen.append(await outcome(store.write)("notes/a.md", "again", expected_version=None))  # exists: conflict
    second = await store.write("notes/a.md", "beta", expected_version=first.version)
    seen.append((second.replayed, second.existed, second.version != first.version))
    seen.append(await outcome(store.write)("notes/a.md", "stale", expected_version=first.version))
    seen.append(await outcome(store.delete)("notes/a.md", expected_version=first.version))
    read = await store.read("notes/a.md", max_chars=100)
    seen.append((read.content, read.version == second.version, read.truncated, read.operation_id))
    gone = await store.delete("notes/a.md", expected_version=second.version)
    seen.append((gone.version, gone.replayed, gone.existed))
    seen.append(await store.read("notes/a.md", max_chars=100))
    again = await store.delete("notes/a.md", expected_version=None)  # absent and expected absent: a no-op
    seen.append((again.version, again.existed))
    recreated = await store.write("notes/a.md", "gamma", expected_version=None)
    seen.append(recreated.version not in (first.version, second.version))
    for bad in ("../x", "a//b", "a/./b", "", "a/" + "x" * 201, "sp ace"):
        seen.append(await outcome(store.write)(bad, "x", expected_version=None))
    seen.append(await outcome(store.read)("notes/a.md", max_chars=0))
    return seen


async def operations_scenario(store) -> list:
    op = MemoryOperation(id="op-1", fingerprint="f1")
    first = await store.write("m.md", "one", expected_version=None, operation=op)
    replay = await store.write("m.md", "one", expected_version=None, operation=op)  # retried: not applied twice
    read = await store.read("m.md", max_chars=10)
    receipt = await store.get_operation(op)
    other = await outcome(store.write)(
        "m.md", "two", expected_version=read.version, operation=MemoryOperation(id="op-1", fingerprint="f2")
    )
    op2 = MemoryOperation(id="op-2", fingerprint="g")
    deleted = await store.delete("m.md", expected_version=read.version, operation=op2)
    deleted_again = await store.delete("m.md", expected_version=read.version, operation=op2)
    return [
        (first.replayed, replay.replayed, replay.version == first.version, replay.existed),
        (read.content, read.operation_id),
        (receipt.replayed, receipt.version == first.version),
        other,
        (deleted.replayed, deleted.existed, deleted_again.replayed, deleted_again.version),
        await store.get_operation(MemoryOperation(id="never", fingerprint="x")),
        await outcome(store.get_operation)(MemoryOperation(id="op-2", fingerprint="changed")),
    ]


async def listing_scenario(store) -> list:
    for path in ["b/2.md", "a/1.md", "b/1.md", "b/sub/3.md", "bb.md", "c.md"]:
        await store.write(path, path * 3, expected_version=None)
    read = await store.read("b/1.md", max_chars=4)
    return [
        await store.list_paths("", limit=100),
        await store.list_paths("b/", limit=100),
        await store.list_paths("b", limit=100),
        await store.list_paths("", limit=2),
        (read.content, read.truncated),
        await outcome(store.list_paths)("", limit=0),
        await outcome(store.list_paths)("../", limit=5),
    ]


async def metadata_scenario(store) -> list:
    written = await store.write_with_metadata("p.md", "x", expected_version=None, metadata={"by": "agent-1"})
    with_meta = await store.read("p.md", max_chars=5)
    plain = await store.write("p.md", "y", expected_version=written.version)  # a write without: metadata goes
    without = await store.read("p.md", max_chars=5)
    empty = await store.write_with_metadata("q.md", "z", expected_version=None, metadata={})
    return [
        dict(with_meta.metadata),
        without.metadata,
        (await store.read("q.md", max_chars=5)).metadata,
        empty.existed,
        await outcome(store.write_with_metadata)("r.md", "z", expected_version=None, metadata={"k": "v" * 5000}),
        plain.existed,
    ]


async def search_scenario(store) -> list:
    files = {
        "mem/cats.md": "Cats sleep a lot. cats cats",
        "mem/dogs.md": "Dogs like walks; some dogs like cats",
        "mem/cats-care.md": "Feeding schedule",
        "mem/deep/cats.md": "cats " * 20,  # a nested scope: not searched from mem/
        "other/cats.md": "cats",
        "mem/long.md": "x" * 500 + " cats here",
    }
    for path, content in files.items():
        await store.write(path, content, expected_version=None)
    shown = lambda r: ([(m.path, m.score) for m in r.matches], r.scanned, r.truncated)  # noqa: E731
    return [
        shown(await store.search("mem/", "cats", limit=10, max_files=50, max_chars=2000, max_file_chars=1000)),
        shown(await store.search("mem/", "CATS dogs", limit=2, max_files=50, max_chars=2000, max_file_chars=1000)),
        shown(await store.search("mem/", "cats", limit=10, max_files=2, max_chars=2000, max_file_chars=1000)),
        shown(await store.search("mem/", "here", limit=10, max_files=50, max_chars=2000, max_file_chars=100)),
        shown(await store.search("mem/", "   ", limit=10, max_files=50, max_chars=2000, max_file_chars=1000)),
        shown(await store.search("", "cats", limit=10, max_files=50, max_chars=2000, max_file_chars=1000)),
    ]


SCENARIOS = [cas_scenario, operations_scenario, listing_scenario, metadata_scenario, search_scenario]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_answers_as_the_harness_in_memory_store_does(scenario, store_url):
    expected = asyncio.run(scenario(InMemoryStore()))
    assert asyncio.run(scenario(SafepointMemoryStore(store_url))) == expected


def test_implements_the_protocols(tmp_path):
    store = SafepointMemoryStore(str(tmp_path / "s"))
    assert isinstance(store, MemoryStore) and isinstance(store, MetadataMemoryStore)
    assert isinstance(store, SearchableMemoryStore)


def test_search_snippets_show_the_match(tmp_path):
    store = SafepointMemoryStore(str(tmp_path / "s"))
    asyncio.run(store.write("m/long.md", "x" * 500 + " the cats are here " + "y" * 500, expected_version=None))
    (match,) = asyncio.run(store.search("m/", "cats", limit=5, max_files=5, max_chars=80, max_file_chars=5000)).matches
    assert "cats" in match.snippet and len(match.snippet) <= 80 - len("long.md")


def test_two_processes_write_different_paths_and_race_on_one(store_url):
    stores = [SafepointMemoryStore(store_url), SafepointMemoryStore(store_url)]
    errors: list[Exception] = []

    def write(n: int) -> None:
        for i in range(10):
            stores[n].write_sync(f"w{n}/{i}.md", f"{n}:{i}", expected_version=None)
        try:
            stores[n].write_sync("shared.md", f"from {n}", expected_version=None)
        except MemoryConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paths = stores[0].list_paths_sync("", limit=100)
    assert paths == sorted([f"w{n}/{i}.md" for n in range(2) for i in range(10)] + ["shared.md"])
    assert len(errors) == 1  # exactly one of the two creates of shared.md won
    winner = stores[1].read_sync("shared.md", max_chars=20).content
    assert winner in ("from 0", "from 1")


def test_each_change_is_a_checkpoint(tmp_path):
    url = str(tmp_path / "s")
    store = SafepointMemoryStore(url, session="agent-notes")
    v1 = store.write_sync("todo.md", "- buy milk", expected_version=None)
    store.write_sync("todo.md", "- buy milk\n- call bob", expected_version=v1.version)
    history = sp.open(url).history("agent-notes")
    assert [c.step for c in history] == ["write todo.md", "write todo.md"]
    assert any("todo.md" in line for line in sp.open(url).diff("agent-notes", 1, 2))
    # A second store object (another process) reads it back from storage.
    assert SafepointMemoryStore(url, session="agent-notes").read_sync("todo.md", max_chars=100).content.endswith("bob")


def test_a_harnessed_agent_remembers_through_the_memory_capability(tmp_path):
    """A real Agent with the harness's Memory capability writes a note; a later run (new store object, as another
    process would open it) finds it with the memory search tool."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai_harness import Memory

    def returns(messages) -> list:
        return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]

    def writer(messages, info) -> ModelResponse:
        if not returns(messages):
            return ModelResponse(parts=[ToolCallPart("write_memory", {"content": "customer prefers email"})])
        return ModelResponse(parts=[TextPart("noted")])

    def searcher(messages, info) -> ModelResponse:
        done = returns(messages)
        if not done:
            return ModelResponse(parts=[ToolCallPart("search_memory", {"query": "email"})])
        return ModelResponse(parts=[TextPart(json.dumps(done[-1].content))])

    url = str(tmp_path / "s")
    asyncio.run(Agent(FunctionModel(writer), capabilities=[Memory(SafepointMemoryStore(url))]).run("remember"))
    found = asyncio.run(Agent(FunctionModel(searcher), capabilities=[Memory(SafepointMemoryStore(url))]).run("find"))
    (match,) = json.loads(found.output)["matches"]
    assert match["file"] == "MEMORY.md" and "prefers email" in match["snippet"]
    assert [c.step for c in sp.open(url).history("pydantic-ai-memory")] == ["write main/MEMORY.md"]
