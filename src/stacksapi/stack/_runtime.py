"""``StackRunner``: the loop that pulls scheduled jobs and hands them to a dispatcher.

``StackRunner`` wires small components that each own their state: a :class:`FlightTable` (the jobs
held), a :class:`Poller` (list, filter, reserve), a :class:`Launcher` (tokens, job details,
dispatch, teardown), a :class:`Watcher` (renewals, state checks, timeouts, fresh tokens), a
:class:`Finisher` (finish with retry) and a :class:`Notifier`. Dispatcher calls and finishes run
in a bounded :class:`WorkerPool`, so no loop ever waits on a dispatcher. Every API call passes a
per-scope rate limiter. Shutting down is :mod:`._shutdown`'s job.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping

from stacksapi._models import ScheduledJob

from ._api import AsyncStacksClient, LimitedAPI
from ._config import StackConfig
from ._dispatcher import AdoptedState, AgentExit, Dispatcher, adopted_states
from ._events import Emitter, EventCallback, EventKind, job_names
from ._exit import Fatal, StackExit
from ._failures import StartFailures
from ._finisher import Finisher
from ._flights import Flight, FlightTable, adopted_job
from ._health import Health
from ._launcher import Launcher
from ._metrics import StackMetrics
from ._notifier import Notifier
from ._planning import chunks
from ._poller import Poller
from ._pool import WorkerPool, cancel_tasks, running_loop
from ._ratelimit import RateLimiter
from ._registration import Registration
from ._sharedkey import SharedKeyWatch
from ._shutdown import Shutdown
from ._status import StatusServer
from ._watcher import Watcher

__all__ = ["Stack", "StackExit", "StackRunner"]

_MAX_RELAUNCHES = 2


class StackRunner:
    """Runs one stack: ``await runner.run_async()`` in asyncio, or ``runner.run()`` in a script.

    Named apart from :class:`stacksapi.Stack`, the registered stack the API returns; the old
    name ``stacksapi.stack.Stack`` still works as an alias.

    ``client`` is a ``stacksapi.AsyncClient`` (the caller opens and closes it), ``dispatcher``
    any :class:`~stacksapi.stack.Dispatcher`. ``on_event`` receives a
    :class:`~stacksapi.stack.StackEvent` for each step, for live progress displays.
    """

    def __init__(
        self,
        client: AsyncStacksClient,
        config: StackConfig,
        dispatcher: Dispatcher,
        *,
        on_event: EventCallback | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.dispatcher = dispatcher
        self.metrics = StackMetrics(stack_key=config.key)
        self.health = Health(poll_interval=config.poll_interval, clock=clock)
        self.status = StatusServer(self.metrics, self.health)
        self._log = logger or logging.getLogger("stacksapi.stack")
        self._clock = clock
        self._emit = Emitter(self._log, on_event, names=self._job_names)
        self._api = LimitedAPI(
            client, config.key, RateLimiter(config.rate_limit_fraction, clock=clock),
            self.metrics, self._rate_limited,
        )  # fmt: skip
        self._table = FlightTable(self.metrics.set_in_flight)
        self._notes = Notifier(self._api, self._log, enabled=config.notifications)
        self._pool = WorkerPool(config.dispatch_concurrency, self._log)
        self._finisher = Finisher(
            self._api, self._table, self._pool, self._emit, self.metrics,
            release=self._release, on_fatal=self._die, log=self._log, memory=config.job_memory,
        )  # fmt: skip
        shared_key = SharedKeyWatch(config.key, self.metrics, self._log, clock)
        self._failures = StartFailures(
            config, table=self._table, finisher=self._finisher, emit=self._emit,
            metrics=self.metrics, shared_key=shared_key, clock=clock, defer=self._defer,
            relaunch=self._relaunch, stopping=lambda: self._stop_requested, log=self._log,
        )  # fmt: skip
        self._registration = Registration(
            self._api, config, emit=self._emit, metrics=self.metrics, shared_key=shared_key,
            table=self._table, clock=clock, log=self._log, stopping=lambda: self._stop_requested,
        )  # fmt: skip
        self._launcher = Launcher(
            config, dispatcher, api=self._api, table=self._table, pool=self._pool,
            finisher=self._finisher, failures=self._failures, notifier=self._notes,
            emit=self._emit, metrics=self.metrics, clock=clock, release=self._release,
            defer=self._defer, log=self._log,
        )  # fmt: skip
        self._watcher = Watcher(
            config, self._api, table=self._table, launcher=self._launcher,
            finisher=self._finisher, failures=self._failures, emit=self._emit,
            metrics=self.metrics, clock=clock, release=self._release,
            on_error=self._registration.noticed,
        )  # fmt: skip
        self._poller = Poller(
            config, self._api, table=self._table, launcher=self._launcher, notifier=self._notes,
            failures=self._failures, registration=self._registration, emit=self._emit,
            metrics=self.metrics, clock=clock, stopping=lambda: self._stop_requested,
            on_polled=self.health.polled,
        )  # fmt: skip
        self._handing_back: set[str] = set()
        self._stop_requested = False
        self._force = False
        self._fatal: Fatal | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # --- public -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> Mapping[str, ScheduledJob]:
        """Jobs this stack currently holds, by uuid."""
        return self._table.jobs()

    @property
    def paused(self) -> bool:
        """Whether the last poll saw ``dispatch_paused``."""
        return self._poller.paused

    @property
    def breaker_open(self) -> bool:
        """Whether the breaker is open: the same failure across consecutive jobs stopped the
        stack taking jobs until a probe's agent takes its job (see ``docs/stack.md``)."""
        return self._failures.is_open

    @property
    def job_records(self) -> Mapping[str, int]:
        """How many jobs each bounded record remembers (``finished``, ``filtered``)."""
        return {"finished": self._finisher.remembered, "filtered": self._poller.filtered_remembered}

    def request_stop(self) -> None:
        """Stop taking jobs and shut down gracefully. A second call skips the grace period.

        Safe from any thread and from signal handlers.
        """
        with self._lock:
            self._force = self._stop_requested
            self._stop_requested = True
        self._call_in_loop(lambda: self._stop.set() if self._stop is not None else None)

    def _job_names(self, job_uuid: str) -> dict[str, str]:
        """``pipeline`` and ``step`` of a job this stack holds (empty once it let the job go)."""
        flight = self._table.get(job_uuid)
        return job_names(flight.job) if flight is not None else {}

    def run(self) -> StackExit:
        """Blocking: run until stopped (SIGINT/SIGTERM call :meth:`request_stop`)."""
        return asyncio.run(self._run_with_signals())

    async def run_async(self) -> StackExit:
        """Run until :meth:`request_stop` or a permanent error; deregister before returning."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        if self.config.metrics_port is not None:  # probes answer while it registers
            await self.status.start(self.config.metrics_port, self.config.metrics_host)
        try:
            await self._registration.register()
        except Fatal as fatal:
            self.health.failed = fatal.reason
            await self.status.close()
            self._emit(EventKind.STOPPED, message=fatal.reason, reason=fatal.reason, ok=False)
            return StackExit(fatal.reason, fatal.cause)
        self.health.registered = True
        result = StackExit("stop requested")
        loops: list[asyncio.Task[None]] = []
        try:
            try:
                found = adopted_states(await self.dispatcher.start(self))
            except Exception as exc:
                self._log.exception("stack %s: the dispatcher failed to start", self.config.key)
                result = StackExit(f"the dispatcher failed to start: {exc}", exc)
                return result
            self._adopt(found)
            loops = [
                asyncio.create_task(self._poller.run(), name="stack-poll"),
                asyncio.create_task(self._watcher.run(), name="stack-watch"),
                asyncio.create_task(self._notes.run(), name="stack-notify"),
            ]
            result = await self._until_stopped(loops)
        finally:
            await self._shutdown(loops, graceful=result.ok)
            self._emit(EventKind.STOPPED, message=result.reason, reason=result.reason, ok=result.ok)
        return result

    # --- dispatcher sink --------------------------------------------------------------------

    def agent_ended(self, result: AgentExit) -> None:
        """Called by the dispatcher when the work for a job is gone. Thread-safe: from another
        thread the result is handed to the event loop."""
        loop = self._loop
        if loop is not None and running_loop() is not loop:
            self._call_in_loop(lambda: self._agent_ended(result))
        else:
            self._agent_ended(result)

    def agent_ended_threadsafe(self, result: AgentExit) -> None:
        """The same as :meth:`agent_ended` (which is thread-safe itself); an explicit name."""
        self.agent_ended(result)

    def _agent_ended(self, result: AgentExit) -> None:
        uuid = result.job_uuid
        flight = self._table.get(uuid)
        if flight is None:
            return
        self._emit(EventKind.AGENT_ENDED, uuid, f"agent ended (exit status {result.exit_status})",
                   exit_status=result.exit_status)  # fmt: skip
        if flight.redispatch and not self._stop_requested:  # torn down for a fresh token
            self._pool.spawn(lambda: self._launcher.redispatched(uuid), f"re-dispatch job {uuid}")
            return
        if self._token_was_stale(result) and self._relaunch(uuid):
            return
        if result.succeeded or flight.started or flight.cancelled:
            if result.succeeded and not flight.started and not flight.cancelled:
                self._failures.agent_took(uuid)  # its agent ran: the launch path works
            self._release(uuid)
            return
        flight.ended = result  # failed: was the job taken by the agent? a state check decides
        self._watcher.verify(uuid)

    def _token_was_stale(self, result: AgentExit) -> bool:
        """An agent that failed before starting while its token was stale (adopted work whose
        token predates the restart, or one past its expiry) most likely was refused for it: the
        job is started again with a fresh token (:meth:`_relaunch`) rather than failed."""
        flight = self._table.get(result.job_uuid)
        if flight is None or result.succeeded or flight.started or flight.cancelled:
            return False
        expired = flight.token_expires_at is not None and flight.token_expires_at <= self._clock()
        return flight.token_unknown or expired

    def _relaunch(self, uuid: str) -> bool:
        """Dispatch a job whose agent failed before starting again, with a fresh token (at most
        ``_MAX_RELAUNCHES`` times). False when it cannot or should not be."""
        flight = self._table.get(uuid)
        if flight is None or flight.cancelled or flight.finishing or self._stop_requested:
            return False
        if not self.config.issue_tokens or flight.relaunches >= _MAX_RELAUNCHES:
            return False
        flight.relaunches += 1
        flight.ended = None
        self.metrics.inc("jobs_redispatched")
        self._pool.spawn(lambda: self._launcher.redispatched(uuid), f"re-dispatch job {uuid}")
        return True

    def job_started(self, job_uuid: str) -> bool:
        """True once a state check saw an agent take the job (``ProvisioningSink``)."""
        flight = self._table.get(job_uuid)
        return flight is not None and flight.started

    def notify(self, job_uuid: str, detail: str) -> None:
        """Post ``detail`` as a notification on a job in flight (``ProvisioningSink``)."""
        if job_uuid in self._table:
            self._notes.note(job_uuid, detail)

    # --- wiring -----------------------------------------------------------------------------

    def _adopt(self, found: Mapping[str, AdoptedState]) -> None:
        now = self._clock()
        for uuid, state in found.items():
            self._table.add(Flight(
                adopted_job(uuid), None, since=now, dispatched=True,
                started=state == AdoptedState.STARTED, adopted=state, token_unknown=True,
            ))  # fmt: skip
            self._watcher.verify(uuid)  # renewed, state-checked and timed out like our own
            self.metrics.inc("jobs_adopted")
            self._emit(EventKind.ADOPTED, uuid, f"adopted: its work was still alive ({state})",
                       state=str(state))  # fmt: skip

    async def _until_stopped(self, loops: list[asyncio.Task[None]]) -> StackExit:
        assert self._stop is not None
        stop_wait = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait([stop_wait, *loops], return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        for task in done:
            err = None if task is stop_wait else task.exception()
            if err is not None:
                died = err if isinstance(err, Fatal) else Fatal(f"internal error: {err!r}", err)
                self._fatal = self._fatal or died
        if self._fatal is not None:
            self.health.failed = self._fatal.reason
            self._log.error("stack %s stopping: %s", self.config.key, self._fatal.reason)
            return StackExit(self._fatal.reason, self._fatal.cause)
        return StackExit("stop requested")

    def _die(self, fatal: Fatal) -> None:
        self._fatal = self._fatal or fatal
        if self._stop is not None:
            self._stop.set()

    def _release(self, uuid: str) -> None:
        if self._table.release(uuid):
            self._notes.forget(uuid)
            self._poller.wake()

    def _defer(self, uuid: str, retry_after: float) -> None:
        """The dispatcher said "not now": hand the job back unfailed and skip it a while."""
        wait = retry_after if retry_after >= 0 else self.config.poll_interval
        self._poller.defer(uuid, self._clock() + wait)
        if (flight := self._table.get(uuid)) is not None:
            flight.cancelled, flight.expires_at = True, None
        self._release(uuid)
        self._handing_back.add(uuid)
        if len(self._handing_back) == 1:  # one request for the jobs handed back together
            self._pool.spawn(self._hand_back, "hand back jobs")

    async def _hand_back(self) -> None:
        """A 1-second reservation (the API has no "release"): the jobs list again at once."""
        await asyncio.sleep(0)  # gather what is handed back in the same moment
        uuids, self._handing_back = sorted(self._handing_back), set()
        for batch in chunks(uuids):
            await self._api.reserve(batch, 1)

    def _call_in_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if running_loop() is loop:
                fn()
            else:
                loop.call_soon_threadsafe(fn)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def _rate_limited(self, endpoint: str, exc: object) -> None:
        wait = getattr(exc, "retry_after", None)
        self._emit(EventKind.RATE_LIMITED, message=f"{endpoint}: 429, waiting {wait}s")

    # --- lifecycle --------------------------------------------------------------------------

    async def _run_with_signals(self) -> StackExit:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        try:
            return await self.run_async()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _shutdown(self, loops: list[asyncio.Task[None]], *, graceful: bool) -> None:
        self._stop_requested = True
        self.health.stopping = True
        poll, rest = (loops[0], loops[1:]) if loops else (None, [])
        await cancel_tasks([poll] if poll else [])
        shutdown = Shutdown(
            self.config, self._table, pool=self._pool, launcher=self._launcher, emit=self._emit,
            clock=self._clock, forced=lambda: self._force,
            watcher_alive=lambda: not any(t.done() for t in rest),
        )  # fmt: skip
        left = await shutdown.wind_down(graceful=graceful)
        await cancel_tasks(rest)
        await self._pool.close()
        try:
            await self._notes.flush(final=True)
            await self.dispatcher.shutdown(left)
        except Exception:
            self._log.exception("stack %s: error while shutting down", self.config.key)
        await shutdown.deregister(self._api)
        await self.status.close()


Stack = StackRunner
"""The former name of :class:`StackRunner`, kept so existing code runs unchanged."""
