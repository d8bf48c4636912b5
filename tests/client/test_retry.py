"""Retry counts and waits (injected sleep), Retry-After forms, and the non-idempotent finish."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging

import pytest

import stacksapi
from stacksapi import Client, RetryPolicy
from stacksapi._retry import decide, parse_retry_after

from ._server import ScriptedServer
from .conftest import SleepRecorder

JOB = {"id": "j", "env": {}, "command": ""}


def test_policy_is_immutable_keyword_only_and_checked() -> None:
    p = RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=1.0, jitter=0, max_retry_after=5)
    with pytest.raises(AttributeError):
        p.max_attempts = 9  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
    with pytest.raises(ValueError, match="initial_delay"):
        RetryPolicy(initial_delay=-1)
    for name in ("initial_delay", "max_delay", "max_retry_after", "jitter"):
        for bad in (True, float("nan")):  # a bool is not a number of seconds or a fraction
            with pytest.raises(ValueError, match=name):
                RetryPolicy(**{name: bad})  # type: ignore[arg-type]


def test_backoff_doubles_caps_and_jitters() -> None:
    p = RetryPolicy(initial_delay=1.0, max_delay=3.0, jitter=0)
    assert [p.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    j = RetryPolicy(initial_delay=1.0, max_delay=3.0, jitter=0.5)
    assert j.backoff(2, rand=lambda: 1.0) == 1.0
    assert j.backoff(2, rand=lambda: 0.0) == 2.0


def test_retry_after_forms() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    later = email.utils.format_datetime(now + dt.timedelta(seconds=7), usegmt=True)
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("1.5", now) == 1.5
    assert parse_retry_after(later, now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2015 00:00:00 GMT", now) == 0.0  # past: no wait
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_decide_rules() -> None:
    p = RetryPolicy(max_attempts=3, jitter=0, initial_delay=1, max_retry_after=10)
    assert not decide(p, 1, status=404).retry
    assert decide(p, 1, status=None).wait == 1.0
    assert decide(p, 2, status=500).wait == 2.0
    assert not decide(p, 3, status=500).retry  # attempts used up
    assert decide(p, 1, status=429, headers={"ratelimit-reset": "4"}).wait == 4.0
    # RateLimit-Reset is a 429 fallback only; Retry-After wins when both are present
    assert decide(p, 1, status=503, headers={"ratelimit-reset": "4"}).wait == 1.0
    assert decide(p, 1, status=429, headers={"retry-after": "2", "ratelimit-reset": "4"}).wait == 2
    long = decide(p, 1, status=429, headers={"retry-after": "11"})
    assert not long.retry
    assert long.too_long
    assert long.server_wait == 11


def test_5xx_then_success_waits_backoff(server: ScriptedServer, sleeps: SleepRecorder) -> None:
    server.reply(500, {"message": "boom"})
    server.reply(502, {"message": "boom"})
    server.reply(200, JOB)
    policy = RetryPolicy(initial_delay=0.25, jitter=0)
    with Client("bkct_x1234567", base_url=server.base_url, retry=policy) as c:
        c._sleep = sleeps
        assert c.get_job("s", "j").id == "j"
    assert sleeps.waits == [0.25, 0.5]
    assert len(server.requests) == 3


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "1.5"}, 1.5),
        ({"RateLimit-Reset": "0.75"}, 0.75),
        ({"Retry-After": "2", "RateLimit-Reset": "9"}, 2.0),
    ],
)
def test_429_waits_what_the_server_asks(
    client: Client,
    server: ScriptedServer,
    sleeps: SleepRecorder,
    headers: dict[str, str],
    expected: float,
) -> None:
    server.reply(429, {"message": "slow"}, headers=headers)
    server.reply(200, JOB)
    client.get_job("s", "j")
    assert sleeps.waits == [expected]


def test_429_with_http_date(client: Client, server: ScriptedServer, sleeps: SleepRecorder) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    server.reply(429, {}, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)})
    server.reply(200, JOB)
    client.get_job("s", "j")
    assert 25 < sleeps.waits[0] <= 30


def test_server_wait_over_max_retry_after_raises_at_once(
    client: Client, server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.reply(429, {"message": "slow", "scope": "show-job"}, headers={"Retry-After": "120"})
    with pytest.raises(stacksapi.RateLimitError) as info:
        client.get_job("s", "j")
    assert info.value.retry_after == 120.0
    assert sleeps.waits == []
    assert len(server.requests) == 1


def test_retry_false_and_per_call_policy(
    client: Client, server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.reply(500, {})
    with pytest.raises(stacksapi.ServerError):
        client.get_job("s", "j", retry=False)
    assert len(server.requests) == 1
    for _ in range(2):
        server.reply(500, {})
    with pytest.raises(stacksapi.ServerError):
        client.get_job("s", "j", retry=RetryPolicy(max_attempts=2, jitter=0, initial_delay=0.01))
    assert len(server.requests) == 3
    assert sleeps.waits == [0.01]


def test_default_policy_makes_five_attempts(
    client: Client, server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    for _ in range(5):
        server.reply(503, {})
    with pytest.raises(stacksapi.ServerError):
        client.get_job("s", "j")
    assert len(server.requests) == 5
    assert len(sleeps.waits) == 4
    assert all(0 <= w <= 8.0 for w in sleeps.waits)


def test_warning_before_each_retry_names_the_wait(
    client: Client,
    server: ScriptedServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.reply(429, {"message": "slow"}, headers={"Retry-After": "0.5"})
    server.reply(200, JOB)
    with caplog.at_level(logging.DEBUG, logger="stacksapi"):
        client.get_job("s", "j")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "retrying in 0.50 s" in warnings[0].getMessage()
    attempts = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert [getattr(r, "attempt", None) for r in attempts] == [1, 2]
    assert [getattr(r, "status_code", None) for r in attempts] == [429, 200]
    assert len({getattr(r, "request_id", None) for r in attempts}) == 1


def test_finish_retried_after_429(
    client: Client, server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.reply(429, {}, headers={"Retry-After": "0"})
    server.reply(200, {})
    client.finish_job("s", "j", detail="d")
    assert len(server.requests) == 2
    assert sleeps.waits == [0.0]


def test_finish_refused_after_an_ambiguous_5xx_says_it_may_have_landed(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(502, body=b"bad gateway", content_type="text/plain")
    server.reply(422, {"message": "Job is already finished"})
    with pytest.raises(stacksapi.UnprocessableEntityError) as info:
        client.finish_job("s", "j", detail="d")
    assert any("may have been applied" in n for n in getattr(info.value, "__notes__", []))
    assert len(server.requests) == 2


def test_idempotent_call_4xx_after_5xx_has_no_note(client: Client, server: ScriptedServer) -> None:
    server.reply(500, {})
    server.reply(404, {"message": "gone"})
    with pytest.raises(stacksapi.NotFoundError) as info:
        client.get_job("s", "j")
    assert not getattr(info.value, "__notes__", [])


def test_finish_refused_after_a_read_timeout_says_it_may_have_landed(
    client: Client, server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.reply(200, {}, delay=0.4)  # the first try times out after it was sent
    server.reply(422, {"message": "Job is already finished"})
    with pytest.raises(stacksapi.UnprocessableEntityError) as info:
        client.finish_job("s", "j", detail="d", timeout=0.1)
    assert any("may have been applied" in n for n in getattr(info.value, "__notes__", []))
    assert len(sleeps.waits) == 1


def test_connection_refused_before_sending_is_not_ambiguous() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    with Client("bkct_x1234567", base_url=f"http://127.0.0.1:{port}/v3/") as c:
        c._sleep = waits.append
        with pytest.raises(stacksapi.APIConnectionError) as info:
            c.finish_job("s", "j", detail="d", retry=RetryPolicy(max_attempts=2, jitter=0))
    assert not getattr(info.value, "__notes__", [])
    assert waits == [0.5]
