"""Rate limits per (stack, scope): a sliding one-second window on the emulator's clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from stacksapi.emulator import Emulator, EmulatorServer, ManualClock
from stacksapi.emulator._ratelimit import DEFAULT_LIMITS, RateLimiter

from ._helpers import QUEUE

A, B = "stack-a", "stack-b"


@pytest.fixture
def limited(clock: ManualClock) -> Iterator[httpx2.Client]:
    with EmulatorServer(Emulator(clock=clock)) as srv:
        headers = {"Authorization": f"Token {srv.token}"}
        with httpx2.Client(base_url=srv.base_url, headers=headers) as http:
            for key in (A, B):
                body = {"key": key, "type": "custom", "queue_key": QUEUE, "metadata": {}}
                assert http.post("stacks/register", json=body).status_code == 201
            yield http


def _list(http: httpx2.Client, stack: str = A) -> httpx2.Response:
    return http.get(f"stacks/{stack}/scheduled-jobs", params={"queue_key": QUEUE})


def test_documented_defaults() -> None:
    assert DEFAULT_LIMITS == {
        "default": 10,
        "list-scheduled-jobs": 10,
        "batch-reserve": 10,
        "show-job": 1000,
        "batch-load-job-states": 20,
        "finish-job": 100,
        "stack-notification": 200,
    }


def test_headers_on_every_response(limited: httpx2.Client) -> None:
    first = _list(limited)
    assert first.headers["RateLimit-Scope"] == "list-scheduled-jobs"
    assert first.headers["RateLimit-Limit"] == "10"
    assert first.headers["RateLimit-Remaining"] == "9"
    assert first.headers["RateLimit-Reset"] == "1"
    not_found = limited.get(f"stacks/{A}/jobs/nope")
    assert not_found.status_code == 404
    assert not_found.headers["RateLimit-Scope"] == "show-job"


def test_headers_on_responses_refused_for_their_body(limited: httpx2.Client) -> None:
    bad_json = limited.post("stacks/register", content=b"{not json")
    empty = limited.post("stacks/register", content=b"")
    too_big = limited.post(f"stacks/{A}/notifications", content=b" " * (3 * 1024 * 1024))
    for response, status, scope in (
        (bad_json, 400, "default"),
        (empty, 400, "default"),
        (too_big, 413, "stack-notification"),
    ):
        assert response.status_code == status
        assert response.headers["RateLimit-Scope"] == scope
        assert int(response.headers["RateLimit-Remaining"]) >= 0
        assert response.headers["RateLimit-Reset"] == "1"


def test_429_body_and_retry_after(limited: httpx2.Client, clock: ManualClock) -> None:
    for _ in range(10):
        assert _list(limited).status_code == 200
    refused = _list(limited)
    assert refused.status_code == 429
    body = refused.json()
    assert set(body) == {"message", "scope", "limit", "current", "reset"}
    assert (body["scope"], body["limit"], body["current"]) == ("list-scheduled-jobs", 10, 11)
    assert body["reset"] >= 1
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert _list(limited, B).status_code == 200  # another stack has its own window
    assert limited.get("token").status_code == 200  # another scope too
    clock.advance(1)
    assert _list(limited).status_code == 200


def test_window_slides(limited: httpx2.Client, clock: ManualClock) -> None:
    for _ in range(5):
        assert _list(limited).status_code == 200
    clock.advance(0.5)
    for _ in range(5):
        assert _list(limited).status_code == 200
    assert _list(limited).status_code == 429
    clock.advance(0.5)  # the first five leave the window, the last five stay
    for _ in range(5):
        assert _list(limited).status_code == 200
    assert _list(limited).status_code == 429


def test_custom_limits_and_switching_off(clock: ManualClock) -> None:
    emulator = Emulator(clock=clock, rate_limits={"default": 2})
    with EmulatorServer(emulator) as srv:
        headers = {"Authorization": f"Token {srv.token}"}
        with httpx2.Client(base_url=srv.base_url, headers=headers) as http:
            statuses = [http.get("token").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert emulator.counters()["get_token"] == {200: 2, 429: 1}
    with EmulatorServer(Emulator(clock=clock, rate_limits=False)) as srv:
        headers = {"Authorization": f"Token {srv.token}"}
        with httpx2.Client(base_url=srv.base_url, headers=headers) as http:
            responses = [http.get("token") for _ in range(30)]
    assert {r.status_code for r in responses} == {200}
    assert "RateLimit-Limit" not in responses[0].headers


def test_limiter_refuses_bad_configuration() -> None:
    with pytest.raises(ValueError, match="rate_limits"):
        RateLimiter({"default": 0})


def test_refused_requests_do_not_fill_the_window() -> None:
    limiter = RateLimiter({"default": 2})
    assert [limiter.hit("s", "default", 0.0).allowed for _ in range(4)] == [
        True,
        True,
        False,
        False,
    ]
    assert limiter.hit("s", "default", 1.0).allowed is True
    decision = limiter.hit("s", "default", 1.0)
    assert (decision.allowed, decision.remaining) == (True, 0)
