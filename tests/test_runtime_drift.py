"""Configuration drift: the model setup is recorded; a change on resume is warned about, refused or accepted."""

from __future__ import annotations

import warnings

import pytest

import safepoint as sp
from safepoint.runtime.drift import ConfigDriftWarning

BASE = {"model": "gpt-4o", "temperature": 0.2, "prompts": {"system": "Be brief."}, "code_version": "1.4.0"}

CHANGES = {
    "model": ({"model": "gpt-4o-mini"}, "model 'gpt-4o' -> 'gpt-4o-mini'"),
    "temperature": ({"temperature": 0.7}, "temperature 0.2 -> 0.7"),
    "prompt": ({"prompts": {"system": "Be thorough."}}, "prompt 'system' changed"),
    "code_version": ({"code_version": "1.5.0"}, "code_version '1.4.0' -> '1.5.0'"),
}


@pytest.fixture
def repo():
    repo = sp.open("memory://")
    with repo.session("job", schema=dict) as s:
        assert s.configure(**BASE) == []
        s.save(step="configured")
    return repo


def test_the_first_configure_records_the_configuration_with_prompts_hashed(repo):
    config = repo.load("job").runtime["config"]
    assert {k: config[k] for k in ("model", "temperature", "code_version")} == {
        "model": "gpt-4o",
        "temperature": 0.2,
        "code_version": "1.4.0",
    }
    assert list(config["prompt_hashes"]) == ["system"]
    assert len(config["prompt_hashes"]["system"]) == 16
    assert "Be brief." not in repr(repo.load("job").runtime)
    assert "drift" not in repo.load("job").runtime


def test_the_same_configuration_is_no_drift(repo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with repo.session("job", schema=dict) as s:
            assert s.configure(**BASE, on_drift="refuse") == []
            s.save(step="again")
    assert "drift" not in repo.load("job").runtime


@pytest.mark.parametrize("name", CHANGES)
def test_a_change_is_warned_about_and_recorded(repo, name):
    change, described = CHANGES[name]
    with repo.session("job", schema=dict) as s:
        with pytest.warns(ConfigDriftWarning, match="session 'job'") as caught:
            changes = s.configure(**{**BASE, **change})
        s.save(step="resumed")
    assert changes == [described]
    assert described in str(caught[0].message)
    runtime = repo.load("job").runtime
    assert len(runtime["drift"]) == 1
    drift = runtime["drift"][0]
    assert drift["changes"] == [described] and drift["policy"] == "warn" and drift["seq"] == 1
    # The new configuration is what later resumes compare against.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with repo.session("job", schema=dict) as s:
            assert s.configure(**{**BASE, **change}) == []


def test_several_changes_are_reported_together(repo):
    with repo.session("job", schema=dict) as s:
        with pytest.warns(ConfigDriftWarning):
            changes = s.configure(model="o3", temperature=0.2, prompts={"planner": "Plan."}, code_version="1.4.0")
    assert changes == [
        "model 'gpt-4o' -> 'o3'",
        "prompt 'planner' added or removed",
        "prompt 'system' added or removed",
    ]


@pytest.mark.parametrize("name", CHANGES)
def test_refuse_raises_and_saves_nothing_new(repo, name):
    change, described = CHANGES[name]
    before = [c.seq for c in repo.history("job")]
    with repo.session("job", schema=dict) as s:
        with pytest.raises(sp.ConfigDrift, match="nothing was changed") as info:
            s.configure(**{**BASE, **change}, on_drift="refuse")
        assert described in str(info.value)
        assert "drift" not in s.runtime
    assert [c.seq for c in repo.history("job")] == before
    runtime = repo.load("job").runtime
    assert "drift" not in runtime
    assert runtime["config"]["model"] == "gpt-4o" and runtime["config"]["code_version"] == "1.4.0"


def test_refuse_in_a_run_stops_before_any_step(repo):
    calls: list[str] = []

    def agent(s):
        s.configure(**{**BASE, "model": "gpt-5"}, on_drift="refuse")
        return s.step("answer", lambda: calls.append("answer"))

    with pytest.raises(sp.ConfigDrift):
        sp.run(agent, "job", store=repo, schema=dict)
    assert calls == []
    runtime = repo.load("job").runtime
    assert (
        runtime["config"]["model"] == "gpt-4o" and "drift" not in runtime and "answer" not in runtime.get("steps", {})
    )


def test_accept_records_the_change_silently(repo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with repo.session("job", schema=dict) as s:
            changes = s.configure(**{**BASE, "temperature": 0.0}, on_drift="accept")
            s.save(step="accepted")
    assert changes == ["temperature 0.2 -> 0.0"]
    runtime = repo.load("job").runtime
    assert runtime["drift"][0]["policy"] == "accept" and runtime["drift"][0]["changes"] == changes
    assert runtime["config"]["temperature"] == 0.0


def test_an_unknown_policy_is_refused(repo):
    with repo.session("job", schema=dict) as s:
        with pytest.raises(ValueError, match="on_drift"):
            s.configure(**BASE, on_drift="ignore")


def test_drift_across_a_wait_is_recorded_in_the_final_checkpoint():
    repo = sp.open("memory://")
    model = ["gpt-4o"]

    def agent(s):
        s.configure(model=model[0], temperature=0.1, code_version="1")
        draft = s.step("draft", lambda: f"draft by {model[0]}")
        if not s.wait_for("approve", prompt="Approve the draft?", schema=bool):
            return "rejected"
        return s.step("final", lambda: f"{draft}, finished by {model[0]}")

    assert sp.run(agent, "job", store=repo, schema=dict).status == sp.Status.WAITING
    repo.send("job", "approve", True)
    model[0] = "gpt-4.1"
    with pytest.warns(ConfigDriftWarning, match="gpt-4.1"):
        result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.value == "draft by gpt-4o, finished by gpt-4.1"
    runtime = repo.load("job").runtime
    assert runtime["config"]["model"] == "gpt-4.1"
    assert [d["changes"] for d in runtime["drift"]] == [["model 'gpt-4o' -> 'gpt-4.1'"]]
