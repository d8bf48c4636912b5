"""The client-side limiter: never more than the budget in any window, and 429 penalties."""

from __future__ import annotations

import pytest

from stacksapi._endpoints import ENDPOINTS
from stacksapi.stack._ratelimit import RateLimiter, SlidingWindow


def test_sliding_window_delays_the_next_call() -> None:
    w = SlidingWindow(3, window=1.0)
    for t in (0.0, 0.1, 0.2):
        assert w.delay(t) == 0
        w.record(t)
    assert w.delay(0.3) == pytest.approx(0.7)
    assert w.delay(1.0) == 0  # the first call left the window


def test_sliding_window_block() -> None:
    w = SlidingWindow(10, window=1.0)
    w.blocked_until = 5.0
    assert w.delay(3.0) == pytest.approx(2.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.anyio
async def test_limiter_keeps_every_window_under_the_documented_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    sent: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("stacksapi.stack._ratelimit.asyncio.sleep", fake_sleep)
    limiter = RateLimiter(1.0, clock=clock)
    for _ in range(55):
        await limiter.acquire("list_scheduled_jobs")
        sent.append(clock.now)
    per_second = ENDPOINTS["list_scheduled_jobs"].per_second
    for i, t in enumerate(sent):
        assert sum(1 for s in sent[i:] if s < t + 1.0) <= per_second
    assert sent[-1] >= 5.0  # 55 calls at 10/s need at least five windows


@pytest.mark.anyio
async def test_penalize_blocks_the_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()

    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("stacksapi.stack._ratelimit.asyncio.sleep", fake_sleep)
    limiter = RateLimiter(clock=clock)
    limiter.penalize("batch_reserve_jobs", 3.0)
    await limiter.acquire("batch_reserve_jobs")
    assert clock.now == pytest.approx(3.0)
    await limiter.acquire("get_job")  # another scope is not held
    assert clock.now == pytest.approx(3.0)
