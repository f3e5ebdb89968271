"""Stores and sessions the dashboard tests share: one store per kind (directory, SQLite, PostgreSQL) and a small
fleet of sessions in every state a person has to act on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from services import fresh_name, postgres_url, with_query

import safepoint as sp

HOSTILE = "<script>alert('owned')</script>"


class Crash(BaseException):
    """Stands for the process dying mid-call (not an Exception: nothing catches it on the way out)."""


def store_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh store URL of `kind`; a PostgreSQL schema is dropped afterwards."""
    if kind == "file":
        yield str(tmp_path / "store")
    elif kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        import psycopg

        base, schema = postgres_url(), fresh_name("dash")
        try:
            yield with_query(base, schema=schema)
        finally:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fleet(repo: sp.Repository) -> None:
    """waiting (a yes/no question), asking (an object question), doubt (an effect in doubt), broken (failed),
    hostile (a state value, tag and step holding markup), done (completed)."""
    with repo.session("waiting", agent="writer", tags=["nightly"]) as s:
        s.state.mission.goal = "write the report"
        s.save("draft")
        s.state.data["draft"] = "first version"
        s.save("revise")
        with pytest.raises(sp.Suspended):
            s.wait_for("approve", prompt="Publish the report?", schema=bool)
    with repo.session("asking", agent="planner") as s:
        s.save("plan")
        schema = {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
        }
        with pytest.raises(sp.Suspended):
            s.wait_for("trip", prompt="Where to, and for how long?", schema=schema)
    with repo.session("doubt", agent="mailer") as s:
        s.save("compose")

        def send_mail() -> str:
            raise Crash("the process died while the mail was being sent")

        with pytest.raises(Crash):
            s.effect("email:42", send_mail)
    with repo.session("broken", agent="writer") as s:
        s.save("fetch")
        s.runtime["error"] = {"error": "RuntimeError: the source is gone"}
        s.save("fetch", status=sp.Status.FAILED)
    with repo.session("hostile", agent="writer", tags=[HOSTILE]) as s:
        s.state.data["note"] = HOSTILE
        s.save(HOSTILE)
    with repo.session("done", agent="planner") as s:
        s.save("plan")
        s.save("completed", status=sp.Status.COMPLETED)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
