"""LangGraph's own checkpointer conformance suite (langgraph-checkpoint-conformance) against SafepointSaver.

The package registers a saver factory (`checkpointer_test`), detects which capabilities the saver overrides and
runs each capability's tests on a fresh saver; `validate` returns a report instead of raising, so the test below
fails on anything short of FULL: every capability (base and extended) detected and every one of its tests passed.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES  # noqa: E402
from langgraph.checkpoint.conformance.report import ProgressCallbacks  # noqa: E402

from safepoint.integrations.langgraph import SafepointSaver  # noqa: E402

SUITE_SIZE = 81  # tests in langgraph-checkpoint-conformance 0.0.2, base and extended


@pytest.mark.parametrize("kind", ["memory", "directory", "sqlite"])
def test_conformance_suite_reports_full(kind, tmp_path):
    counter = itertools.count()
    failures: list[str] = []

    def url() -> str:  # a fresh, empty store for every capability suite
        n = next(counter)
        return {
            "memory": "memory://",
            "directory": str(tmp_path / f"store-{n}"),
            "sqlite": f"sqlite:///{tmp_path}/{n}.db",
        }[kind]

    @checkpointer_test(name=f"SafepointSaver ({kind})")
    async def saver():
        s = SafepointSaver(url())
        yield s
        s.store.close()

    def on_result(capability: str, test: str, passed: bool, error: str | None) -> None:
        if not passed:
            failures.append(f"{capability}.{test}:\n{error}")

    report = asyncio.run(validate(saver, progress=ProgressCallbacks(on_test_result=on_result)))

    assert not failures, "\n\n".join(failures)
    assert report.conformance_level() == "FULL"
    assert {name for name, result in report.results.items() if result.detected} == {c.value for c in ALL_CAPABILITIES}
    assert all(result.passed is True for result in report.results.values())
    assert sum(result.tests_passed for result in report.results.values()) == SUITE_SIZE
    assert sum(result.tests_failed for result in report.results.values()) == 0
