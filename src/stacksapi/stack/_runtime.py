"""``Stack``: the loop that pulls scheduled jobs and hands them to a dispatcher.

One asyncio task polls (register once, list the first pages, honour ``dispatch_paused``, filter,
order, reserve within free capacity, issue job acquisition tokens, dispatch); another watches
what is in flight (:mod:`._inflight`: renew reservations, check states in batches, tear down work
for cancelled jobs, finish jobs whose agent failed before taking them); a third sends
notifications in batches. Every API call passes a per-scope rate limiter. The decisions live in
:mod:`._planning` as pure functions; this module is the I/O shell around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping

from stacksapi._errors import AuthenticationError, StacksAPIError
from stacksapi._models import ScheduledJob, Secret

from ._api import AsyncStacksClient, LimitedAPI, is_permanent
from ._breaker import Breaker, Verdict
from ._config import StackConfig
from ._dispatcher import AgentExit, Dispatcher, DispatchError, DispatchRequest
from ._events import EventCallback, EventKind
from ._inflight import (
    MAX_BACKOFF,
    Fatal,
    Flight,
    InFlight,
    StackExit,
    adopted_job,
    cancel_tasks,
    running_loop,
)
from ._metrics import StackMetrics
from ._planning import (
    NotificationBatcher,
    aware,
    chunks,
    redact_tokens,
    select_candidates,
)
from ._ratelimit import RateLimiter
from ._records import JobMemory
from ._registration import Registration, forgotten
from ._sharedkey import SharedKeyWatch
from ._spreading import Spreading

__all__ = ["Stack", "StackExit"]

_MIN_PAGE = 100  # jobs per page at least (the runs of unservable jobs are skipped faster)


class Stack(InFlight):
    """Runs one stack: ``await stack.run_async()`` in asyncio, or ``stack.run()`` in a script.

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
        self._log = logger or logging.getLogger("stacksapi.stack")
        self._on_event = on_event
        self._clock = clock
        self._api = LimitedAPI(
            client, config.key, RateLimiter(config.rate_limit_fraction, clock=clock),
            self.metrics, self._rate_limited,
        )  # fmt: skip
        self._flights: dict[str, Flight] = {}
        self._verify: set[str] = set()
        self._awaiting_token: set[str] = set()  # held; token request failed on a transient error
        self._notes = NotificationBatcher()
        self._filtered_seen = JobMemory(config.job_memory)
        self._finished = JobMemory(config.job_memory)
        self._registration = Registration(
            self._api,
            config,
            self.metrics,
            self._emit,
            log=self._log,
            stopping=lambda: self._stop_requested,
        )
        self._shared_key = SharedKeyWatch(config.key, self.metrics, self._log, clock)
        self._breaker = Breaker(config.breaker_threshold, config.breaker_backoff_seconds)
        self._spreading = Spreading()
        self._tasks: set[asyncio.Task[None]] = set()
        self._cursor: str | None = None
        self._paused = False
        self._stop_requested = False
        self._force = False
        self._stop: asyncio.Event | None = None
        self._wake_poll: asyncio.Event | None = None
        self._wake_watch: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    # --- public -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> Mapping[str, ScheduledJob]:
        """Jobs this stack currently holds, by uuid."""
        return {u: f.job for u, f in self._flights.items()}

    @property
    def paused(self) -> bool:
        """Whether the last poll saw ``dispatch_paused``."""
        return self._paused

    @property
    def breaker_open(self) -> bool:
        """Whether the breaker is open: the same failure across consecutive jobs stopped the
        stack taking jobs until a probe dispatch works (see ``docs/stack.md``)."""
        return self._breaker.is_open

    @property
    def job_records(self) -> Mapping[str, int]:
        """How many jobs each bounded record remembers (``finished``, ``filtered``)."""
        return {"finished": len(self._finished), "filtered": len(self._filtered_seen)}

    def request_stop(self) -> None:
        """Stop taking jobs and shut down gracefully. A second call skips the grace period.

        Safe from any thread and from signal handlers.
        """
        with self._lock:
            self._force = self._stop_requested
            self._stop_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                if running_loop() is loop:
                    stop.set()
                else:
                    loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass

    def run(self) -> StackExit:
        """Blocking: run until stopped (SIGINT/SIGTERM call :meth:`request_stop`)."""
        return asyncio.run(self._run_with_signals())

    async def run_async(self) -> StackExit:
        """Run until :meth:`request_stop` or a permanent error; deregister before returning."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._wake_poll, self._wake_watch = asyncio.Event(), asyncio.Event()
        if self._stop_requested:
            self._stop.set()
        try:
            await self._registration.register()
        except Fatal as fatal:
            self._emit(EventKind.STOPPED, message=fatal.reason, reason=fatal.reason, ok=False)
            return StackExit(fatal.reason, fatal.cause)
        if self.config.metrics_port is not None:
            self.metrics.serve(self.config.metrics_port, self.config.metrics_host)
        result = StackExit("stop requested")
        loops: list[asyncio.Task[None]] = []
        try:
            try:
                adopted = await self.dispatcher.start(self)
            except Exception as exc:
                self._log.exception("stack %s: the dispatcher failed to start", self.config.key)
                result = StackExit(f"the dispatcher failed to start: {exc}", exc)
                return result
            for uuid in adopted:
                self._flights[uuid] = Flight(adopted_job(uuid), None, True, True)
                self._log.info("job %s: adopted, its agent is already running", uuid,
                               extra={"job_uuid": uuid, "event": "adopted"})  # fmt: skip
            self.metrics.set_in_flight(len(self._flights))
            loops = [
                asyncio.create_task(self._poll_loop(), name="stack-poll"),
                asyncio.create_task(self._watch_loop(), name="stack-watch"),
                asyncio.create_task(self._notify_loop(), name="stack-notify"),
            ]
            stop_wait = asyncio.create_task(self._stop.wait())
            done, _ = await asyncio.wait([stop_wait, *loops], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            for task in done:
                err = None if task is stop_wait else task.exception()
                if err is not None:
                    died = err if isinstance(err, Fatal) else Fatal(f"internal error: {err!r}", err)
                    result = StackExit(died.reason, died.cause)
                    self._log.error("stack %s stopping: %s", self.config.key, died.reason)
        finally:
            await self._shutdown(loops, graceful=result.ok)
            self._emit(EventKind.STOPPED, message=result.reason, reason=result.reason, ok=result.ok)
        return result

    # --- dispatcher sink --------------------------------------------------------------------

    def agent_ended(self, result: AgentExit) -> None:
        """Called by the dispatcher when the work for a job is gone."""
        flight = self._flights.get(result.job_uuid)
        if flight is None:
            return
        self._emit(
            EventKind.AGENT_ENDED, result.job_uuid,
            f"agent ended (exit status {result.exit_status})", exit_status=result.exit_status,
        )  # fmt: skip
        if result.succeeded or flight.started or flight.cancelled:
            if result.succeeded and not flight.started:
                self._agent_took(result.job_uuid)  # its agent ran: the launch path works
            self._release(result.job_uuid)
            return
        flight.ended = result  # failed: was the job taken by the agent? a state check decides
        self._verify.add(result.job_uuid)
        if self._wake_watch is not None:
            self._wake_watch.set()

    def job_started(self, job_uuid: str) -> bool:
        """True once a state check saw an agent take the job (``ProvisioningSink``)."""
        flight = self._flights.get(job_uuid)
        return flight is not None and flight.started

    def notify(self, job_uuid: str, detail: str) -> None:
        """Post ``detail`` as a notification on a job in flight (``ProvisioningSink``)."""
        if job_uuid in self._flights:
            self._note(job_uuid, detail)

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
        self._emit(EventKind.STOPPING, message="stopping: no new jobs")
        poll, rest = (loops[0], loops[1:]) if loops else (None, [])
        await cancel_tasks([poll] if poll else [])
        grace = self.config.shutdown_grace if graceful else 0.0
        deadline = self._clock() + grace
        if self._tasks:  # let launches under way complete, so none is left half-done
            await asyncio.wait(list(self._tasks), timeout=max(grace, 1.0))
        for uuid in [u for u, f in self._flights.items() if not f.dispatched]:
            await self._cancel_work(uuid, "the stack is shutting down")  # never handed over
        while self._unstarted() and self._clock() < deadline and not self._force:
            if any(t.done() for t in rest):
                break  # the watcher died: nobody will see the agents start
            await asyncio.sleep(min(0.1, max(0.0, deadline - self._clock())))
        for uuid in self._unstarted():
            await self._cancel_work(uuid, "the stack is shutting down")
        await cancel_tasks(list(self._tasks))
        await cancel_tasks(rest)
        try:
            await self._flush_notifications(final=True)
            left = 0.0 if self._force else max(0.0, deadline - self._clock())
            await self.dispatcher.shutdown(left)
        except Exception:
            self._log.exception("stack %s: error while shutting down", self.config.key)
        try:
            await self._api.deregister()
            self._emit(EventKind.DEREGISTERED, message=f"deregistered stack {self.config.key!r}")
        except StacksAPIError as exc:
            self._log.error("stack %s: deregister failed: %s", self.config.key, exc)
        self.metrics.close()

    def _unstarted(self) -> list[str]:
        return [u for u, f in self._flights.items() if not f.started and not f.cancelled]

    # --- polling ----------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        assert self._wake_poll is not None
        failures = 0
        while not self._stop_requested:
            began = self._clock()
            try:
                again, next_runnable = await self._poll_once()
                failures = 0
                self._registration.healthy()
            except StacksAPIError as exc:
                if forgotten(exc) and not self._stop_requested:
                    self._shared_key.sign("the server forgot the stack while it ran")
                    await self._registration.recover(exc)
                    continue
                if is_permanent(exc):
                    raise Fatal(f"polling failed permanently: {exc}", exc) from exc
                failures += 1
                self._emit(EventKind.API_ERROR, message=f"poll failed (will retry): {exc}")
                delay = min(MAX_BACKOFF, self.config.poll_interval * 2**failures)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                continue
            finally:
                self.metrics.observe_poll(self._clock() - began)
            if again:
                continue  # more work may be waiting: the limiter paces us
            wait = self.config.poll_interval - (self._clock() - began)
            if next_runnable is not None:
                wait = min(wait, max(0.05, next_runnable))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake_poll.wait(), wait)

    async def _poll_once(self) -> tuple[bool, float | None]:
        """One poll. Returns (poll again at once?, seconds until a job becomes runnable)."""
        cfg = self.config
        assert self._wake_poll is not None
        self._wake_poll.clear()
        free = cfg.max_in_flight - len(self._flights)
        eligible: dict[str, ScheduledJob] = {}  # by uuid: a job can move to a later page
        next_runnable: dt.datetime | None = None
        cursor, more = self._cursor, False
        # Read no more than this stack could take (or choose among): a stack with little free
        # capacity on a deep queue would otherwise fetch and parse full pages for a few jobs.
        want = min(self._spreading.window(free), max(free, cfg.page_size))
        limit = min(cfg.page_size, max(want, _MIN_PAGE))
        for page_number in range(cfg.max_pages):
            page = await self._api.list_jobs(cfg.queue_key, limit, cursor)
            self._set_paused(page.cluster_queue.dispatch_paused)
            if self._paused:
                return False, None
            self.metrics.inc("jobs_seen", len(page.jobs))
            now = dt.datetime.now(dt.UTC)
            sel = select_candidates(
                page.jobs, in_flight=self._flights, tags=cfg.tags, queue_key=cfg.queue_key,
                now=now, limit=cfg.page_size,
            )  # fmt: skip
            self._note_filtered(sel.filtered)
            for job in sel.candidates:
                eligible.setdefault(job.id, job)
            if sel.next_runnable_at is not None:
                next_runnable = min(next_runnable or sel.next_runnable_at, sel.next_runnable_at)
            more = page.page_info.has_next_page and page.page_info.end_cursor is not None
            cursor = page.page_info.end_cursor
            self._emit(EventKind.POLLED, message=f"page {page_number + 1}: {len(page.jobs)} jobs",
                       jobs=len(page.jobs), paused=False)  # fmt: skip
            if len(eligible) >= want or not more:
                break
        # Resume from the cursor next time only when the pages read held nothing to do, so jobs
        # behind a wall of unservable ones are reached; otherwise start from the top again.
        self._cursor = cursor if more and not eligible else None
        await self._retry_tokens()
        self.metrics.set_job_records("finished", len(self._finished))
        self.metrics.set_job_records("filtered", len(self._filtered_seen))
        take = self._breaker.capacity(free, self._clock()) if eligible else 0
        if take <= 0:
            return False, None
        chosen = self._spreading.choose(list(eligible.values()), take)
        try:
            await self._reserve_and_dispatch(chosen)
        finally:
            if not any(u in self._flights for u in (j.id for j in chosen)):
                self._breaker.probe_missed()  # (a no-op unless that was a probe)
        wait = None
        if next_runnable is not None:
            wait = (next_runnable - dt.datetime.now(dt.UTC)).total_seconds()
        backlog = len(eligible) > len(chosen) or more
        return bool(chosen) and backlog and len(self._flights) < cfg.max_in_flight, wait

    def _set_paused(self, paused: bool) -> None:
        if paused != self._paused:
            self._paused = paused
            kind = EventKind.PAUSED if paused else EventKind.RESUMED
            self._emit(kind, message="queue dispatch paused" if paused else "queue resumed")

    def _note_filtered(self, filtered: tuple[tuple[ScheduledJob, tuple[str, ...]], ...]) -> None:
        for job, rules in filtered:
            if job.id in self._filtered_seen:
                continue
            self._filtered_seen.add(job.id)
            self.metrics.inc("jobs_filtered")
            self._emit(EventKind.FILTERED, job.id, f"not served here: {', '.join(rules)}",
                       rules=rules)  # fmt: skip

    async def _reserve_and_dispatch(self, jobs: list[ScheduledJob]) -> None:
        cfg = self.config
        by_id = {j.id: j for j in jobs}
        for batch in chunks([j.id for j in jobs]):
            res = await self._api.reserve(batch, cfg.reservation_expiry_seconds)
            expires = self._clock() + cfg.reservation_expiry_seconds
            self.metrics.inc("jobs_reserved", len(res.reserved))
            self.metrics.inc("jobs_not_reserved", len(res.not_reserved))
            self._spreading.observe(len(batch), len(res.not_reserved))
            for uuid in res.not_reserved:
                self._emit(EventKind.NOT_RESERVED, uuid, "not reserved (taken or gone)")
            reserved = [u for u in res.reserved if u in by_id and u not in self._flights]
            for uuid in reserved:
                self._flights[uuid] = Flight(by_id[uuid], expires)
                self._emit(EventKind.RESERVED, uuid, "reserved")
                self._note(uuid, f"Reserved by stack {cfg.key}")
            self.metrics.set_in_flight(len(self._flights))
            await self._dispatch_held(reserved)

    async def _dispatch_held(self, uuids: list[str]) -> None:
        """Issue tokens for jobs this stack holds and hand them to the dispatcher."""
        tokens: dict[str, Secret | None] = dict.fromkeys(uuids)
        if self.config.issue_tokens and uuids:
            tokens = await self._issue_tokens(uuids)
        for uuid, token in tokens.items():
            task = asyncio.create_task(self._dispatch(self._flights[uuid].job, token))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _retry_tokens(self) -> None:
        """Ask again for held jobs whose token request failed on a transient error."""
        retry = sorted(
            u for u in self._awaiting_token if u in self._flights and not self._flights[u].cancelled
        )
        self._awaiting_token.clear()
        if retry:
            await self._dispatch_held(retry)

    async def _issue_tokens(self, uuids: list[str]) -> dict[str, Secret | None]:
        try:
            issued = await self._api.tokens(uuids, self.config.token_lifetime_seconds)
        except StacksAPIError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            if not is_permanent(exc):  # still held (and renewed): ask again at the next poll
                self._awaiting_token.update(uuids)
                self._emit(EventKind.API_ERROR, message=f"tokens failed (will retry): {exc}")
                return {}
            self._log.error("job acquisition tokens failed for %d jobs: %s", len(uuids), exc)
            for uuid in uuids:  # their reservations lapse and they return to the queue
                self._emit(EventKind.TOKEN_NOT_ISSUED, uuid, f"no acquisition token: {exc}")
                self._release(uuid)
            return {}
        out: dict[str, Secret | None] = {
            t.job_uuid: t.job_acquisition_token
            for t in issued.job_acquisition_tokens
            if t.job_uuid in self._flights
        }
        for uuid in [*issued.not_issued, *(u for u in uuids if u not in out)]:
            if uuid in self._flights:
                self._emit(EventKind.TOKEN_NOT_ISSUED, uuid, "no acquisition token issued")
                self._release(uuid)
        return out

    async def _dispatch(self, job: ScheduledJob, token: Secret | None) -> None:
        cfg, uuid = self.config, job.id
        request = DispatchRequest(job, cfg.key, cfg.queue_key, token)
        flight = self._flights.get(uuid)
        if flight is None:
            return
        flight.dispatched = True
        try:
            await self.dispatcher.dispatch(request)
        except DispatchError as exc:
            error = str(exc)
            detail = redact_tokens(f"The stack could not start an agent for this job: {exc}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            detail = redact_tokens(f"The stack's dispatcher failed: {error}")
            trace = redact_tokens("".join(traceback.format_exception(exc)))
            self._log.error("job %s: dispatcher raised:\n%s", uuid, trace, extra={"job_uuid": uuid})
        else:
            self._breaker.success(started=False)
            self.metrics.inc("jobs_dispatched")
            wait = (dt.datetime.now(dt.UTC) - aware(job.scheduled_at)).total_seconds()
            self.metrics.observe_dispatch_wait(wait)
            self._emit(EventKind.DISPATCHED, uuid, "dispatched", wait=wait)
            self._note(uuid, f"Stack {cfg.key} is starting an agent")
            return
        self.metrics.inc("dispatch_failures")
        self._emit(EventKind.DISPATCH_FAILED, uuid, detail)
        await self._start_failed(uuid, redact_tokens(error), detail)

    # --- failures to start: the job's, or the infrastructure's ------------------------------

    async def _start_failed(self, uuid: str, error: str, detail: str) -> None:
        """A job failed to start: finish it, or, when the breaker says the failure is about the
        infrastructure, hand it back unfailed (and everything else not yet launched)."""
        verdict = self._breaker.failure(uuid, error, self._clock())
        if verdict is Verdict.JOB:
            await self._finish(uuid, detail)
            self._release(uuid)
            return
        retry_in = max(0.0, self._breaker.retry_at - self._clock())
        if verdict is Verdict.TRIPPED:
            self.metrics.inc("breaker_trips")
            self.metrics.set_breaker_open(True)
            self._log.warning(
                "stack %s: breaker open: the same failure on consecutive jobs (%s); taking no "
                "jobs, handing back what is held, probing again in %.1f s", self.config.key,
                self._breaker.reason, retry_in, extra={"event": "breaker_open"},
            )  # fmt: skip
            self._emit(EventKind.BREAKER_OPEN, message=f"breaker open: {self._breaker.reason}",
                       reason=self._breaker.reason, retry_in=retry_in)  # fmt: skip
        elif verdict is Verdict.PROBE_FAILED:
            self._log.warning("stack %s: breaker still open: the probe failed (%s); next in %.1f s",
                              self.config.key, error.strip()[:200], retry_in,
                              extra={"event": "breaker_probe_failed"})  # fmt: skip
        waiting = [u for u, f in self._flights.items() if not f.dispatched and not f.cancelled]
        await self._hand_back([uuid, *(u for u in waiting if u != uuid)], error)

    async def _hand_back(self, uuids: list[str], why: str) -> None:
        """Let jobs go unfailed: their reservations are cut to one second (the API has no
        "release"), so they list again at once for any stack."""
        for batch in chunks(uuids):
            try:
                await self._api.reserve(batch, 1)
            except StacksAPIError as exc:  # they return at their reservation's expiry instead
                self._log.debug("handing back %d jobs: %s", len(batch), exc)
        for uuid in uuids:
            if uuid not in self._flights:
                continue
            self.metrics.inc("jobs_handed_back")
            self._emit(EventKind.HANDED_BACK, uuid, f"handed back unfailed: {why}")
            self._note(uuid, f"Stack {self.config.key} handed the job back: {why}")
            self._awaiting_token.discard(uuid)
            self._release(uuid)

    def _agent_took(self, uuid: str) -> None:
        """An agent took a job this stack launched: the launch path works."""
        if self._breaker.success(started=True):
            self.metrics.set_breaker_open(False)
            self._log.warning("stack %s: breaker closed: an agent took job %s; taking jobs again",
                              self.config.key, uuid, extra={"event": "breaker_closed"})  # fmt: skip
            self._emit(EventKind.BREAKER_CLOSED, uuid, "breaker closed: taking jobs again")

    def _race_lost(self, uuid: str, state: str | None) -> None:
        """Our agent failed, and another agent holds the job: it lost the acquire race."""
        self.metrics.inc("acquire_races_lost")
        self._emit(EventKind.ACQUIRE_LOST, uuid,
                   f"another agent took the job first ({state}); not a failure")  # fmt: skip
        self._shared_key.sign(f"an agent lost the acquire race for job {uuid}")
