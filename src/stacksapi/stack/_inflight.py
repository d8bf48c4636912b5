"""What the runtime holds in flight, and the half of the loop that watches it.

``Flight`` is one job this stack holds. ``InFlight`` is the part of
:class:`~stacksapi.stack.Stack` that keeps those jobs honest: it renews reservations before they
expire, checks states in batches, tears down work for jobs cancelled meanwhile, finishes jobs
whose agent failed before taking them, frees capacity, and sends notifications in batches. It is
a mixin only to keep each module short; ``Stack`` owns the state it declares.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from stacksapi._errors import AuthenticationError, RateLimitError, StacksAPIError
from stacksapi._models import JobState, ScheduledJob

from ._api import LimitedAPI, is_permanent
from ._config import StackConfig
from ._dispatcher import AgentExit, Dispatcher
from ._events import EventCallback, EventKind, StackEvent
from ._metrics import StackMetrics
from ._planning import NotificationBatcher, chunks, crop_detail, redact_tokens, renewals_due
from ._records import JobMemory

__all__ = [
    "MAX_BACKOFF",
    "Fatal",
    "Flight",
    "InFlight",
    "StackExit",
    "adopted_job",
    "cancel_tasks",
    "failure_detail",
    "running_loop",
]

_TERMINAL = frozenset(s.value for s in JobState if s.is_terminal)
_AGENT_OWNED = frozenset({JobState.ACCEPTED, JobState.RUNNING, JobState.FINISHED})
_CANCELLING = frozenset({JobState.CANCELING, JobState.CANCELED})
_HELD = frozenset({JobState.RESERVED, JobState.ASSIGNED})
_OVER = _TERMINAL - _AGENT_OWNED - _CANCELLING  # timed_out, expired, ...: no agent can run
MAX_BACKOFF = 30.0


@dataclasses.dataclass(frozen=True, slots=True)
class StackExit:
    """Why :meth:`Stack.run_async` returned. ``error`` is set when the loop died of it."""

    reason: str
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        """For a CLI: 0 after a requested stop, 1 after a permanent error."""
        return 0 if self.ok else 1


class Fatal(Exception):
    """The loop cannot go on; ``reason`` says why in one line."""

    def __init__(self, reason: str, cause: BaseException) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


@dataclasses.dataclass(slots=True)
class Flight:
    """One job this stack holds: reserved, being provisioned, or run by its agent."""

    job: ScheduledJob
    expires_at: float | None  # monotonic end of our reservation; None once an agent owns it
    dispatched: bool = False
    started: bool = False  # an agent accepted the job
    cancelled: bool = False  # dispatcher told to tear the work down
    ended: AgentExit | None = None  # the agent failed; waiting for a state check to decide


class InFlight:
    """The watching half of :class:`~stacksapi.stack.Stack` (see the module docstring)."""

    config: StackConfig
    dispatcher: Dispatcher
    metrics: StackMetrics
    _api: LimitedAPI
    _log: logging.Logger
    _clock: Callable[[], float]
    _on_event: EventCallback | None
    _flights: dict[str, Flight]
    _verify: set[str]
    _notes: NotificationBatcher
    _finished: JobMemory
    _wake_poll: asyncio.Event | None
    _wake_watch: asyncio.Event | None

    async def _watch_loop(self) -> None:
        assert self._wake_watch is not None
        cfg = self.config
        next_check = 0.0
        tick = min(cfg.state_check_interval, 1.0)
        while True:
            self._wake_watch.clear()
            now = self._clock()
            try:
                await self._renew(now)
                if now >= next_check or self._verify:
                    next_check = now + cfg.state_check_interval
                    await self._check_states()
            except StacksAPIError as exc:
                if isinstance(exc, AuthenticationError):
                    raise Fatal(f"checking jobs failed permanently: {exc}", exc) from exc
                self._emit(EventKind.API_ERROR, message=f"watch failed (will retry): {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_watch.wait(), tick)

    async def _renew(self, now: float) -> None:
        cfg = self.config
        expiries = {
            u: f.expires_at
            for u, f in self._flights.items()
            if f.expires_at is not None and not f.started and not f.cancelled
        }
        due = renewals_due(expiries, now=now, margin=cfg.renew_margin)
        for batch in chunks(due):
            res = await self._api.reserve(batch, cfg.reservation_expiry_seconds)
            expires = self._clock() + cfg.reservation_expiry_seconds
            for uuid in res.reserved:
                if (flight := self._flights.get(uuid)) is not None:
                    flight.expires_at = expires
                    self.metrics.inc("reservations_renewed")
                    self._emit(EventKind.RENEWED, uuid, "reservation renewed")
            for uuid in res.not_reserved:  # taken by an agent, cancelled, or lost: ask
                if (flight := self._flights.get(uuid)) is not None:
                    flight.expires_at = None
                    self._verify.add(uuid)

    async def _check_states(self) -> None:
        uuids = sorted(
            {u for u, f in self._flights.items() if not f.started or f.ended} | self._verify
        )
        self._verify.clear()
        for batch in chunks(uuids):
            states = (await self._api.states(batch)).states
            for uuid in batch:
                await self._apply_state(uuid, states.get(uuid))

    async def _apply_state(self, uuid: str, state: str | None) -> None:
        flight = self._flights.get(uuid)
        if flight is None:
            return
        if flight.ended is not None and not flight.started and state in _AGENT_OWNED:
            self._race_lost(uuid, state)  # ours failed, yet an agent holds the job
            self._release(uuid)
            return
        if state in _AGENT_OWNED and not flight.started:
            flight.started, flight.expires_at = True, None
            self._emit(EventKind.STARTED, uuid, f"agent took the job ({state})")
            self._agent_took(uuid)
        if flight.ended is not None:
            if state in _HELD and not flight.started:
                detail = failure_detail(flight.ended)
                await self._start_failed(uuid, detail, detail)
                return
            self._release(uuid)
            return
        if flight.started:
            return
        if state in _CANCELLING:
            self.metrics.inc("jobs_cancelled")
            self._emit(EventKind.CANCELLED, uuid, f"job {state} in Buildkite; tearing down")
            await self._cancel_work(uuid, f"the job was {state}")
        elif state in _OVER:  # ended in Buildkite while we provision: stop at once
            self._emit(EventKind.LOST, uuid, f"job {state} in Buildkite; tearing down")
            await self._cancel_work(uuid, f"the job is {state}")
        elif (
            state is None or state in _TERMINAL or state == JobState.SCHEDULED
        ) and flight.expires_at is None:
            self._emit(EventKind.LOST, uuid, f"reservation lost (state {state})")
            await self._cancel_work(uuid, f"the reservation was lost (state {state})")

    # Hooks the stack implements (the breaker and the shared-key watch live there).
    async def _start_failed(self, uuid: str, error: str, detail: str) -> None:
        raise NotImplementedError

    def _agent_took(self, uuid: str) -> None:
        raise NotImplementedError

    def _race_lost(self, uuid: str, state: str | None) -> None:
        raise NotImplementedError

    async def _cancel_work(self, uuid: str, reason: str) -> None:
        flight = self._flights.get(uuid)
        if flight is None or flight.cancelled:
            return
        flight.cancelled, flight.expires_at = True, None
        self._note(uuid, f"Stack {self.config.key} stopped provisioning: {reason}")
        if not flight.dispatched:
            self._release(uuid)
            return
        try:
            await self.dispatcher.cancel(uuid, reason)
        except Exception:
            self._log.exception("job %s: dispatcher cancel failed", uuid, extra={"job_uuid": uuid})
            self._release(uuid)

    async def _finish(self, uuid: str, detail: str) -> None:
        if uuid in self._finished:
            return
        self._finished.add(uuid)
        detail = crop_detail(redact_tokens(detail))
        try:
            await self._api.finish(uuid, detail, -1, "stack_error")
        except StacksAPIError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            if not is_permanent(exc):  # a passing failure: finish it when it comes back
                self._finished.discard(uuid)
            self._log.error("job %s: finish failed: %s", uuid, exc, extra={"job_uuid": uuid})
            return
        self.metrics.inc("jobs_finished_by_stack")
        self._emit(EventKind.FINISHED_BY_STACK, uuid, detail, exit_status=-1,
                   signal_reason="stack_error", detail=detail)  # fmt: skip

    def _release(self, uuid: str) -> None:
        if self._flights.pop(uuid, None) is None:
            return
        self._notes.forget(uuid)
        self.metrics.set_in_flight(len(self._flights))
        if self._wake_poll is not None:
            self._wake_poll.set()

    # --- notifications ----------------------------------------------------------------------

    def _note(self, uuid: str, detail: str) -> None:
        if self.config.notifications:
            self._notes.add(uuid, detail, dt.datetime.now(dt.UTC))

    async def _notify_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            await self._flush_notifications(final=False)

    async def _flush_notifications(self, *, final: bool) -> None:
        while self._notes:
            batch = self._notes.take()
            try:
                result = await self._api.notify(batch)
            except StacksAPIError as exc:
                self._log.warning("notifications dropped (%d): %s", len(batch), exc)
                if not final and isinstance(exc, AuthenticationError):
                    raise Fatal(f"notifications failed permanently: {exc}", exc) from exc
                continue
            for err in result.errors:
                self._log.debug("notifications %s rejected: %s", list(err.indexes), err.error)
            # Go on while some are queued (the limiter paces the requests): one batch a tick
            # fell behind a busy stack, and late notifications are refused after 300 s.

    def _rate_limited(self, endpoint: str, exc: RateLimitError) -> None:
        self._emit(EventKind.RATE_LIMITED, message=f"{endpoint}: 429, waiting {exc.retry_after}s")

    def _emit(self, kind: EventKind, job_uuid: str | None = None, message: str = "",
              **data: Any) -> None:  # fmt: skip
        level = _LEVELS.get(kind, logging.INFO)
        if self._log.isEnabledFor(level):
            prefix = f"job {job_uuid}: " if job_uuid else ""
            self._log.log(level, "%s%s", prefix, message or kind.value,
                          extra={"job_uuid": job_uuid, "event": kind.value})  # fmt: skip
        if self._on_event is not None:
            try:
                self._on_event(StackEvent(kind, job_uuid, message, data))
            except Exception:
                self._log.exception("on_event callback raised")


# Job milestones log at INFO (each line names the job and carries ``job_uuid`` in the record);
# routine steps at DEBUG; trouble at WARNING.
_LEVELS = {
    **dict.fromkeys(
        (EventKind.POLLED, EventKind.RESERVED, EventKind.NOT_RESERVED, EventKind.RENEWED),
        logging.DEBUG,
    ),
    **dict.fromkeys(
        (
            EventKind.DISPATCH_FAILED,
            EventKind.RATE_LIMITED,
            EventKind.API_ERROR,
            EventKind.LOST,
            EventKind.TOKEN_NOT_ISSUED,
        ),
        logging.WARNING,
    ),
}


def failure_detail(ended: AgentExit) -> str:
    head = ended.error or f"The agent exited with status {ended.exit_status} before taking the job"
    output = ended.output.strip()
    return f"{head}.\nLast output:\n{output}" if output else f"{head} (no output)."


def adopted_job(uuid: str) -> ScheduledJob:
    return ScheduledJob(id=uuid, scheduled_at=dt.datetime.now(dt.UTC))


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
