"""``Breaker``: tell failures of the infrastructure from failures of a job, and stop on the first.

A job that cannot run fails on its own; an agent command that cannot start (a missing
executable, a wrong endpoint, a cluster that refuses every pod) fails *every* job the same way.
The runtime reports each failure to start (a dispatch error, an agent that died before taking its
job) and each success (a dispatch under way, an agent that took its job). The same failure on
consecutive distinct jobs, with no success between, is about the infrastructure:

- the first failure of a streak is the job's (``Verdict.JOB``: finish it with ``stack_error``);
- the next ones are suspect (``Verdict.SUSPECT``: hand the job back unfailed);
- at ``threshold`` the breaker opens (``Verdict.TRIPPED``): the stack takes no jobs, hands back
  what it holds unfailed, and after ``backoff`` seconds lets one probe through
  (:meth:`Breaker.capacity`). A probe whose agent takes its job closes the breaker; one that
  fails opens it again for twice as long (``Verdict.PROBE_FAILED``, at most ``max_backoff``).

Pure state: the caller passes the time and does the I/O.
"""

from __future__ import annotations

import enum
import re

__all__ = ["Breaker", "BreakerState", "Verdict", "failure_signature"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NUMBER = re.compile(r"\d+")
_PROBE_PATIENCE = 30.0  # seconds a probe may take before another is let through


def failure_signature(error: str) -> str:
    """What makes two failures "the same": the first line, without uuids and numbers."""
    first = error.strip().splitlines()[0] if error.strip() else ""
    return _NUMBER.sub("#", _UUID.sub("<uuid>", first))[:300]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"  # taking jobs
    OPEN = "open"  # taking none until the backoff is over
    PROBING = "probing"  # one job let through; its outcome decides


class Verdict(enum.Enum):
    JOB = "job"  # the job's own failure: finish it
    SUSPECT = "suspect"  # looks like the infrastructure: hand the job back unfailed
    TRIPPED = "tripped"  # the breaker opened with this failure: hand it back unfailed
    PROBE_FAILED = "probe_failed"  # the probe failed: open again, longer; hand it back unfailed


class Breaker:
    """See the module docstring. ``threshold`` 0 turns the breaker off (every verdict is JOB)."""

    def __init__(
        self, threshold: int = 3, backoff: float = 5.0, max_backoff: float = 120.0
    ) -> None:
        self.threshold = threshold
        self.initial_backoff = backoff
        self.max_backoff = max(backoff, max_backoff)
        self.state = BreakerState.CLOSED
        self.trips = 0
        self.reason = ""  # the failure that opened it
        self.retry_at = 0.0
        self._backoff = backoff
        self._signature: str | None = None
        self._streak: set[str] = set()

    @property
    def is_open(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def failure(self, job_uuid: str, error: str, now: float) -> Verdict:
        """A job failed to start with ``error``."""
        if self.threshold <= 0:
            return Verdict.JOB
        signature = failure_signature(error)
        if self.state is BreakerState.PROBING:
            self._open(error, now, again=True)
            return Verdict.PROBE_FAILED
        if self.state is BreakerState.OPEN:
            return Verdict.SUSPECT  # launched before the trip: hand it back too
        if signature != self._signature:
            self._signature, self._streak = signature, set()
        self._streak.add(job_uuid)
        if len(self._streak) >= self.threshold:
            self._open(error, now, again=False)
            return Verdict.TRIPPED
        return Verdict.SUSPECT if len(self._streak) > 1 else Verdict.JOB

    def success(self, *, started: bool) -> bool:
        """A launch went well (``started``: an agent took its job). True when this closed the
        breaker: only an agent that took its job proves a probe, a launch under way does not."""
        self._signature, self._streak = None, set()
        if self.state is BreakerState.CLOSED or not started:
            return False
        self.state, self._backoff, self.reason = BreakerState.CLOSED, self.initial_backoff, ""
        return True

    def capacity(self, free: int, now: float) -> int:
        """How many jobs the stack may take now, out of ``free``."""
        if self.state is BreakerState.CLOSED:
            return free
        if now >= self.retry_at and free > 0:
            self.state = BreakerState.PROBING  # (again, when a probe went unanswered)
            self.retry_at = now + self._backoff + _PROBE_PATIENCE
            return 1
        return 0

    def probe_missed(self) -> None:
        """The job let through as a probe was not launched (not reserved, a failed request):
        let the next poll try another at once."""
        if self.state is BreakerState.PROBING:
            self.state, self.retry_at = BreakerState.OPEN, 0.0

    def _open(self, error: str, now: float, *, again: bool) -> None:
        if again:
            self._backoff = min(self.max_backoff, self._backoff * 2)
        else:
            self.trips += 1
            self.reason = error.strip().splitlines()[0][:300] if error.strip() else "unknown"
        self.state = BreakerState.OPEN
        self.retry_at = now + self._backoff
        self._signature, self._streak = None, set()
