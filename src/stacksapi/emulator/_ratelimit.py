"""Sliding one-second rate-limit windows per (stack, scope), as the Stacks API documents.

A window holds the times of the requests it accepted in the last second; a request is refused
when the window is full. Refused requests are not recorded, so a client that backs off as told
gets through once the oldest accepted request leaves the window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from stacksapi._endpoints import ENDPOINTS

__all__ = ["DEFAULT_LIMITS", "RateDecision", "RateLimiter"]

WINDOW_SECONDS = 1.0

DEFAULT_LIMITS: dict[str, int] = {}
for _endpoint in ENDPOINTS.values():
    DEFAULT_LIMITS.setdefault(_endpoint.scope, _endpoint.per_second)
"""Requests per second by scope, from the endpoint table."""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome for one request, and what the ``RateLimit-*`` headers say."""

    allowed: bool
    scope: str
    limit: int
    current: int
    remaining: int
    reset: float

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (``Retry-After`` too when refused); resets in whole seconds."""
        reset = max(1, math.ceil(self.reset))
        out = {
            "RateLimit-Scope": self.scope,
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(reset)
        return out


class RateLimiter:
    """Per (stack key, scope) sliding windows. Not thread-safe: the Emulator's lock guards it."""

    __slots__ = ("_limits", "_windows")

    def __init__(self, limits: Mapping[str, int]) -> None:
        for scope, limit in limits.items():
            if limit < 1:
                raise ValueError(f"rate_limits[{scope!r}]: must be >= 1 (got {limit})")
        self._limits = {**DEFAULT_LIMITS, **limits}
        self._windows: dict[tuple[str, str], deque[float]] = {}

    def limit_for(self, scope: str) -> int:
        return self._limits.get(scope, DEFAULT_LIMITS["default"])

    def _window(self, stack: str, scope: str, now: float) -> deque[float]:
        window = self._windows.get((stack, scope))
        if window is None:
            window = self._windows[(stack, scope)] = deque()
        edge = now - WINDOW_SECONDS
        while window and window[0] <= edge:
            window.popleft()
        return window

    def hit(self, stack: str, scope: str, now: float) -> RateDecision:
        """Count one request at ``now`` if the window has room; say whether it was allowed."""
        return self._decide(stack, scope, now, count=True)

    def peek(self, stack: str, scope: str, now: float) -> RateDecision:
        """The window's state without counting a request (for responses refused before it)."""
        return self._decide(stack, scope, now, count=False)

    def _decide(self, stack: str, scope: str, now: float, *, count: bool) -> RateDecision:
        limit = self.limit_for(scope)
        window = self._window(stack, scope, now)
        allowed = not count or len(window) < limit
        if count and allowed:
            window.append(now)
        reset = (window[0] + WINDOW_SECONDS - now) if window else WINDOW_SECONDS
        current = len(window) + (0 if allowed else 1)
        return RateDecision(allowed, scope, limit, current, max(0, limit - len(window)), reset)

    def usage(self, now: float) -> dict[tuple[str, str], tuple[int, int]]:
        """``{(stack, scope): (used, limit)}`` for every window seen, without counting or pruning
        anything (what the dashboard shows as each scope's budget draining and refilling)."""
        edge = now - WINDOW_SECONDS
        return {
            (stack, scope): (sum(1 for t in window if t > edge), self.limit_for(scope))
            for (stack, scope), window in self._windows.items()
        }

    def clear(self) -> None:
        self._windows.clear()
