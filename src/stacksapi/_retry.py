"""RetryPolicy and the sans-IO retry decision: retry a failed attempt or not, and after how long.

Nothing here sleeps or sends. The clients ask :func:`decide` after each failed attempt and do the
waiting themselves (``time.sleep`` or ``anyio.sleep``, or an injected fake in tests).
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "NO_RETRY",
    "RetryDecision",
    "RetryPolicy",
    "decide",
    "parse_retry_after",
    "server_wait",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How a client retries 429s, 5xx responses, connection errors and timeouts.

    ``max_attempts`` counts the first try (1 means no retry). Backoff waits grow from
    ``initial_delay`` doubling per attempt, capped at ``max_delay``; ``jitter`` (0..1) is the
    fraction of each backoff wait that is randomised downwards (0 turns it off). A wait the server
    asks for (``Retry-After``, or ``RateLimit-Reset`` on a 429) is used as is, bounded only by
    ``max_retry_after``: when the server asks for longer, the error is raised at once.
    """

    max_attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError("RetryPolicy.max_attempts must be an int")
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts: must be at least 1 (1 means no retry)")
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or math.isnan(value)
                or value < 0
            ):
                raise ValueError(f"RetryPolicy.{name}: must be a number >= 0 (got {value!r})")
        jitter = self.jitter
        if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter: must be between 0 and 1 (got {self.jitter!r})")

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based) when the server named none."""
        base = min(self.max_delay, self.initial_delay * (2.0 ** (attempt - 1)))
        return base * (1.0 - self.jitter * rand())


NO_RETRY = RetryPolicy(max_attempts=1)
"""The policy used for ``retry=False``."""


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt.

    ``retry``: try again after ``wait`` seconds. ``server_wait``: the wait the server asked for
    (``None`` when it named none); when it exceeded ``max_retry_after``, ``retry`` is false and
    ``too_long`` is true.
    """

    retry: bool
    wait: float = 0.0
    server_wait: float | None = None
    too_long: bool = False


def parse_retry_after(value: str | None, now: _dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); else ``None``."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.UTC)
    now = now or _dt.datetime.now(_dt.UTC)
    return max(0.0, (when - now).total_seconds())


def server_wait(
    status: int | None, headers: Mapping[str, str] | None, now: _dt.datetime | None = None
) -> float | None:
    """The wait a response asks for: ``Retry-After``, else ``RateLimit-Reset`` on a 429."""
    if headers is None:
        return None
    wait = parse_retry_after(headers.get("retry-after"), now)
    if wait is None and status == 429:
        reset = headers.get("ratelimit-reset")
        if reset is not None:
            try:
                seconds = float(reset)
            except ValueError:
                return None
            if math.isfinite(seconds):
                wait = max(0.0, seconds)
    return wait


def is_retryable_status(status: int) -> bool:
    """429 and every 5xx are retried; other statuses never are."""
    return status == 429 or status >= 500


def decide(
    policy: RetryPolicy,
    attempt: int,
    *,
    status: int | None,
    headers: Mapping[str, str] | None = None,
    rand: Callable[[], float] = random.random,
    now: _dt.datetime | None = None,
) -> RetryDecision:
    """Decide after failed attempt number ``attempt``; ``status=None`` is a connection failure."""
    if status is not None and not is_retryable_status(status):
        return RetryDecision(False)
    asked = server_wait(status, headers, now)
    if asked is not None and asked > policy.max_retry_after:
        return RetryDecision(False, server_wait=asked, too_long=True)
    if attempt >= policy.max_attempts:
        return RetryDecision(False, server_wait=asked)
    wait = asked if asked is not None else policy.backoff(attempt, rand)
    return RetryDecision(True, wait, server_wait=asked)
