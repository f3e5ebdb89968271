"""Schema versions: old checkpoints upgrade on read, the stored ones stay as written, newer ones refuse."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

import safepoint as sp
from safepoint import Migrations
from safepoint.errors import MigrationError, SafepointError, SchemaTooNew


def v3_migrations(calls: list[str] | None = None) -> Migrations:
    migrations = Migrations()

    @migrations.register(from_version=1)
    def add_priority(state: dict[str, Any]) -> dict[str, Any]:  # 1 -> 2
        if calls is not None:
            calls.append("1->2")
        state["data"]["priority"] = "normal"
        return state

    @migrations.register(from_version=2)
    def split_name(state: dict[str, Any]) -> dict[str, Any]:  # 2 -> 3
        if calls is not None:
            calls.append("2->3")
        first, _, last = state["data"].pop("name").partition(" ")
        state["data"]["first"], state["data"]["last"] = first, last
        return state

    return migrations


V1_STATE = {"data": {"name": "Ada Lovelace", "notes": ["n1"]}}
V3_STATE = {"data": {"first": "Ada", "last": "Lovelace", "notes": ["n1"], "priority": "normal"}}


@pytest.fixture
def repo() -> sp.Repository:
    repo = sp.open("memory://")
    s = repo.session("old-run", schema=dict, schema_version=1)
    s.state.update(V1_STATE)
    s.save(step="v1")
    return repo


def test_old_checkpoint_upgrades_on_read(repo: sp.Repository) -> None:
    calls: list[str] = []
    s = repo.session("old-run", schema=dict, schema_version=3, migrations=v3_migrations(calls))
    assert calls == ["1->2", "2->3"]
    assert not s.is_new and s.seq == 1
    assert s.state == V3_STATE
    assert s.schema_version == 3


def stored_except_leases(repo: sp.Repository) -> dict[str, bytes | None]:
    # Opening a session takes (and closing releases) its lease, which rewrites `leases/<id>`: that record is
    # meant to change; every other key must stay byte for byte as it was.
    return {key: repo.store.get(key) for key in repo.store.list("") if not key.startswith("leases/")}


def test_stored_checkpoint_is_untouched_by_the_upgrade(repo: sp.Repository) -> None:
    before = stored_except_leases(repo)
    with repo.session("old-run", schema=dict, schema_version=3, migrations=v3_migrations()):
        pass
    raw = repo.load("old-run")
    assert raw.state == V1_STATE and raw.schema_version == 1
    assert stored_except_leases(repo) == before


def test_saving_after_an_upgrade_writes_the_new_version(repo: sp.Repository) -> None:
    s = repo.session("old-run", schema=dict, schema_version=3, migrations=v3_migrations())
    s.state["data"]["notes"].append("n2")
    checkpoint = s.save(step="v3")
    assert checkpoint.seq == 2 and checkpoint.parent == 1
    assert checkpoint.schema_version == 3 and checkpoint.meta["migrated_from"] == 1
    stored = repo.load("old-run")
    assert stored.schema_version == 3 and stored.meta["migrated_from"] == 1
    assert stored.state == {"data": {**V3_STATE["data"], "notes": ["n1", "n2"]}}
    assert repo.load("old-run", 1).state == V1_STATE and repo.load("old-run", 1).schema_version == 1
    follow = s.save(step="again")
    assert follow.schema_version == 3 and "migrated_from" not in follow.meta
    s.close()
    calls: list[str] = []
    again = repo.session("old-run", schema=dict, schema_version=3, migrations=v3_migrations(calls))
    assert calls == [] and again.state == stored.state


def test_migrations_registered_on_the_repository_apply(repo: sp.Repository) -> None:
    upgraded = sp.open(repo.store, migrations=v3_migrations())
    assert upgraded.session("old-run", schema=dict, schema_version=3).state == V3_STATE


def test_a_missing_step_names_the_versions(repo: sp.Repository) -> None:
    partial = Migrations()

    @partial.register(from_version=1)
    def only_first(state: dict[str, Any]) -> dict[str, Any]:
        return state

    with pytest.raises(MigrationError) as caught:
        repo.session("old-run", schema=dict, schema_version=3, migrations=partial)
    message = str(caught.value)
    assert "version 1" in message and "3" in message and "from version 2 to 3" in message
    assert "from_version=2" in message and "old-run" in message
    assert isinstance(caught.value, SafepointError)
    assert repo.load("old-run").state == V1_STATE and repo.info("old-run").seq == 1


def test_a_failing_step_names_itself_and_keeps_the_cause(repo: sp.Repository) -> None:
    broken = Migrations()

    @broken.register(from_version=1)
    def explode(state: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("missing field")

    with pytest.raises(MigrationError, match="explode") as caught:
        repo.session("old-run", schema=dict, schema_version=2, migrations=broken)
    assert isinstance(caught.value.__cause__, KeyError)
    assert "1 -> 2" in str(caught.value)


def test_a_step_must_return_the_state(repo: sp.Repository) -> None:
    forgetful = Migrations()

    @forgetful.register(from_version=1)
    def returns_nothing(state: dict[str, Any]) -> None:  # type: ignore[return]
        state["data"]["x"] = 1

    with pytest.raises(MigrationError, match="returns_nothing"):
        repo.session("old-run", schema=dict, schema_version=2, migrations=forgetful)  # type: ignore[arg-type]


def test_registering_twice_or_from_a_bad_version_is_refused() -> None:
    migrations = v3_migrations()
    with pytest.raises(MigrationError, match="already registered"):
        migrations.register(from_version=1)(lambda state: state)
    for bad in (0, -1, "1", 1.0):
        with pytest.raises(MigrationError):
            migrations.register(from_version=bad)  # type: ignore[arg-type]


def test_a_checkpoint_newer_than_the_code_refuses_to_load() -> None:
    repo = sp.open("memory://")
    with repo.session("future", schema=dict, schema_version=5) as s:
        s.state["x"] = 1
        s.save()
    with pytest.raises(SchemaTooNew) as caught:
        repo.session("future", schema=dict, schema_version=3, migrations=v3_migrations())
    message = str(caught.value)
    assert "5" in message and "3" in message and "future" in message
    assert isinstance(caught.value, SafepointError)
    assert repo.load("future").schema_version == 5 and repo.info("future").seq == 1


class ProfileV1(BaseModel):
    SCHEMA_VERSION: ClassVar[int] = 1
    name: str = ""


class ProfileV2(BaseModel):
    SCHEMA_VERSION: ClassVar[int] = 2
    first: str = ""
    last: str = ""


class ProfileV0(BaseModel):
    SCHEMA_VERSION: ClassVar[int] = 0
    name: str = ""


def test_schema_version_is_read_from_the_schema_class() -> None:
    repo = sp.open("memory://")
    old = repo.session("profile", schema=ProfileV1)
    old.state.name = "Grace Hopper"
    assert old.save().schema_version == 1
    old.close()

    migrations = Migrations()

    @migrations.register(from_version=1)
    def split(state: dict[str, Any]) -> dict[str, Any]:
        first, _, last = state.pop("name").partition(" ")
        return {**state, "first": first, "last": last}

    new = repo.session("profile", schema=ProfileV2, migrations=migrations)
    assert isinstance(new.state, ProfileV2) and new.state == ProfileV2(first="Grace", last="Hopper")
    checkpoint = new.save()
    assert checkpoint.schema_version == 2 and checkpoint.meta["migrated_from"] == 1
    new.close()
    assert repo.load("profile", 1).state == {"name": "Grace Hopper"}

    with pytest.raises(SchemaTooNew):
        repo.session("profile", schema=ProfileV1)
    with pytest.raises(SchemaTooNew):
        repo.session("profile", schema=ProfileV0)


def test_explicit_schema_version_overrides_the_class_attribute() -> None:
    repo = sp.open("memory://")
    s = repo.session("override", schema=ProfileV1, schema_version=4)
    assert s.save().schema_version == 4
