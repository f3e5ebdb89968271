"""Observability: OpenTelemetry spans (recorded with the SDK's in-memory exporter) and structured log events for
runs, steps, effects, waits and saves, on a real directory store; and that all of it is a no-op without the
`opentelemetry` package."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import safepoint as sp

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-proj-" + "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2rS5uX8"  # an OpenAI key's shape
STATE_VALUE = "the-private-draft-text"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture()
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test: the SDK provider is set once per process (OpenTelemetry allows one)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    if not getattr(provider, "_safepoint_test", False):  # once, also on a provider another test module set
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))  # type: ignore[attr-defined]
        provider._safepoint_test = True  # type: ignore[attr-defined]
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture()
def repo(tmp_path: Path) -> sp.Repository:
    return sp.open(tmp_path / "store")


def draft_outline() -> str:
    sp.report_usage(tokens=120, cost=0.25)
    return f"outline {STATE_VALUE}"


@sp.agent("traced-writer")
def writer(s: sp.Session) -> str:
    s.state.data["draft"] = STATE_VALUE
    outline = s.step("outline", draft_outline)
    s.effect("email:42", lambda: {"sent": outline})
    approved = s.wait_for("approve", prompt="Approve the outline?", schema=bool)
    s.step("publish", lambda: f"published: {approved}")
    return "done"


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def children(finished: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    """Names of `parent`'s direct children, in the order they started."""
    kids = [s for s in finished if s.parent is not None and s.parent.span_id == parent.context.span_id]
    return [s.name for s in sorted(kids, key=lambda s: s.start_time)]


def test_a_run_that_waits_then_resumes_records_its_span_tree(repo: sp.Repository, spans: InMemorySpanExporter) -> None:
    assert sp.run(writer, "w1", store=repo).status == sp.Status.WAITING
    first = spans.get_finished_spans()
    [run] = by_name(first, "safepoint.run")
    assert run.parent is None
    assert dict(run.attributes) == {
        "safepoint.session.id": "w1",
        "safepoint.agent": "traced-writer",
        "safepoint.run.resumed": False,
        "safepoint.status": "waiting",
        "safepoint.seq": 4,
        "safepoint.run.replayed_steps": 0,
        "safepoint.input.name": "approve",
    }
    assert run.status.status_code == StatusCode.UNSET  # waiting for a human is no error
    assert children(first, run) == ["safepoint.step", "safepoint.effect", "safepoint.wait_for"]
    [step] = by_name(first, "safepoint.step")
    assert dict(step.attributes) == {
        "safepoint.session.id": "w1",
        "safepoint.step.name": "outline",
        "safepoint.step.outcome": "executed",
        "safepoint.step.attempts": 1,
        "safepoint.usage.tokens": 120,
        "safepoint.usage.cost": 0.25,
    }
    assert children(first, step) == ["safepoint.save"]  # a step's save nests under the step
    [effect] = by_name(first, "safepoint.effect")
    assert effect.attributes["safepoint.effect.key"] == "email:42"
    assert effect.attributes["safepoint.effect.outcome"] == "executed"
    assert effect.attributes["safepoint.effect.attempt"] == 1
    assert children(first, effect) == ["safepoint.save", "safepoint.save"]  # the intent, then the result
    [wait] = by_name(first, "safepoint.wait_for")
    assert wait.attributes["safepoint.input.name"] == "approve"
    assert wait.attributes["safepoint.input.outcome"] == "suspended"
    assert wait.status.status_code == StatusCode.UNSET and not wait.events  # Suspended is not recorded as an error
    assert children(first, wait) == ["safepoint.save"]
    saves = sorted(by_name(first, "safepoint.save"), key=lambda s: s.attributes["safepoint.seq"])
    assert [s.attributes["safepoint.seq"] for s in saves] == [1, 2, 3, 4]
    assert [s.attributes["safepoint.status"] for s in saves] == ["running", "running", "running", "waiting"]
    assert all(s.attributes["safepoint.store"] == "file" and s.attributes["safepoint.save.bytes"] > 0 for s in saves)
    assert {s.context.trace_id for s in first} == {run.context.trace_id}  # one trace for the whole run

    spans.clear()
    repo.send("w1", "approve", True)
    [answer] = spans.get_finished_spans()  # delivering an answer is a save of its own, outside any run
    assert (answer.name, answer.parent, answer.attributes["safepoint.seq"]) == ("safepoint.save", None, 5)

    spans.clear()
    result = sp.run(writer, "w1", store=repo)
    assert result.status == sp.Status.COMPLETED
    second = spans.get_finished_spans()
    [run] = by_name(second, "safepoint.run")
    assert run.attributes["safepoint.run.resumed"] is True
    assert run.attributes["safepoint.status"] == "completed"
    assert run.attributes["safepoint.run.replayed_steps"] == 1
    assert children(second, run) == [
        "safepoint.step",
        "safepoint.effect",
        "safepoint.wait_for",
        "safepoint.step",
        "safepoint.save",  # the completed checkpoint
    ]
    outline, publish = sorted(by_name(second, "safepoint.step"), key=lambda s: s.start_time)
    assert outline.attributes["safepoint.step.outcome"] == "replayed"
    assert outline.attributes["safepoint.usage.tokens"] == 120  # what the replay saved
    assert children(second, outline) == []  # a replay writes nothing
    assert (publish.attributes["safepoint.step.name"], publish.attributes["safepoint.step.outcome"]) == (
        "publish",
        "executed",
    )
    [effect] = by_name(second, "safepoint.effect")
    assert effect.attributes["safepoint.effect.outcome"] == "replayed" and children(second, effect) == []
    [wait] = by_name(second, "safepoint.wait_for")
    assert wait.attributes["safepoint.input.outcome"] == "answered"
    for span in second:
        assert STATE_VALUE not in json.dumps(dict(span.attributes))


def refuse() -> None:
    raise ValueError(f"upstream refused key {SECRET}")


@sp.agent("traced-failer")
def failer(s: sp.Session) -> None:
    s.step("fetch", lambda: "fetched")
    s.step("call", refuse)


def test_a_failing_step_sets_error_status_on_the_step_and_the_run(
    repo: sp.Repository, spans: InMemorySpanExporter
) -> None:
    assert sp.run(failer, "f1", store=repo).status == sp.Status.FAILED
    finished = spans.get_finished_spans()
    [run] = by_name(finished, "safepoint.run")
    assert run.attributes["safepoint.status"] == "failed"
    assert run.status.status_code == StatusCode.ERROR
    ok, failed = sorted(by_name(finished, "safepoint.step"), key=lambda s: s.start_time)
    assert ok.status.status_code == StatusCode.UNSET
    assert failed.status.status_code == StatusCode.ERROR
    assert (failed.attributes["safepoint.step.outcome"], failed.attributes["safepoint.step.attempts"]) == ("failed", 1)
    assert "StepFailed" in failed.status.description and "ValueError: upstream refused key" in failed.status.description
    [event] = failed.events
    assert event.name == "exception" and event.attributes["exception.type"].endswith("StepFailed")
    assert "ValueError" in event.attributes["exception.stacktrace"]  # the cause is in the recorded traceback
    [save] = [finished_span for finished_span in finished if finished_span.parent == failed.context]
    assert save.attributes["safepoint.status"] == "failed"  # saved as failed, under the failing step
    for span in finished:  # the credential in the error text never reaches the tracing backend
        texts = [span.status.description or "", json.dumps(dict(span.attributes))]
        texts += [json.dumps(dict(e.attributes)) for e in span.events]
        assert SECRET not in "".join(texts)
    assert "[redacted:openai]" in event.attributes["exception.message"]


def test_retries_are_span_events_and_warnings(
    repo: sp.Repository, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("the model timed out")
        return "ok"

    @sp.agent("traced-flaky")
    def flaky_agent(s: sp.Session) -> str:
        return s.step("ask", flaky, retry=sp.RetryPolicy(attempts=3, sleep=lambda seconds: None))

    with caplog.at_level(logging.WARNING, logger="safepoint"):
        assert sp.run(flaky_agent, "r1", store=repo).status == sp.Status.COMPLETED
    [step] = by_name(spans.get_finished_spans(), "safepoint.step")
    assert step.attributes["safepoint.step.attempts"] == 3
    assert [(e.name, e.attributes["safepoint.step.attempt"]) for e in step.events] == [
        ("safepoint.retry", 1),
        ("safepoint.retry", 2),
    ]
    assert step.events[0].attributes["safepoint.error"] == "TimeoutError: the model timed out"
    retries = [r for r in caplog.records if r.name == "safepoint.runtime" and r.outcome == "retrying"]
    assert [(r.levelno, r.session, r.step, r.attempt) for r in retries] == [
        (logging.WARNING, "r1", "ask", 1),
        (logging.WARNING, "r1", "ask", 2),
    ]


def test_an_effect_in_doubt_is_traced_and_warned(
    repo: sp.Repository, spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    def crash() -> None:
        raise KeyboardInterrupt  # the process stops mid-call: the intent is saved, the result never is

    @sp.agent("traced-doubt")
    def doubtful(s: sp.Session) -> object:
        return s.effect("charge:7", crash)

    with pytest.raises(KeyboardInterrupt):
        sp.run(doubtful, "d1", store=repo)
    [effect] = by_name(spans.get_finished_spans(), "safepoint.effect")
    assert effect.status.status_code == StatusCode.ERROR  # interrupted mid-call
    spans.clear()
    with caplog.at_level(logging.INFO, logger="safepoint"):
        assert sp.run(doubtful, "d1", store=repo).status == sp.Status.WAITING
    finished = spans.get_finished_spans()
    [effect] = by_name(finished, "safepoint.effect")
    assert effect.attributes["safepoint.effect.outcome"] == "in_doubt"
    assert children(finished, effect) == ["safepoint.wait_for"]  # a human is asked
    [wait] = by_name(finished, "safepoint.wait_for")
    assert wait.attributes["safepoint.input.name"] == "effect:charge:7"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (warning.name, warning.session, warning.effect, warning.outcome) == (
        "safepoint.runtime",
        "d1",
        "charge:7",
        "in_doubt",
    )


def test_log_events_carry_their_fields_and_no_state(repo: sp.Repository, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="safepoint"):
        sp.run(writer, "l1", store=repo)
        repo.send("l1", "approve", True)
        sp.run(writer, "l1", store=repo)
        sp.run(failer, "l2", store=repo)
    records = [r for r in caplog.records if r.name.startswith("safepoint.")]
    runs = [(r.levelname, r.getMessage()) for r in records if r.levelno >= logging.INFO]
    assert runs == [
        ("INFO", "session 'l1': run started (agent 'traced-writer')"),
        ("INFO", "session 'l1': run suspended, waiting for approve"),
        ("INFO", "session 'l1': run resumed (agent 'traced-writer')"),
        ("INFO", "session 'l1': run stopped, completed at seq 7"),
        ("INFO", "session 'l2': run started (agent 'traced-failer')"),
        ("ERROR", "session 'l2': step 'call' failed after 1 attempt(s): ValueError: upstream refused key "
                  "[redacted:openai]"),
        ("ERROR", "session 'l2': run failed at seq 2"),
    ]  # fmt: skip
    suspended = records[[r.getMessage() for r in records].index("session 'l1': run suspended, waiting for approve")]
    assert (suspended.session, suspended.agent, suspended.status, suspended.seq) == (
        "l1",
        "traced-writer",
        "waiting",
        4,
    )
    saves = [r for r in records if r.name == "safepoint.store"]
    assert [r.seq for r in saves if r.session == "l1"] == [1, 2, 3, 4, 5, 6, 7]
    assert all(r.levelno == logging.DEBUG and r.bytes > 0 and r.status for r in saves)
    assert {r.step for r in saves if r.session == "l1"} >= {"outline", "effect email:42", "answered approve"}
    steps = [(r.step, r.outcome) for r in records if r.name == "safepoint.runtime" and r.levelno == logging.DEBUG]
    assert steps == [("outline", "executed"), ("outline", "replayed"), ("publish", "executed"), ("fetch", "executed")]
    for record in records:  # neither the state, nor step outputs, nor the credential in an error
        text = record.getMessage() + json.dumps({k: str(v) for k, v in vars(record).items()})
        assert STATE_VALUE not in text and SECRET not in text


def run_child(code: str, *args: str, block_otel: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter, where (unless `block_otel` is False) `import opentelemetry` fails as if
    the package were absent."""
    prelude = "import sys\n" + ("sys.modules['opentelemetry'] = None  # as if not installed\n" if block_otel else "")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SAFEPOINT_LOG", None)
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_everything_works_without_opentelemetry(tmp_path: Path) -> None:
    child = run_child(
        """
        import safepoint as sp
        from safepoint.core import tracing

        assert tracing._trace is None and tracing.span("safepoint.run", {}) is tracing.NO_SPAN

        @sp.agent("plain")
        def plain(s):
            s.step("one", lambda: 1)
            s.effect("e", lambda: 2)
            return s.wait_for("go", prompt="Go?", schema=bool)

        repo = sp.open(sys.argv[1])
        assert sp.run(plain, "n1", store=repo).status == sp.Status.WAITING
        repo.send("n1", "go", True)
        result = sp.run(plain, "n1", store=repo)
        try:
            sp.run(lambda s: s.step("bad", lambda: 1 / 0), "n2", store=repo)
        except Exception as exc:
            raise SystemExit(f"a failing step raised {exc!r}")
        print(result.status, result.value, repo.info("n2").head.status)
        """,
        str(tmp_path / "store"),
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == ["completed", "True", "failed"]


def test_spans_start_recording_once_the_program_sets_a_tracer_provider(tmp_path: Path) -> None:
    child = run_child(
        """
        import safepoint as sp
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from safepoint.core import tracing

        repo = sp.open(sys.argv[1])
        with repo.session("before") as s:
            s.step("one", lambda: 1)
        assert tracing.span("safepoint.step", {}) is tracing.NO_SPAN  # the API alone: no provider, nothing made
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)  # after safepoint was imported and had saved
        with repo.session("after") as s:
            s.step("one", lambda: 1)
        print(sorted(span.name for span in exporter.get_finished_spans()))
        """,
        str(tmp_path / "store"),
        block_otel=False,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "['safepoint.save', 'safepoint.step']"


def test_the_cli_prints_json_log_lines_to_stderr(tmp_path: Path) -> None:
    store = tmp_path / "store"
    setup = run_child(
        """
        import safepoint as sp
        asker = sp.agent("asker")(lambda s: s.wait_for("go", prompt="Go?", schema=bool))
        for name in ("c1", "c2", "c3"):
            sp.run(asker, name, store=sys.argv[1])
        """,
        str(store),
    )
    assert setup.returncode == 0, setup.stderr
    cli = "from safepoint.cli import main\nsys.argv[0] = 'safepoint'\nmain()\n"
    sent = run_child(cli, "send", "c1", "go", "true", "--store", str(store), "--log-level", "debug", "--log-json")
    assert sent.returncode == 0, sent.stderr
    lines = [json.loads(line) for line in sent.stderr.splitlines() if line.startswith("{")]  # beside send's note
    [save] = [line for line in lines if line["logger"] == "safepoint.store"]
    assert save["level"] == "debug" and save["message"] == f"session 'c1': saved seq 2 ({save['bytes']} bytes)"
    assert (save["session"], save["seq"], save["step"], save["status"]) == ("c1", 2, "answered go", "waiting")

    quiet = run_child(cli, "--store", str(store), "--log-level", "warning", "send", "c2", "go", "true")
    assert quiet.returncode == 0, quiet.stderr
    assert "saved seq" not in quiet.stderr  # below the level asked for

    from_env = run_child(
        "import os; os.environ['SAFEPOINT_LOG'] = 'debug,json'\n" + cli,
        "--store",
        str(store),
        "send",
        "c3",
        "go",
        "true",
    )
    assert from_env.returncode == 0, from_env.stderr
    assert [json.loads(line)["seq"] for line in from_env.stderr.splitlines() if line.startswith("{")] == [2]

    bad = run_child("import os; os.environ['SAFEPOINT_LOG'] = 'loud'\n" + cli, "--store", str(store), "ls")
    assert bad.returncode != 0 and "SAFEPOINT_LOG='loud'" in bad.stderr


def test_the_example_of_docs_observability_runs_and_prints_its_spans() -> None:
    text = (ROOT / "docs" / "observability.md").read_text()
    [example] = [block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "TracerProvider" in block]
    child = run_child(example, block_otel=False)
    assert child.returncode == 0, child.stderr
    names = re.findall(r'"name": "(safepoint\.[a-z_]+)"', child.stdout)  # ConsoleSpanExporter's JSON
    assert names.count("safepoint.run") == 2
    assert names.count("safepoint.save") == 7  # 4 in the first run, the answer, 2 in the second
    assert {"safepoint.step", "safepoint.effect", "safepoint.wait_for"} <= set(names)
