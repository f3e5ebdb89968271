"""The MCP server's tools, resources and prompt through the real SDK client (`mcp.Client`), in process.

Every refusal is checked three ways: `is_error`, the sentence the client reads, and a directory store left
byte-for-byte as it was.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_helpers import call, error_text, ok, run, snapshot
from mcp_types import ElicitResult, ResourceLink
from typer.testing import CliRunner

import safepoint as sp
from safepoint.cli import app
from safepoint.mcp import WRITING_TOOLS, build_server


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("SAFEPOINT_STORE", raising=False)
    return tmp_path / "store"


@pytest.fixture
def seeded(store: Path) -> Path:
    """`report-1`, saved by a Python agent with the default AgentState: two checkpoints."""
    with sp.open(store) as repo, repo.session("report-1", agent="researcher", tags=["team-a"]) as s:
        s.state.mission.goal = "Write a market report"
        s.state.mission.remaining = ["collect", "draft"]
        s.save(step="plan")
        s.state.mission.done.append("collect")
        s.state.mission.remaining.remove("collect")
        s.state.data["notes"] = ["one"]
        s.save(step="collect")
    return store


def test_save_load_history_diff_roundtrip(store: Path) -> None:
    server = build_server(str(store))

    async def scenario() -> None:
        async with Client(server) as client:
            saved = await ok(
                client, "save_checkpoint", session="agent-7", state={"mission": {"goal": "triage"}, "data": {"n": 1}},
                step="start", agent="triager", tags=["ops"], expected_seq=0,
            )  # fmt: skip
            assert saved == {"session": "agent-7", "seq": 1, "parent": None, "step": "start", "status": "running",
                             "created": True}  # fmt: skip
            loaded = await ok(client, "load_checkpoint", session="agent-7")
            assert loaded["seq"] == 1 and loaded["state"]["mission"]["goal"] == "triage"
            assert loaded["state"]["mission"]["done"] == [] and loaded["state"]["data"] == {"n": 1}  # AgentState
            second = await ok(
                client, "save_checkpoint", session="agent-7", expected_seq=1, step="count", status="waiting",
                changes=[{"path": "data.n", "value": 2}, {"path": "mission.done", "value": ["start"]}],
            )  # fmt: skip
            assert (second["seq"], second["parent"], second["status"], second["created"]) == (2, 1, "waiting", False)
            history = await ok(client, "history", session="agent-7")
            assert [(c["seq"], c["step"], c["status"]) for c in history["checkpoints"]] == [
                (1, "start", "running"), (2, "count", "waiting"),
            ]  # fmt: skip
            diff = await ok(client, "diff", session="agent-7", a=1, b=2)
            assert "~ state.data.n: 1 -> 2" in diff["changes"]
            listed = await ok(client, "list_sessions", agent="triager", tag="ops", status="waiting")
            assert [s["id"] for s in listed["sessions"]] == ["agent-7"]
            assert (await ok(client, "list_sessions", status="completed"))["sessions"] == []
            forked = await ok(client, "fork", session="agent-7", at=1, new_id="agent-7b")
            assert forked == {"session": "agent-7b", "forked_from": "agent-7", "at": 1, "seq": 1}

    run(scenario)
    with sp.open(store) as repo:
        assert repo.load("agent-7").state["data"] == {"n": 2}
        assert repo.info("agent-7").agent == "triager" and repo.info("agent-7").tags == ["ops"]
        assert repo.load("agent-7").meta["schema"] == "safepoint.model.AgentState"
        assert repo.load("agent-7b").state["data"] == {"n": 1}


def test_two_clients_same_expected_seq_exactly_one_wins(seeded: Path) -> None:
    server = build_server(str(seeded))
    results: dict[str, Any] = {}

    async def writer(name: str, start: anyio.Event) -> None:
        async with Client(server) as client:
            head = (await ok(client, "load_checkpoint", session="report-1"))["seq"]
            await start.wait()
            results[name] = await call(
                client, "save_checkpoint", session="report-1", expected_seq=head, step=name,
                changes=[{"path": "data.writer", "value": name}],
            )  # fmt: skip

    async def scenario() -> None:
        start = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(writer, "a", start)
            group.start_soon(writer, "b", start)
            await anyio.sleep(0.3)
            start.set()

    run(scenario)
    outcomes = sorted(results.items(), key=lambda item: item[1].is_error)
    (winner, won), (_, lost) = outcomes
    assert not won.is_error and lost.is_error
    assert won.structured_content["seq"] == 3
    assert "is at seq 3, not at expected_seq 2" in error_text(lost) and "nothing was written" in error_text(lost)
    with sp.open(seeded) as repo:
        history = repo.history("report-1")
        assert [(c.seq, c.parent) for c in history] == [(1, None), (2, 1), (3, 2)]  # one chain, no fork
        assert repo.load("report-1").state["data"]["writer"] == winner


def _bad_calls() -> list[tuple[str, str, dict[str, Any], str]]:
    changes = [{"path": "data.notes", "value": ["x"]}]
    return [
        ("unknown session: load", "load_checkpoint", {"session": "nope"}, "no session 'nope'"),
        ("unknown session: history", "history", {"session": "nope"}, "no session 'nope'"),
        ("unknown session: save with expected_seq", "save_checkpoint",
         {"session": "nope", "expected_seq": 2, "changes": changes}, "no session 'nope'"),
        ("unknown session: answer", "answer_input", {"session": "nope", "name": "q", "value": 1}, "no session 'nope'"),
        ("unknown session: effect", "record_effect", {"session": "nope", "key": "k", "status": "intent"},
         "no session 'nope'"),
        ("unknown session: artifact", "put_artifact",
         {"name": "a.txt", "data_base64": "aGk=", "session": "nope"}, "no session 'nope'"),
        ("unknown session: fork", "fork", {"session": "nope"}, "no session 'nope'"),
        ("bad path: syntax", "save_checkpoint", {"session": "report-1", "changes": [{"path": "data..x", "value": 1}]},
         "cannot parse path 'data..x'"),
        ("bad path: not in the state", "save_checkpoint",
         {"session": "report-1", "changes": [{"path": "data.notes[7]", "value": 1}]},
         "cannot set 'data.notes[7]' in session 'report-1': the path does not lead into the state"),
        ("bad path: half applied", "save_checkpoint",
         {"session": "report-1", "changes": [{"path": "data.ok", "value": 1}, {"path": "nope[0].x", "value": 2}]},
         "cannot set 'nope[0].x'"),
        ("non-JSON value", "save_checkpoint",
         {"session": "report-1", "changes": [{"path": "data.big", "value": 2**70}]},
         "cannot save state.data.big: the integer 1180591620717411303424 does not fit in 64 bits"),
        ("non-JSON value in a whole state", "save_checkpoint",
         {"session": "new-1", "state": {"data": {"big": [2**70]}}}, "cannot save state.data.big[0]"),
        ("state failing the schema", "save_checkpoint",
         {"session": "report-1", "state": {"mission": {"done": "not a list"}}}, "does not match schema AgentState"),
        ("state failing the schema: new session", "save_checkpoint",
         {"session": "new-1", "state": {"mission": "no"}}, "does not match schema AgentState"),
        ("oversize payload", "save_checkpoint",
         {"session": "report-1", "state": {"data": {"blob": "x" * 5000}}},
         "the state is 5,0"),
        ("oversize artifact", "put_artifact",
         {"name": "a.bin", "data_base64": base64.b64encode(b"y" * 6000).decode()}, "the artifact is 6,000 bytes"),
        ("not base64", "put_artifact", {"name": "a.bin", "data_base64": "%%%"}, "data_base64 is not valid base64"),
        ("stale expected_seq: artifact", "put_artifact",
         {"name": "a.txt", "data_base64": "aGk=", "session": "report-1", "expected_seq": 1},
         "is at seq 2, not at expected_seq 1"),
        ("stale expected_seq", "save_checkpoint",
         {"session": "report-1", "expected_seq": 1, "changes": changes}, "is at seq 2, not at expected_seq 1"),
        ("expected_seq of a new session on an old one", "save_checkpoint",
         {"session": "report-1", "expected_seq": 0, "changes": changes}, "is at seq 2, not at expected_seq 0"),
        ("both state and changes", "save_checkpoint",
         {"session": "report-1", "state": {}, "changes": changes}, "give either `state`"),
        ("answer to a question not asked", "answer_input",
         {"session": "report-1", "name": "approve", "value": True}, "is not waiting for 'approve'"),
        ("diff of a missing seq", "diff", {"session": "report-1", "a": 1, "b": 9}, "has no checkpoint seq 9"),
        ("invalid session id", "save_checkpoint", {"session": "a/b", "state": {}}, "contains a path separator"),
        ("artifact not listed", "get_artifact", {"session": "report-1", "name": "x.csv"}, "lists no artifact 'x.csv'"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("tool", "arguments", "message"), [c[1:] for c in _bad_calls()], ids=[c[0] for c in _bad_calls()]
)
def test_bad_input_is_a_tool_error_and_the_store_is_unchanged(
    seeded: Path, tool: str, arguments: dict[str, Any], message: str
) -> None:
    server = build_server(str(seeded), max_payload=4000)
    before = snapshot(seeded)

    async def scenario() -> Any:
        async with Client(server) as client:
            return await call(client, tool, **arguments)

    result = run(scenario)
    assert result.is_error
    text = error_text(result)
    assert message in text, text
    assert "Traceback" not in text and "\n" not in text
    assert snapshot(seeded) == before


def test_read_only_lists_no_writing_tool_and_refuses_writes(seeded: Path) -> None:
    server = build_server(str(seeded), read_only=True)
    before = snapshot(seeded)

    async def scenario() -> Any:
        async with Client(server) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert names == {"list_sessions", "load_checkpoint", "history", "diff", "get_artifact", "pending_inputs",
                             "get_effect"}  # fmt: skip
            assert not names & set(WRITING_TOOLS)
            assert (await ok(client, "load_checkpoint", session="report-1"))["seq"] == 2
            return await call(client, "save_checkpoint", session="report-1", state={})

    refused = run(scenario)
    assert refused.is_error and "save_checkpoint" in error_text(refused)
    assert snapshot(seeded) == before


def test_allow_list_limits_what_a_client_sees_and_touches(seeded: Path) -> None:
    with sp.open(seeded) as repo, repo.session("team-b-1") as s:
        s.save(step="b")
    server = build_server(str(seeded), sessions=["team-a-*", "report-*"])
    before = snapshot(seeded)

    async def scenario() -> None:
        async with Client(server) as client:
            listed = await ok(client, "list_sessions")
            assert [s["id"] for s in listed["sessions"]] == ["report-1"]
            for tool, args in [
                ("load_checkpoint", {"session": "team-b-1"}),
                ("history", {"session": "team-b-1"}),
                ("save_checkpoint", {"session": "team-b-2", "state": {}}),
                ("fork", {"session": "report-1", "new_id": "team-b-copy"}),
                ("get_effect", {"session": "team-b-1", "key": "k"}),
                ("get_artifact", {"ref": "sha256:" + "0" * 64}),
            ]:
                result = await call(client, tool, **args)
                assert result.is_error, tool
                assert "allow-list" in error_text(result), error_text(result)
            with pytest.raises(Exception, match="allow-list"):
                await client.read_resource("safepoint://sessions/team-b-1")
            sessions = json.loads((await client.read_resource("safepoint://sessions")).contents[0].text)
            assert [s["id"] for s in sessions] == ["report-1"]

    run(scenario)
    assert snapshot(seeded) == before
    server = build_server(str(seeded), sessions=["team-a-*"])

    async def allowed() -> None:
        async with Client(server) as client:
            assert (await ok(client, "save_checkpoint", session="team-a-9", state={}))["created"]

    run(allowed)


def test_effects_record_intent_then_done_and_never_twice(seeded: Path) -> None:
    server = build_server(str(seeded))

    async def scenario() -> None:
        async with Client(server) as client:
            assert (await ok(client, "get_effect", session="report-1", key="email:42"))["status"] == "none"
            intent = await ok(client, "record_effect", session="report-1", key="email:42", status="intent")
            assert (intent["status"], intent["attempt"], intent["seq"]) == ("intent", 1, 3)
            stuck = await ok(client, "list_sessions", stuck=True)
            assert [s["id"] for s in stuck["sessions"]] == ["report-1"]
            assert "email:42 in doubt" in stuck["sessions"][0]["stuck"]
            assert (await ok(client, "load_checkpoint", session="report-1"))["in_doubt"] == ["email:42"]
            done = await ok(
                client, "record_effect", session="report-1", key="email:42", status="done", result={"id": "m-1"}
            )
            assert (done["status"], done["result"], done["seq"]) == ("done", {"id": "m-1"}, 4)
            again = await ok(client, "record_effect", session="report-1", key="email:42", status="intent")
            assert (again["status"], again["result"], again["seq"]) == ("done", {"id": "m-1"}, None)
            assert (await ok(client, "list_sessions", stuck=True))["sessions"] == []
            assert [s["id"] for s in (await ok(client, "list_sessions", stuck=False))["sessions"]] == ["report-1"]

    run(scenario)
    with sp.open(seeded) as repo:
        assert repo.info("report-1").seq == 4  # the repeated intent wrote nothing
        with repo.session("report-1") as s:  # the Python runtime sees the same record: the effect is not re-run
            assert s.effect("email:42", lambda: pytest.fail("re-ran a done effect")) == {"id": "m-1"}


def test_artifacts_inline_when_small_as_a_resource_link_when_large(seeded: Path) -> None:
    server = build_server(str(seeded), inline_artifact=100)
    small, large = b"a,b\n1,2\n", bytes(range(256)) * 4

    async def scenario() -> None:
        async with Client(server) as client:
            put = await ok(
                client, "put_artifact", name="table.csv", data_base64=base64.b64encode(small).decode(),
                session="report-1", expected_seq=2,
            )  # fmt: skip
            assert (put["media_type"], put["size"], put["attached_at"]) == ("text/csv", len(small), 3)
            got = await ok(client, "get_artifact", session="report-1", name="table.csv")
            assert base64.b64decode(got["data_base64"]) == small and got["resource_uri"] is None
            big = await ok(client, "put_artifact", name="blob.bin", data_base64=base64.b64encode(large).decode(),
                           session="report-1")  # fmt: skip
            result = await call(client, "get_artifact", ref=big["ref"])
            assert not result.is_error and result.structured_content["data_base64"] is None
            links = [block for block in result.content if isinstance(block, ResourceLink)]
            assert len(links) == 1 and str(links[0].uri) == result.structured_content["resource_uri"]
            read = await client.read_resource(str(links[0].uri))
            assert base64.b64decode(read.contents[0].blob) == large
            by_ref = await client.read_resource(f"safepoint://artifacts/{big['ref']}")  # the `sha256:` form too
            assert base64.b64decode(by_ref.contents[0].blob) == large

    run(scenario)
    with sp.open(seeded) as repo:
        names = [a["name"] for a in repo.load("report-1").state["artifacts"]]
        assert names == ["table.csv", "blob.bin"]
        assert repo.open_artifact(repo.load("report-1").state["artifacts"][0]["ref"]).read() == small


def _waiting(store: Path) -> None:
    with sp.open(store) as repo, repo.session("report-1") as s, pytest.raises(sp.Suspended):
        s.wait_for("approve", prompt="Approve the outline?", schema=bool)


def test_pending_inputs_and_answer_input(seeded: Path) -> None:
    _waiting(seeded)
    server = build_server(str(seeded))
    before = snapshot(seeded)

    async def scenario() -> None:
        async with Client(server) as client:
            pending = await ok(client, "pending_inputs", session="report-1")
            assert pending["pending"] == [
                {"name": "approve", "prompt": "Approve the outline?", "schema": {"type": "boolean"},
                 "asked_at": pending["pending"][0]["asked_at"]},
            ]  # fmt: skip
            wrong = await call(client, "answer_input", session="report-1", name="approve", value="yes please")
            assert wrong.is_error and "answer to 'approve' for session 'report-1' refused" in error_text(wrong)
            assert snapshot(seeded) == before
            answered = await ok(client, "answer_input", session="report-1", name="approve", value=True)
            assert answered == {"session": "report-1", "name": "approve", "seq": 4, "ready": True}

    run(scenario)
    with sp.open(seeded) as repo, repo.session("report-1") as s:
        assert s.wait_for("approve", prompt="Approve the outline?", schema=bool) is True


def test_ask_user_puts_the_question_through_elicitation(seeded: Path) -> None:
    _waiting(seeded)
    server = build_server(str(seeded))
    asked: list[str] = []

    async def answer(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        assert params.requested_schema["properties"]["answer"]["type"] == "boolean"
        return ElicitResult(action="accept", content={"answer": True})

    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async def scenario() -> None:
        async with Client(server) as client:  # no elicitation_callback: this client cannot ask anyone
            cannot = await call(client, "ask_user", session="report-1", name="approve")
            assert cannot.is_error and "declared no form elicitation" in error_text(cannot)
            assert "answer_input(session='report-1', name='approve')" in error_text(cannot)
        async with Client(server, elicitation_callback=decline) as client:
            declined = await ok(client, "ask_user", session="report-1", name="approve")
            assert (declined["action"], declined["seq"]) == ("decline", None)
        async with Client(server, elicitation_callback=answer) as client:
            accepted = await ok(client, "ask_user", session="report-1", name="approve")
            assert (accepted["action"], accepted["answer"], accepted["seq"], accepted["ready"]) == (
                "accept", True, 4, True,
            )  # fmt: skip
            again = await call(client, "ask_user", session="report-1", name="approve")
            assert again.is_error and "is not waiting for 'approve'" in error_text(again)

    run(scenario)
    assert asked == ["Session report-1 asks (approve): Approve the outline?"]
    with sp.open(seeded) as repo:
        assert repo.load("report-1").meta["by"] == "mcp-elicitation"


def test_resources_and_the_resume_prompt(seeded: Path) -> None:
    _waiting(seeded)
    server = build_server(str(seeded))

    async def scenario() -> None:
        async with Client(server) as client:
            listed = json.loads((await client.read_resource("safepoint://sessions")).contents[0].text)
            assert [(s["id"], s["seq"], s["waiting_for"]) for s in listed] == [("report-1", 3, ["approve"])]
            head = json.loads((await client.read_resource("safepoint://sessions/report-1")).contents[0].text)
            assert head["checkpoint"]["seq"] == 3 and list(head["pending_inputs"]) == ["approve"]
            first = json.loads((await client.read_resource("safepoint://sessions/report-1/1")).contents[0].text)
            assert first["checkpoint"]["step"] == "plan" and first["state"]["mission"]["done"] == []
            prompt = await client.get_prompt("resume_session", {"session": "report-1", "max_tokens": "300"})
            text = prompt.messages[0].content.text
            assert "Mission: Write a market report" in text
            assert "Remaining (1):\n- draft" in text and "Done (1):\n- collect" in text
            assert "Waiting for an answer to 'approve': Approve the outline?" in text
            assert "expected_seq=3" in text and len(text) <= 300 * 4
            big = await client.get_prompt("resume_session", {"session": "report-1"})
            assert '"notes": ["one"]' in big.messages[0].content.text  # room for the state itself

    run(scenario)


def test_resume_prompt_keeps_within_its_budget(store: Path) -> None:
    with sp.open(store) as repo, repo.session("long") as s:
        s.state.mission.goal = "g"
        s.state.mission.done = [f"finished item number {i}" for i in range(2000)]
        s.state.data["blob"] = "z" * 50_000
        s.save(step="many")
    server = build_server(str(store))

    async def scenario() -> str:
        async with Client(server) as client:
            prompt = await client.get_prompt("resume_session", {"session": "long", "max_tokens": "500"})
            return prompt.messages[0].content.text

    text = run(scenario)
    assert len(text) <= 500 * 4
    assert "Done (2000, the " in text and "- finished item number 1999" in text  # newest kept
    assert "finished item number 0\n" not in text


def test_what_mcp_saves_is_what_the_python_api_and_cli_see(seeded: Path) -> None:
    server = build_server(str(seeded))

    async def through_mcp(changes: list[dict[str, Any]], expected: int) -> dict[str, Any]:
        async with Client(server) as client:
            await ok(client, "save_checkpoint", session="report-1", expected_seq=expected, step="mcp", changes=changes)
            return await ok(client, "load_checkpoint", session="report-1")

    loaded = run(lambda: through_mcp([{"path": "data.notes[0]", "value": "from mcp"}], 2))
    with sp.open(seeded) as repo:
        assert repo.load("report-1").state == loaded["state"]
        with repo.session("report-1") as s:  # the Python agent resumes what the MCP client saved
            assert s.seq == 3 and s.state.data["notes"] == ["from mcp"]
            s.state.data["notes"].append("from python")
            s.save(step="python")
    shown = CliRunner().invoke(app, ["--store", str(seeded), "show", "report-1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["state"]["data"]["notes"] == ["from mcp", "from python"]
    assert json.loads(shown.output)["checkpoint"]["seq"] == 4
    edited = CliRunner().invoke(app, ["--store", str(seeded), "set", "report-1", 'data.cli="yes"'])
    assert edited.exit_code == 0, edited.output
    after = run(lambda: through_mcp([{"path": "data.mcp_again", "value": 1}], 5))
    assert after["seq"] == 6 and after["state"]["data"]["cli"] == "yes"
    assert after["state"]["data"]["notes"] == ["from mcp", "from python"]
    listed = CliRunner().invoke(app, ["--store", str(seeded), "history", "report-1", "--json"])
    steps = [(c["step"], c["manual_edit"]) for c in json.loads(listed.output)]
    assert steps == [("plan", False), ("collect", False), ("mcp", False), ("python", False), ("python", True),
                     ("mcp", False)]  # fmt: skip


def test_a_save_while_a_live_worker_holds_the_lease_is_refused(seeded: Path) -> None:
    server = build_server(str(seeded))
    with sp.open(seeded) as repo, repo.session("report-1") as running:
        before = snapshot(seeded)

        async def scenario() -> Any:
            async with Client(server) as client:
                return await call(client, "save_checkpoint", session="report-1", changes=[
                    {"path": "data.x", "value": 1}])  # fmt: skip

        refused = run(scenario)
        assert refused.is_error and "which holds its lease; nothing was written" in error_text(refused)
        assert snapshot(seeded) == before
        running.state.data["worker"] = True
        assert running.save(step="worker").seq == 3  # the holder goes on undisturbed


@pytest.mark.parametrize(("kind", "expected"), [("directory", 1), ("sqlite", 1), ("directory", None)])
def test_two_writers_past_every_check_are_decided_by_the_stores_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, expected: int | None
) -> None:
    """Both writers loaded seq 1, passed every check and opened the session before either commits: the store's
    create-if-absent of seq 2 picks one. With expected_seq the other is refused; without, it goes on top."""
    url = str(tmp_path / "store") if kind == "directory" else f"sqlite:///{tmp_path / 'agents.db'}"
    with sp.open(url) as repo, repo.session("race") as s:
        s.save(step="seed")
    server = build_server(url)
    both_ready = threading.Barrier(2, timeout=20)
    first_saves = iter(range(2))
    original = sp.Session.save

    def save_together(self: sp.Session, *args: Any, **kwargs: Any) -> sp.Checkpoint:
        if next(first_saves, None) is not None:  # the two first saves meet here; a retry goes straight on
            both_ready.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(sp.Session, "save", save_together)
    results: list[Any] = []

    async def writer(name: str) -> None:
        async with Client(server) as client:
            results.append(await call(client, "save_checkpoint", session="race", expected_seq=expected, step=name,
                                      changes=[{"path": f"data.{name}", "value": True}]))  # fmt: skip

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(writer, "a")
            group.start_soon(writer, "b")

    run(scenario)
    with sp.open(url) as repo:
        chain = [(c.seq, c.parent) for c in repo.history("race")]
        if expected is None:
            assert not any(r.is_error for r in results)
            assert chain == [(1, None), (2, 1), (3, 2)]
            assert repo.load("race").state["data"] == {"a": True, "b": True}  # the second went on top
            return
        assert sorted(r.is_error for r in results) == [False, True]
        lost = next(r for r in results if r.is_error)
        assert "is at seq 2, not at expected_seq 1: another writer saved first; nothing was written" in error_text(lost)
        assert chain == [(1, None), (2, 1)]
        won = next(r for r in results if not r.is_error)
        assert repo.load("race").step == won.structured_content["step"]
