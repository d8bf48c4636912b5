"""Response: the decoded model of a call plus the HTTP facts around it (status, headers, limits)."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Generic, TypeVar

from ._models import RateLimit

__all__ = ["Response", "parse_rate_limit"]

T_co = TypeVar("T_co", covariant=True)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The ``RateLimit-*`` headers as a :class:`RateLimit`, or ``None`` when none is present."""
    scope = headers.get("ratelimit-scope")
    limit = _number(headers.get("ratelimit-limit"))
    remaining = _number(headers.get("ratelimit-remaining"))
    reset = _number(headers.get("ratelimit-reset"))
    if scope is None and limit is None and remaining is None and reset is None:
        return None
    return RateLimit(
        scope=scope,
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else int(remaining),
        reset=reset,
    )


class Response(Generic[T_co]):
    """What ``client.with_response.<method>()`` returns.

    ``data`` is the decoded model (``None`` for calls without a body). For a call sent in several
    requests (more than 1000 job uuids) ``status_code``, ``headers`` and ``rate_limit`` are those of
    the last request and ``elapsed`` is the sum over all of them, retries included (waits not).
    For an empty list nothing is sent: ``status_code`` is 200, ``headers`` empty, ``elapsed`` 0.
    """

    __slots__ = ("_rate_limit", "data", "elapsed", "headers", "status_code")

    def __init__(
        self,
        data: T_co,
        *,
        status_code: int,
        headers: Mapping[str, str],
        elapsed: _dt.timedelta,
    ) -> None:
        self.data = data
        self.status_code = status_code
        self.headers = headers
        self.elapsed = elapsed
        self._rate_limit: RateLimit | bool | None = False  # False: not parsed yet

    @property
    def rate_limit(self) -> RateLimit | None:
        """``RateLimit-Scope/-Limit/-Remaining/-Reset`` of the response; ``None`` when absent."""
        if self._rate_limit is False:
            self._rate_limit = parse_rate_limit(self.headers)
        assert not isinstance(self._rate_limit, bool)
        return self._rate_limit

    def __repr__(self) -> str:
        return f"Response(status_code={self.status_code}, data={self.data!r})"
