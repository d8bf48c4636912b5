"""A client-side limiter per rate-limit scope, so the runtime never provokes a 429.

The server counts requests per stack and scope over a 1-second sliding window. The limiter keeps
the send times of the last window per scope and delays a call until it fits under
``fraction`` of the documented limit (``stacksapi._endpoints.ENDPOINTS``). When a 429 arrives
anyway (another process sharing the stack key, a stricter server), :meth:`penalize` blocks the
scope for the time the server asked.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from stacksapi._endpoints import ENDPOINTS

__all__ = ["RateLimiter", "SlidingWindow"]

_WINDOW = 1.0
_SLACK = 0.02  # seconds of margin for clock skew between us and the server's window


class SlidingWindow:
    """Sans-IO: at most ``limit`` events in any ``window`` seconds."""

    def __init__(self, limit: int, window: float = _WINDOW + _SLACK) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._sent: deque[float] = deque()
        self.blocked_until = 0.0

    def delay(self, now: float) -> float:
        """Seconds to wait before one more event may happen at ``now`` (0: go)."""
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        wait = max(0.0, self.blocked_until - now)
        if len(self._sent) >= self.limit:
            wait = max(wait, self._sent[0] + self.window - now)
        return wait

    def record(self, now: float) -> None:
        self._sent.append(now)


class RateLimiter:
    """One :class:`SlidingWindow` per scope; ``await acquire(endpoint_name)`` before each call."""

    def __init__(
        self,
        fraction: float = 0.9,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._windows: dict[str, SlidingWindow] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        for endpoint in ENDPOINTS.values():
            if endpoint.scope not in self._windows:
                limit = max(1, math.floor(endpoint.per_second * fraction))
                self._windows[endpoint.scope] = SlidingWindow(limit)
        self.waited = 0.0

    def window(self, endpoint_name: str) -> SlidingWindow:
        return self._windows[ENDPOINTS[endpoint_name].scope]

    async def acquire(self, endpoint_name: str) -> None:
        """Wait until a call to ``endpoint_name`` fits in its scope's budget, then count it."""
        scope = ENDPOINTS[endpoint_name].scope
        window = self._windows[scope]
        lock = self._locks.setdefault(scope, asyncio.Lock())
        async with lock:  # FIFO among waiters of one scope
            while (wait := window.delay(self._clock())) > 0:
                self.waited += wait
                await asyncio.sleep(wait)
            window.record(self._clock())

    def penalize(self, endpoint_name: str, seconds: float) -> None:
        """Hold every call of this endpoint's scope for ``seconds`` (after a 429)."""
        window = self.window(endpoint_name)
        window.blocked_until = max(window.blocked_until, self._clock() + max(0.0, seconds))
