"""``Poller``: lists scheduled jobs, honours ``dispatch_paused``, reserves within free capacity.

One poll reads up to ``max_pages`` pages, drops jobs this stack cannot serve (agent query
rules), jobs not yet runnable and jobs the dispatcher deferred, orders the rest by priority and
age, reserves as many as there is room for (none while the breaker is open: see
:mod:`._failures`) and hands them to the :class:`Launcher`. Under contention with other stacks
it picks within a wider window (:mod:`._spreading`). A 404 (the server forgot the stack) is
handed to the :class:`~._registration.Registration`, which registers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
from collections.abc import Callable

from stacksapi._errors import StacksAPIError
from stacksapi._models import ScheduledJob

from ._api import LimitedAPI, is_permanent
from ._config import StackConfig
from ._events import Emitter, EventKind, job_names
from ._exit import MAX_BACKOFF, Fatal
from ._failures import StartFailures
from ._flights import Flight, FlightTable
from ._launcher import Launcher
from ._metrics import StackMetrics
from ._notifier import Notifier
from ._planning import chunks, select_candidates
from ._records import JobMemory
from ._registration import Registration, forgotten
from ._spreading import Spreading

_MIN_PAGE = 100  # jobs per page at least (runs of unservable jobs are skipped faster)

__all__ = ["Poller"]


class Poller:
    """The poll loop (:meth:`run`). :meth:`wake` polls again at once (capacity was freed)."""

    def __init__(
        self,
        config: StackConfig,
        api: LimitedAPI,
        *,
        table: FlightTable,
        launcher: Launcher,
        notifier: Notifier,
        failures: StartFailures,
        registration: Registration,
        emit: Emitter,
        metrics: StackMetrics,
        clock: Callable[[], float],
        stopping: Callable[[], bool],
        on_polled: Callable[[], None] = lambda: None,
    ) -> None:
        self._cfg = config
        self._api = api
        self._table = table
        self._launcher = launcher
        self._notes = notifier
        self._failures = failures
        self._registration = registration
        self.spreading = Spreading()
        self._emit = emit
        self._metrics = metrics
        self._clock = clock
        self._stopping = stopping
        self._on_polled = on_polled
        self._wake = asyncio.Event()
        self._cursor: str | None = None
        self._filtered_seen = JobMemory(config.job_memory)  # reported once each, bounded
        self._deferred: dict[str, float] = {}  # uuid -> clock time before which it is skipped
        self.paused = False

    @property
    def filtered_remembered(self) -> int:
        """Jobs remembered as filtered (at most ``job_memory``)."""
        return len(self._filtered_seen)

    def wake(self) -> None:
        self._wake.set()

    def defer(self, uuid: str, until: float) -> None:
        """Skip ``uuid`` until ``until`` (the dispatcher said "not now")."""
        now = self._clock()
        self._deferred = {u: t for u, t in self._deferred.items() if t > now}
        self._deferred[uuid] = until

    async def run(self) -> None:
        failures = 0
        while not self._stopping():
            began = self._clock()
            try:
                again, next_runnable = await self._poll_once()
                failures = 0
                self._registration.healthy()
                self._on_polled()
            except StacksAPIError as exc:
                if forgotten(exc) and not self._stopping():
                    await self._registration.recover(exc)  # Fatal when it cannot
                    continue
                if is_permanent(exc):
                    raise Fatal(f"polling failed permanently: {exc}", exc) from exc
                failures += 1
                self._emit(EventKind.API_ERROR, message=f"poll failed (will retry): {exc}")
                delay = min(MAX_BACKOFF, self._cfg.poll_interval * 2**failures)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                continue
            finally:
                self._metrics.observe_poll(self._clock() - began)
            if again:
                continue  # more work may be waiting: the limiter paces us
            wait = self._cfg.poll_interval - (self._clock() - began)
            if next_runnable is not None:
                wait = min(wait, max(0.05, next_runnable))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _poll_once(self) -> tuple[bool, float | None]:
        """One poll. Returns (poll again at once?, seconds until a job becomes runnable)."""
        cfg = self._cfg
        self._wake.clear()
        free = cfg.max_in_flight - len(self._table)
        eligible: dict[str, ScheduledJob] = {}  # by uuid: a job can move to a later page
        next_runnable: dt.datetime | None = None
        now_mono = self._clock()
        skip = {u for u, t in self._deferred.items() if t > now_mono}
        cursor, more = self._cursor, False
        # Read what this stack could take or choose among, no more: a stack with little free
        # capacity on a deep queue would otherwise fetch and parse full pages for a few jobs.
        want = min(self.spreading.window(free), max(free, cfg.page_size))
        limit = min(cfg.page_size, max(want, _MIN_PAGE))
        for page_number in range(cfg.max_pages):
            page = await self._api.list_jobs(cfg.queue_key, limit, cursor)
            self._set_paused(page.cluster_queue.dispatch_paused)
            if self.paused:
                return False, None
            self._metrics.inc("jobs_seen", len(page.jobs))
            now = dt.datetime.now(dt.UTC)
            sel = select_candidates(
                [j for j in page.jobs if j.id not in skip], in_flight=self._table,
                tags=cfg.tags, queue_key=cfg.queue_key, now=now, limit=cfg.page_size,
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
        await self._launcher.retry_failed()
        self._metrics.set_job_records("filtered", len(self._filtered_seen))
        take = self._failures.capacity(free) if eligible and free > 0 else 0
        if take <= 0:
            return False, None
        chosen = self.spreading.choose(list(eligible.values()), take)
        try:
            await self._reserve_and_launch(chosen)
        finally:
            if not any(j.id in self._table for j in chosen):
                self._failures.probe_missed()  # (a no-op unless that was a probe)
        wait = None
        if next_runnable is not None:
            wait = (next_runnable - dt.datetime.now(dt.UTC)).total_seconds()
        backlog = len(eligible) > len(chosen) or more
        return bool(chosen) and backlog and len(self._table) < cfg.max_in_flight, wait

    def _set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            kind = EventKind.PAUSED if paused else EventKind.RESUMED
            self._emit(kind, message="queue dispatch paused" if paused else "queue resumed")

    def _note_filtered(self, filtered: tuple[tuple[ScheduledJob, tuple[str, ...]], ...]) -> None:
        for job, rules in filtered:
            if job.id in self._filtered_seen:
                continue
            self._filtered_seen.add(job.id)
            self._metrics.inc("jobs_filtered")
            self._emit(EventKind.FILTERED, job.id, f"not served here: {', '.join(rules)}",
                       rules=rules, **job_names(job))  # fmt: skip

    async def _reserve_and_launch(self, jobs: list[ScheduledJob]) -> None:
        cfg = self._cfg
        by_id = {j.id: j for j in jobs}
        for batch in chunks([j.id for j in jobs]):
            res = await self._api.reserve(batch, cfg.reservation_expiry_seconds)
            expires = self._clock() + cfg.reservation_expiry_seconds
            self._metrics.inc("jobs_reserved", len(res.reserved))
            self._metrics.inc("jobs_not_reserved", len(res.not_reserved))
            self.spreading.observe(len(batch), len(res.not_reserved))
            for uuid in res.not_reserved:
                self._emit(EventKind.NOT_RESERVED, uuid, "not reserved (taken or gone)")
            reserved = [u for u in res.reserved if u in by_id and u not in self._table]
            for uuid in reserved:
                self._table.add(Flight(by_id[uuid], expires))
                self._emit(EventKind.RESERVED, uuid, "reserved")
                self._notes.note(uuid, f"Reserved by stack {cfg.key}")
            await self._launcher.launch(reserved)
