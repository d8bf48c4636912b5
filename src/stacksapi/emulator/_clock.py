"""Clocks for the emulator: the system clock, and a manual one tests move by hand.

Every time the emulator reads (reservation expiry, token lifetimes, rate-limit windows, queue
connection status) comes from one clock, so a test can jump ahead instead of sleeping.
Times are seconds since the Unix epoch (UTC) as floats.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock", "to_datetime", "to_epoch"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning epoch seconds."""

    def now(self) -> float: ...


class SystemClock:
    """The wall clock (``time.time()``)."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


def to_epoch(value: float | _dt.datetime) -> float:
    """Epoch seconds from a float or a datetime (a naive datetime is taken as UTC)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return value.timestamp()
    return float(value)


def to_datetime(epoch: float) -> _dt.datetime:
    """An aware UTC datetime from epoch seconds."""
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC)


class ManualClock:
    """A clock that moves only when told to; thread-safe.

    ``ManualClock()`` starts at the current wall time, so timestamps stay realistic; pass
    ``start`` (epoch seconds or a datetime) for a fixed origin.
    """

    __slots__ = ("_lock", "_now")

    def __init__(self, start: float | _dt.datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = time.time() if start is None else to_epoch(start)

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (not backwards) and return the new time."""
        if seconds < 0:
            raise ValueError(f"seconds: must be >= 0 (got {seconds})")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float | _dt.datetime) -> None:
        """Jump to ``when``; going back in time is refused (windows and expiries assume order)."""
        target = to_epoch(when)
        with self._lock:
            if target < self._now:
                raise ValueError("when: the clock cannot go backwards")
            self._now = target

    def __repr__(self) -> str:
        return f"ManualClock({to_datetime(self.now()).isoformat()})"
