"""``StartFailures``: what a failure to start a job means, and what the stack does about it.

Every failure to start (a dispatch that raised, an agent that died before taking its job) is
put to the :class:`~._breaker.Breaker`: a job's own failure is finished with ``stack_error``;
the same failure across consecutive jobs is the infrastructure's, so the job is handed back
unfailed (the ``DispatchDeferred`` path: a one-second reservation, it lists again at once), the
breaker opens, the stack takes no jobs and hands back what it holds but has not launched, and
resumes once a probe's agent takes its job. Successes (a launch under way, an agent that took
its job) reset the streak. It also recognises an agent that lost the acquire race: its job is
held by another agent (two processes with one stack key), which is not a failure at all. An
agent refused its job (``AgentExit.acquire_refused``) while this key still holds the job is not
a failure either: the job's reservation ended under it (another process with the key
deregistered it, then the key reserved the job again), and our tokens with it. Such a job is
dispatched again with a fresh token (when the stack issues tokens), as is any job whose agent
failed while held once another process is known to use the key; while the stack stops, it is
let go unfailed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._breaker import Breaker, Verdict
from ._config import StackConfig
from ._events import Emitter, EventKind
from ._finisher import Finisher
from ._flights import FlightTable
from ._metrics import StackMetrics
from ._sharedkey import SharedKeyWatch

__all__ = ["StartFailures"]


class StartFailures:
    """See the module docstring. ``defer(uuid, retry_after)`` hands a job back unfailed."""

    def __init__(
        self,
        config: StackConfig,
        *,
        table: FlightTable,
        finisher: Finisher,
        emit: Emitter,
        metrics: StackMetrics,
        shared_key: SharedKeyWatch,
        clock: Callable[[], float],
        defer: Callable[[str, float], None],
        relaunch: Callable[[str], bool],
        stopping: Callable[[], bool],
        log: logging.Logger,
    ) -> None:
        self.breaker = Breaker(config.breaker_threshold, config.breaker_backoff_seconds)
        self._key = config.key
        self._table, self._finisher, self._emit = table, finisher, emit
        self._metrics, self._shared_key, self._clock = metrics, shared_key, clock
        self._defer, self._relaunch, self._log = defer, relaunch, log
        self._stopping = stopping

    @property
    def is_open(self) -> bool:
        return self.breaker.is_open

    def capacity(self, free: int) -> int:
        """How many jobs the stack may take now (0 while the breaker is open; 1 for a probe)."""
        return self.breaker.capacity(free, self._clock())

    def probe_missed(self) -> None:
        self.breaker.probe_missed()

    def launched(self) -> None:
        """A dispatch went through (the launch is under way)."""
        self.breaker.success(started=False)

    def agent_took(self, uuid: str) -> None:
        """An agent took (or ran) a job this stack launched: the launch path works."""
        if self.breaker.success(started=True):
            self._metrics.set_breaker_open(False)
            self._log.warning("stack %s: breaker closed: an agent took job %s; taking jobs again",
                              self._key, uuid, extra={"event": "breaker_closed"})  # fmt: skip
            self._emit(EventKind.BREAKER_CLOSED, uuid, "breaker closed: taking jobs again")

    def race_lost(self, uuid: str, state: str | None) -> None:
        """Our agent failed, and another agent holds the job: it lost the acquire race."""
        self._metrics.inc("acquire_races_lost")
        self._emit(EventKind.ACQUIRE_LOST, uuid,
                   f"another agent took the job first ({state}); not a failure")  # fmt: skip
        self._shared_key.sign(f"an agent lost the acquire race for job {uuid}")

    def start_failed(
        self, uuid: str, error: str, detail: str, *, held: bool = False, refused: bool = False
    ) -> bool:
        """A job failed to start with ``error``: finish it with ``detail``, or hand it back.

        ``held``: its agent failed while the job is still reserved by this stack's key;
        ``refused``: the agent said it was refused the job. True when the job was dispatched
        again instead (it stays in flight); False when it was finished, handed back, or (a
        refusal while the stack stops) just let go."""
        if held and refused:
            if self._relaunch(uuid):
                self._shared_key.refused(uuid)
                self._emit(EventKind.API_ERROR, uuid, "its agent was refused although this key "
                           "still holds the job (its token had stopped working): dispatching "
                           "it again")  # fmt: skip
                return True
            if self._stopping():  # not the job's failure: leave it to the key's next holder
                return False
        if held and self._shared_key.signs and self._relaunch(uuid):
            self._emit(EventKind.API_ERROR, uuid, "its agent failed while the job is still "
                       "reserved by this key (a shared key): dispatching it again")  # fmt: skip
            return True
        verdict = self.breaker.failure(uuid, error, self._clock())
        if verdict is Verdict.JOB:
            self._finisher.finish(uuid, detail)
            return False
        retry_in = max(0.0, self.breaker.retry_at - self._clock())
        if verdict is Verdict.TRIPPED:
            reason = self.breaker.reason
            self._metrics.inc("breaker_trips")
            self._metrics.set_breaker_open(True)
            self._log.warning(
                "stack %s: breaker open: the same failure on consecutive jobs (%s); taking no "
                "jobs, handing back what is held, probing again in %.1f s", self._key, reason,
                retry_in, extra={"event": "breaker_open"},
            )  # fmt: skip
            self._emit(EventKind.BREAKER_OPEN, message=f"breaker open: {reason}", reason=reason,
                       retry_in=retry_in)  # fmt: skip
        elif verdict is Verdict.PROBE_FAILED:
            self._log.warning("stack %s: breaker still open: the probe failed (%s); next in %.1f s",
                              self._key, error.strip()[:200], retry_in,
                              extra={"event": "breaker_probe_failed"})  # fmt: skip
        waiting = [u for u, f in self._table.items() if not f.dispatched and not f.cancelled]
        for back in dict.fromkeys([uuid, *waiting]):
            self._metrics.inc("jobs_handed_back")
            self._emit(EventKind.HANDED_BACK, back, f"handed back unfailed: {error}")
            self._defer(back, -1.0)
        return False
