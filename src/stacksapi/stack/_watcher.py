"""``Watcher``: keeps every job in flight honest, on its own schedule.

Each tick it renews reservations before they expire, checks states in batches (every
``state_check_interval``, and at once for jobs that need a verdict), tears down work whose job
was cancelled or lost, finishes jobs whose agent failed before taking them or did not start
within ``provisioning_timeout``, and gets fresh acquisition tokens for slow provisioning. It
awaits only the Stacks API (through the rate limiter): dispatcher calls and finishes run in the
worker pool, so a slow dispatcher cannot starve renewals. Adopted work is watched the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from stacksapi._errors import AuthenticationError, StacksAPIError
from stacksapi._models import JobState

from ._api import LimitedAPI
from ._config import StackConfig
from ._dispatcher import AgentExit
from ._events import Emitter, EventKind
from ._exit import Fatal
from ._failures import StartFailures
from ._finisher import Finisher
from ._flights import AGENT_OWNED, CANCELLING, HELD, OVER, TERMINAL, FlightTable
from ._launcher import Launcher
from ._metrics import StackMetrics
from ._planning import chunks, renewals_due

__all__ = ["Watcher", "failure_detail"]


class Watcher:
    """The watch loop (:meth:`run`); :meth:`verify` asks for a state check at the next tick."""

    def __init__(
        self,
        config: StackConfig,
        api: LimitedAPI,
        *,
        table: FlightTable,
        launcher: Launcher,
        finisher: Finisher,
        failures: StartFailures,
        emit: Emitter,
        metrics: StackMetrics,
        clock: Callable[[], float],
        release: Callable[[str], None],
        on_error: Callable[[StacksAPIError], None] = lambda _exc: None,
    ) -> None:
        self._cfg = config
        self._api = api
        self._table = table
        self._launcher = launcher
        self._finisher = finisher
        self._failures = failures
        self._emit = emit
        self._metrics = metrics
        self._clock = clock
        self._release = release
        self._on_error = on_error  # a 404: the registration takes note
        self._verify: set[str] = set()
        self._wake = asyncio.Event()

    def verify(self, uuid: str) -> None:
        self._verify.add(uuid)
        self._wake.set()

    async def run(self) -> None:
        cfg = self._cfg
        next_check = 0.0
        tick = min(cfg.state_check_interval, 1.0)
        while True:
            self._wake.clear()
            now = self._clock()
            try:
                await self._renew(now)
                if now >= next_check or self._verify:
                    next_check = now + cfg.state_check_interval
                    await self._check_states()
                self._time_out(now)
                await self._refresh_tokens(now)
            except StacksAPIError as exc:
                if isinstance(exc, AuthenticationError):
                    raise Fatal(f"checking jobs failed permanently: {exc}", exc) from exc
                self._on_error(exc)
                self._emit(EventKind.API_ERROR, message=f"watch failed (will retry): {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), tick)

    async def _renew(self, now: float) -> None:
        cfg = self._cfg
        expiries = {
            u: f.expires_at
            for u, f in self._table.items()
            if f.expires_at is not None and not f.started and (not f.cancelled or f.redispatch)
        }
        due = renewals_due(expiries, now=now, margin=cfg.renew_margin)
        for batch in chunks(due):
            res = await self._api.reserve(batch, cfg.reservation_expiry_seconds)
            expires = self._clock() + cfg.reservation_expiry_seconds
            for uuid in res.reserved:
                if (flight := self._table.get(uuid)) is not None:
                    flight.expires_at = expires
                    self._metrics.inc("reservations_renewed")
                    self._emit(EventKind.RENEWED, uuid, "reservation renewed")
            for uuid in res.not_reserved:  # taken by an agent, cancelled, or lost: ask
                if (flight := self._table.get(uuid)) is not None:
                    flight.expires_at = None
                    flight.adopted = None  # an adopted job we could not (re)reserve is lost
                    self._verify.add(uuid)

    async def _check_states(self) -> None:
        uuids = sorted(
            {u for u, f in self._table.items() if not f.started or f.ended} | self._verify
        )
        self._verify.clear()
        for batch in chunks(uuids):
            states = (await self._api.states(batch)).states
            for uuid in batch:
                self._apply_state(uuid, states.get(uuid))

    def _apply_state(self, uuid: str, state: str | None) -> None:
        flight = self._table.get(uuid)
        if flight is None:
            return
        if (
            flight.ended is not None
            and not flight.started
            and flight.adopted is None
            and state in AGENT_OWNED
        ):
            self._failures.race_lost(uuid, state)  # ours failed, yet an agent holds the job
            self._release(uuid)
            return
        if state in AGENT_OWNED and not flight.started:
            flight.started, flight.expires_at = True, None
            self._emit(EventKind.STARTED, uuid, f"agent took the job ({state})")
            if flight.adopted is None:
                self._failures.agent_took(uuid)
        elif flight.started and flight.adopted is not None and state not in AGENT_OWNED:
            flight.started = False  # the dispatcher thought so; the API says not yet
        if flight.ended is not None:
            if state in HELD and not flight.started:
                ended, detail = flight.ended, failure_detail(flight.ended)
                if self._failures.start_failed(
                    uuid, detail, detail, held=True, refused=ended.acquire_refused
                ):
                    return  # dispatched again: still ours
            self._release(uuid)
            return
        if flight.started:
            return
        if state in CANCELLING:
            self._metrics.inc("jobs_cancelled")
            self._emit(EventKind.CANCELLED, uuid, f"job {state} in Buildkite; tearing down")
            self._launcher.cancel_work(uuid, f"the job was {state}")
        elif state in OVER:  # ended in Buildkite while we provision: stop at once
            self._emit(EventKind.LOST, uuid, f"job {state} in Buildkite; tearing down")
            self._launcher.cancel_work(uuid, f"the job is {state}")
        elif (
            flight.adopted is not None
            and flight.expires_at is None
            and (state in HELD or state == JobState.SCHEDULED)
        ):
            # Adopted provisioning work: take (or renew) the reservation at once; the old
            # token may be dead, so a fresh one follows.
            flight.expires_at, flight.token_unknown = self._clock(), True
            self._wake.set()
        elif (
            state is None or state in TERMINAL or state == JobState.SCHEDULED
        ) and flight.expires_at is None:
            self._emit(EventKind.LOST, uuid, f"reservation lost (state {state})")
            self._launcher.cancel_work(uuid, f"the reservation was lost (state {state})")

    def _time_out(self, now: float) -> None:
        limit = self._cfg.provisioning_timeout
        late = [
            u
            for u, f in self._table.items()
            if f.dispatched and not f.started and not f.cancelled and not f.finishing
            and f.ended is None and now - f.since >= limit
        ]  # fmt: skip
        for uuid in late:
            reason = f"its agent did not start within {limit:g} s (provisioning_timeout)"
            self._metrics.inc("provisioning_timeouts")
            self._emit(EventKind.TIMED_OUT, uuid, f"tearing down: {reason}")
            self._finisher.finish(uuid, f"The stack gave up on this job: {reason}.")
            self._launcher.cancel_work(uuid, reason)

    async def _refresh_tokens(self, now: float) -> None:
        if not self._cfg.issue_tokens:
            return
        margin = self._launcher.token_lifetime / 3
        due = [
            u
            for u, f in self._table.items()
            if f.dispatched and not f.started and not f.cancelled and not f.refreshing
            and not f.finishing and f.ended is None and f.expires_at is not None
            and (f.token_unknown or (f.token_expires_at is not None
                                     and f.token_expires_at - now <= margin))
        ]  # fmt: skip
        if due:
            await self._launcher.refresh_tokens(due)


def failure_detail(ended: AgentExit) -> str:
    """The finish detail for a job whose agent failed before taking it."""
    head = ended.error or f"The agent exited with status {ended.exit_status} before taking the job"
    output = ended.output.strip()
    return f"{head}.\nLast output:\n{output}" if output else f"{head} (no output)."
