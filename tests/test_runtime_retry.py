"""Retries: transient failures retried with back-off and jitter (Retry-After a floor), the rest fail at once;
after the limit the session is failed with the error recorded, and a later run retries from that step."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest

import safepoint as sp
from safepoint.runtime.retry import is_transient, retry_after


class HTTPError(Exception):
    """What HTTP clients raise: a status code and the response headers on the exception."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status
        self.headers = headers or {}


class Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


class ClientError(Exception):
    """The other common shape: the status and headers live on `exc.response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"server said {response.status_code}")
        self.response = response


@pytest.fixture
def repo():
    return sp.open("memory://")


def failing(errors: list[BaseException], calls: list[str], value="ok"):
    """A step function raising each of `errors` in turn, then returning `value`."""
    queue = list(errors)

    def fn():
        calls.append("call")
        if queue:
            raise queue.pop(0)
        return value

    return fn


def policy(sleeps: list[float], **options) -> sp.RetryPolicy:
    return sp.RetryPolicy(sleep=sleeps.append, **{"attempts": 5, "initial": 0.5, "maximum": 4.0, **options})


TRANSIENT = [
    HTTPError(503),
    HTTPError(429),
    HTTPError(500),
    HTTPError(502),
    HTTPError(504),
    ClientError(Response(503, {})),
    TimeoutError("read timed out"),
    ConnectionResetError("connection reset by peer"),
]


@pytest.mark.parametrize("error", TRANSIENT, ids=lambda e: f"{type(e).__name__}-{e}")
def test_transient_errors_are_retried_with_waits_through_the_sleep_hook(repo, error):
    calls: list[str] = []
    sleeps: list[float] = []

    def agent(s):
        return s.step("call", failing([error, error], calls), retry=policy(sleeps))

    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.COMPLETED and result.value == "ok"
    assert len(calls) == 3 and len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0
    record = repo.load("job").runtime["steps"]["call"]
    assert record["status"] == "done" and record["attempts"] == 3


@pytest.mark.parametrize("error", [HTTPError(400), HTTPError(404), ValueError("bad input")], ids=str)
def test_permanent_errors_are_not_retried(repo, error):
    calls: list[str] = []
    sleeps: list[float] = []

    def agent(s):
        return s.step("call", failing([error], calls), retry=policy(sleeps))

    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.FAILED
    assert calls == ["call"] and sleeps == []
    runtime = repo.load("job").runtime
    assert runtime["steps"]["call"]["attempts"] == 1
    assert str(error) in runtime["steps"]["call"]["error"]


def test_back_off_grows_exponentially_with_jitter_within_bounds():
    waits: list[list[float]] = []
    for _ in range(60):
        sleeps: list[float] = []
        retry = sp.RetryPolicy(attempts=6, initial=1.0, maximum=10.0, sleep=sleeps.append)
        with pytest.raises(HTTPError):
            retry.call(failing([HTTPError(503)] * 6, []), (), {}, lambda attempt, exc: None)
        assert len(sleeps) == 5
        waits.append(sleeps)
    bounds = [1.0, 2.0, 4.0, 8.0, 10.0]  # initial * 2**n, capped at maximum
    for sleeps in waits:
        assert all(0 <= wait <= bound for wait, bound in zip(sleeps, bounds, strict=True))
    by_attempt = list(zip(*waits, strict=True))
    assert len(set(by_attempt[0])) > 30  # jittered, not a fixed schedule
    for n in range(1, 5):  # later attempts wait longer than an earlier attempt ever could
        assert max(by_attempt[n]) > bounds[n - 1]


def test_retry_after_seconds_is_a_floor(repo):
    calls: list[str] = []
    sleeps: list[float] = []
    errors = [HTTPError(429, {"Retry-After": "7"}), ClientError(Response(503, {"retry-after": "3"}))]

    def agent(s):
        return s.step("call", failing(errors, calls), retry=policy(sleeps, initial=0.01, maximum=0.05))

    assert sp.run(agent, "job", store=repo, schema=dict).status == sp.Status.COMPLETED
    assert sleeps == [7.0, 3.0]


def test_a_retry_after_attribute_is_honoured():
    error = HTTPError(429)
    error.retry_after = 2.5
    sleeps: list[float] = []
    result, attempts = policy(sleeps, initial=0.01, maximum=0.05).call(
        failing([error], []), (), {}, lambda attempt, exc: None
    )
    assert (result, attempts) == ("ok", 2) and sleeps == [2.5]


def test_retry_after_as_an_http_date_is_honoured(repo):
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    calls: list[str] = []
    sleeps: list[float] = []

    def agent(s):
        return s.step(
            "call", failing([HTTPError(503, {"Retry-After": later})], calls), retry=policy(sleeps, maximum=1.0)
        )

    assert sp.run(agent, "job", store=repo, schema=dict).value == "ok"
    assert len(sleeps) == 1 and 28.0 <= sleeps[0] <= 30.0


def test_a_retry_after_in_the_past_or_unreadable_falls_back_to_the_back_off():
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert retry_after(HTTPError(503, {"Retry-After": past})) == 0.0
    assert retry_after(HTTPError(503, {"Retry-After": "soon"})) is None
    assert retry_after(HTTPError(503)) is None
    sleeps: list[float] = []
    policy(sleeps, initial=0.5, maximum=0.5).call(
        failing([HTTPError(503, {"Retry-After": past})], []), (), {}, lambda attempt, exc: None
    )
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5


def test_after_the_limit_the_session_fails_and_a_later_run_retries_that_step(repo):
    calls: list[str] = []
    sleeps: list[float] = []
    service_up = [False]

    def flaky():
        calls.append("call")
        if not service_up[0]:
            raise HTTPError(503)
        return "answer"

    def agent(s):
        plan = s.step("plan", lambda: (calls.append("plan"), "plan")[1])
        answer = s.step("call", flaky)
        return [plan, answer, s.step("write", lambda: (calls.append("write"), "report")[1])]

    result = sp.run(agent, "job", store=repo, schema=dict, retry=policy(sleeps, attempts=3))
    assert result.status == sp.Status.FAILED
    assert "'call'" in result.error and "3 attempt" in result.error and "503" in result.error
    assert calls == ["plan", "call", "call", "call"] and len(sleeps) == 2
    head = repo.load("job")
    assert head.status == sp.Status.FAILED and head.step == "call"
    record = head.runtime["steps"]["call"]
    assert record["status"] == "failed" and record["attempts"] == 3 and "HTTP 503" in record["error"]
    assert head.runtime["error"]["step"] == "call" and "HTTP 503" in head.runtime["error"]["error"]
    assert head.runtime["error"]["attempts"] == 3
    assert head.runtime["steps"]["plan"]["status"] == "done"

    service_up[0] = True
    calls.clear()
    again = sp.run(agent, "job", store=repo, schema=dict, retry=policy(sleeps, attempts=3))
    assert again.status == sp.Status.COMPLETED and again.value == ["plan", "answer", "report"]
    assert calls == ["call", "write"]  # not the earlier step
    runtime = repo.load("job").runtime
    assert runtime["steps"]["call"]["status"] == "done" and runtime["steps"]["call"]["attempts"] == 4
    assert "error" not in runtime


def test_a_session_default_policy_and_a_step_policy(repo):
    calls: list[str] = []
    session_sleeps: list[float] = []
    step_sleeps: list[float] = []

    def agent(s):
        a = s.step("a", failing([HTTPError(502)], calls))
        b = s.step("b", failing([HTTPError(502)] * 2, calls), retry=policy(step_sleeps))
        return [a, b]

    result = sp.run(agent, "job", store=repo, schema=dict, retry=policy(session_sleeps))
    assert result.value == ["ok", "ok"]
    assert len(session_sleeps) == 1 and len(step_sleeps) == 2


def test_without_a_policy_nothing_is_retried(repo):
    calls: list[str] = []

    def agent(s):
        return s.step("call", failing([HTTPError(503)], calls))

    assert sp.run(agent, "job", store=repo, schema=dict).status == sp.Status.FAILED
    assert calls == ["call"]


def test_a_decorated_step_with_a_retry_policy(repo):
    calls: list[str] = []
    sleeps: list[float] = []

    failing_once = failing([TimeoutError("slow")], calls, value="page")

    @sp.step("fetch", retry=policy(sleeps))
    def fetch():
        return failing_once()

    def agent(s):
        return fetch()

    assert sp.run(agent, "job", store=repo, schema=dict).value == "page"
    assert len(calls) == 2 and len(sleeps) == 1
    assert repo.load("job").runtime["steps"]["fetch#1"]["attempts"] == 2


def test_a_custom_transient_classifier_is_honoured(repo):
    calls: list[str] = []
    sleeps: list[float] = []

    def only_value_errors(exc: BaseException) -> bool:
        return isinstance(exc, ValueError)

    retry = policy(sleeps, transient=only_value_errors)

    def agent(s):
        first = s.step("parse", failing([ValueError("flaky parse")] * 2, calls), retry=retry)
        return [first, s.step("call", failing([HTTPError(503)], calls), retry=retry)]

    result = sp.run(agent, "job", store=repo, schema=dict)
    assert result.status == sp.Status.FAILED
    assert calls == ["call"] * 4  # parse: 3 tries; call: a 503 is permanent under this classifier
    steps = repo.load("job").runtime["steps"]
    assert steps["parse"]["attempts"] == 3 and steps["call"]["attempts"] == 1
    assert len(sleeps) == 2


def test_the_default_classification():
    assert all(is_transient(error) for error in TRANSIENT)
    assert not any(is_transient(e) for e in (HTTPError(400), HTTPError(404), ValueError(), KeyError("k")))
