"""Durable steps: each runs once, its output is recorded and replayed; per-step checkpoints; usage and savings."""

from __future__ import annotations

import pytest

import safepoint as sp


@pytest.fixture
def repo():
    return sp.open("memory://")


class Crash(Exception):
    """Stands for the process dying mid-run (raised by the agent, not by a step)."""


def counted(calls: list[str], name: str, value):
    """A step function that records each real execution in `calls`."""

    def fn(*args):
        calls.append(name)
        return value

    return fn


def test_a_step_runs_once_and_a_new_session_gets_the_recorded_output(repo):
    calls: list[str] = []
    plan = counted(calls, "plan", ("intro", "prices", {"depth": 2}))
    with repo.session("job", schema=dict) as s:
        first = s.step("plan", plan, "market report")
        again = s.step("plan", plan, "market report")  # same session, same name: the record
    with repo.session("job", schema=dict) as s:
        replayed = s.step("plan", plan, "market report")
        assert s.replayed_steps == 1
    assert calls == ["plan"]
    # The JSON form, the first time as on every replay: a tuple comes back as a list both times.
    assert first == again == replayed == ["intro", "prices", {"depth": 2}]
    assert type(first) is list and type(replayed) is list
    assert repo.load("job").runtime["steps"]["plan"]["output"] == ["intro", "prices", {"depth": 2}]


def test_running_the_agent_again_replays_recorded_steps_without_calling_them(repo):
    calls: list[str] = []
    crash = [True]

    def agent(s):
        outline = s.step("outline", counted(calls, "outline", ("a", "b")))
        if crash[0]:
            crash[0] = False
            raise Crash("killed after the first step")
        body = s.step("write", counted(calls, "write", "text"))
        return {"outline": outline, "body": body}

    with pytest.raises(Crash):
        sp.run(agent, "job", store=repo, schema=dict)
    assert repo.load("job").status == sp.Status.FAILED
    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED
    assert result.value == {"outline": ["a", "b"], "body": "text"}
    assert calls == ["outline", "write"]
    assert result.replayed_steps == 1
    # A finished run is not run again: its recorded result comes back.
    assert sp.run(agent, "job", store=repo, schema=dict).value == result.value
    assert calls == ["outline", "write"]


def test_every_step_is_checkpointed_by_default(repo):
    def agent(s):
        for name in ("plan", "read", "write"):
            s.step(name, lambda n=name: n.upper())
        return "ok"

    sp.run(agent, "job", store=repo, schema=dict)
    assert [(c.step, c.status) for c in repo.history("job")] == [
        ("plan", sp.Status.RUNNING),
        ("read", sp.Status.RUNNING),
        ("write", sp.Status.RUNNING),
        ("completed", sp.Status.COMPLETED),
    ]
    steps = repo.load("job", 2).runtime["steps"]
    assert sorted(steps) == ["plan", "read"] and steps["read"] == {**steps["read"], "status": "done", "output": "READ"}


def test_explicit_step_field_style_resumes_after_a_crash(repo):
    calls: list[str] = []
    crash = [True]

    def pipeline(s):
        if s.last_step is None:
            s.state["pages"] = counted(calls, "fetch", ["p1", "p2"])()
            s.save(step="fetch")
        if s.last_step == "fetch":
            calls.append("summarise")
            if crash[0]:
                crash[0] = False
                raise Crash("the process died while summarising")
            s.state["summary"] = " + ".join(s.state["pages"])
            s.save(step="summarise")
        return s.state["summary"]

    with pytest.raises(Crash):
        sp.run(pipeline, "job", store=repo, schema=dict)
    head = repo.load("job")
    assert head.step == "fetch" and head.status == sp.Status.FAILED
    assert "Crash: the process died while summarising" in head.runtime["error"]["error"]
    result = sp.run(pipeline, "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED and result.value == "p1 + p2"
    assert calls == ["fetch", "summarise", "summarise"]  # fetch was not done again
    assert "error" not in repo.load("job").runtime


def test_explicit_style_branching_on_the_state(repo):
    calls: list[str] = []
    crash = [True]

    def pipeline(s):
        stage = s.state.setdefault("stage", "start")
        if stage == "start":
            calls.append("collect")
            s.state.update(items=[1, 2, 3], stage="collected")
            s.save(step="collect")
        if s.state["stage"] == "collected":
            calls.append("total")
            if crash[0]:
                crash[0] = False
                raise Crash("died")
            s.state.update(total=sum(s.state["items"]), stage="totalled")
            s.save(step="total")
        return s.state["total"]

    with pytest.raises(Crash):
        sp.run(pipeline, "job", store=repo, schema=dict)
    assert sp.run(pipeline, "job", store=repo, schema=dict).value == 6
    assert calls == ["collect", "total", "total"]


@sp.step()
def fetch(calls: list[str], url: str) -> dict:
    calls.append(url)
    return {"url": url, "size": len(url)}


@sp.step("summarise")
def summarise(calls: list[str], text: str) -> str:
    calls.append("summarise " + text)
    return text[:3]


def test_decorated_steps_are_keyed_by_call_order_and_replayed(repo):
    calls: list[str] = []
    crash = [True]

    def agent(s):
        pages = [fetch(calls, "a.example"), fetch(calls, "bb.example")]
        short = summarise(calls, "abcdef")
        if crash[0]:
            crash[0] = False
            raise Crash("died after three steps")
        pages.append(fetch(calls, "ccc.example"))
        return {"pages": pages, "short": short}

    with pytest.raises(Crash):
        sp.run(agent, "job", store=repo, schema=dict)
    assert sorted(repo.load("job").runtime["steps"]) == ["fetch#1", "fetch#2", "summarise#1"]
    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED and result.replayed_steps == 3
    assert calls == ["a.example", "bb.example", "summarise abcdef", "ccc.example"]
    assert result.value == {
        "pages": [
            {"url": "a.example", "size": 9},
            {"url": "bb.example", "size": 10},
            {"url": "ccc.example", "size": 11},
        ],
        "short": "abc",
    }
    assert sorted(repo.load("job").runtime["steps"]) == ["fetch#1", "fetch#2", "fetch#3", "summarise#1"]


def test_a_decorated_step_outside_a_session_simply_runs():
    calls: list[str] = []
    assert fetch(calls, "x") == {"url": "x", "size": 1}
    assert fetch(calls, "x") == {"url": "x", "size": 1}
    assert calls == ["x", "x"]


def test_an_output_without_json_form_names_the_step_and_records_nothing(repo):
    calls: list[str] = []
    with repo.session("job", schema=dict) as s:
        s.step("ok", counted(calls, "ok", 1))
        with pytest.raises(sp.NotSerializable, match="output of step 'bad'") as info:
            s.step("bad", counted(calls, "bad", {"client": object()}))
        assert "client" in info.value.path
        assert "bad" not in s.runtime["steps"]
        # Nothing was recorded, so the step runs again when called again.
        with pytest.raises(sp.NotSerializable):
            s.step("bad", counted(calls, "bad", {"client": object()}))
    assert calls == ["ok", "bad", "bad"]
    assert [c.step for c in repo.history("job")] == ["ok"]
    assert sorted(repo.load("job").runtime["steps"]) == ["ok"]


def test_save_steps_false_records_steps_but_checkpoints_only_on_save(repo):
    calls: list[str] = []
    with repo.session("job", schema=dict, save_steps=False) as s:
        assert s.step("a", counted(calls, "a", "A")) == "A"
        assert s.step("b", counted(calls, "b", "B")) == "B"
        assert repo.history("job") == []
        s.save(step="batch")
    assert [c.step for c in repo.history("job")] == ["batch"]
    with repo.session("job", schema=dict, save_steps=False) as s:
        assert [s.step("a", counted(calls, "a", "?")), s.step("b", counted(calls, "b", "?"))] == ["A", "B"]
    assert calls == ["a", "b"]


def test_save_steps_false_through_run_checkpoints_once_at_the_end(repo):
    def agent(s):
        return [s.step(name, lambda n=name: n) for name in ("x", "y", "z")]

    result = sp.run(agent, "job", store=repo, schema=dict, save_steps=False)
    assert result.value == ["x", "y", "z"]
    assert [c.step for c in repo.history("job")] == ["completed"]
    assert sorted(repo.load("job").runtime["steps"]) == ["x", "y", "z"]


def test_usage_reported_in_a_step_is_recorded_on_it_and_in_the_totals(repo):
    def draft(topic):
        sp.report_usage(tokens=120, cost=0.01)
        return topic.upper()

    def agent(s):
        text = s.step("draft", draft, "prices")
        s.report_usage(tokens=5)  # outside a step: the session's own totals

        def review():
            s.report_usage(tokens=30, cost=0.002, calls=1)
            return "ok"

        return [text, s.step("review", review), s.step("free", lambda: "no tokens")]

    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.value == ["PRICES", "ok", "no tokens"]
    runtime = repo.load("job").runtime
    assert runtime["steps"]["draft"]["usage"] == {"tokens": 120, "cost": 0.01}
    assert runtime["steps"]["review"]["usage"] == {"tokens": 30, "cost": 0.002, "calls": 1}
    assert "usage" not in runtime["steps"]["free"]
    totals = runtime["usage"]
    assert totals["tokens"] == 155 and totals["cost"] == 0.012 and totals["calls"] == 1  # exact: no float noise
    assert totals["steps_run"] == 3


def test_a_resume_continues_at_the_first_unfinished_step_and_reports_tokens_saved(repo):
    calls: list[str] = []
    healthy = [False]

    def llm(name: str, tokens: int):
        calls.append(name)
        sp.report_usage(tokens=tokens, cost=tokens / 1000)
        if name == "write" and not healthy[0]:
            raise ValueError("the model returned garbage")
        return f"{name} done"

    def agent(s):
        return [s.step(name, llm, name, tokens) for name, tokens in (("plan", 100), ("read", 250), ("write", 400))]

    first = sp.run(agent, "job", store=repo, schema=dict)
    assert first.status == sp.Status.FAILED
    assert (first.replayed_steps, first.tokens_saved) == (0, 0)
    healthy[0] = True
    second = sp.run(agent, "job", store=repo, schema=dict)
    assert second.status == sp.Status.COMPLETED
    assert second.value == ["plan done", "read done", "write done"]
    assert calls == ["plan", "read", "write", "write"]
    assert second.replayed_steps == 2
    assert second.tokens_saved == 350
    assert second.cost_saved == 0.35  # 0.1 + 0.25 summed without float noise


def test_a_run_killed_mid_step_continues_at_that_step(repo):
    calls: list[str] = []
    kill_in = ["step3"]

    def work(name):
        calls.append(name)
        if kill_in and name == kill_in[0]:
            kill_in.clear()
            raise KeyboardInterrupt  # not an Exception: nothing is recorded on the way out, like a kill
        return name

    def agent(s):
        return [s.step(f"step{i}", work, f"step{i}") for i in range(1, 5)]

    with pytest.raises(KeyboardInterrupt):
        sp.run(agent, "job", store=repo, schema=dict)
    head = repo.load("job")
    assert head.step == "step2" and head.status == sp.Status.RUNNING
    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.value == ["step1", "step2", "step3", "step4"]
    assert calls == ["step1", "step2", "step3", "step3", "step4"]
    assert result.replayed_steps == 2
