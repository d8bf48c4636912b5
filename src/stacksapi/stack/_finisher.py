"""``Finisher``: finishes jobs the stack gives up on, retrying until the finish lands.

A finish that fails for a passing reason (a 500, a dropped connection, a 429) is tried again with
backoff, through the rate limiter, until it succeeds or the server refuses it for good (the job
is already terminal, or gone). Meanwhile the job's flight is held (``Flight.finishing``): its
capacity is not reused and the job cannot be reserved and started again behind our back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from stacksapi._errors import AuthenticationError, StacksAPIError

from ._api import LimitedAPI, is_permanent
from ._events import Emitter, EventKind
from ._exit import MAX_BACKOFF, Fatal
from ._flights import FlightTable
from ._metrics import StackMetrics
from ._planning import crop_detail, redact_tokens
from ._pool import WorkerPool
from ._records import DEFAULT_JOB_MEMORY, JobMemory

__all__ = ["Finisher"]


class Finisher:
    """``finish(uuid, detail)`` runs in the background; ``release(uuid)`` is called after."""

    def __init__(
        self,
        api: LimitedAPI,
        table: FlightTable,
        pool: WorkerPool,
        emit: Emitter,
        metrics: StackMetrics,
        *,
        release: Callable[[str], None],
        on_fatal: Callable[[Fatal], None],
        log: logging.Logger,
        memory: int = DEFAULT_JOB_MEMORY,
    ) -> None:
        self._api = api
        self._table = table
        self._pool = pool
        self._emit = emit
        self._metrics = metrics
        self._release = release
        self._on_fatal = on_fatal
        self._log = log
        self._finished = JobMemory(memory)  # finished once each (bounded: a stack runs for days)
        self._pending: set[str] = set()

    @property
    def pending(self) -> int:
        """Finishes not yet landed."""
        return len(self._pending)

    @property
    def remembered(self) -> int:
        """Jobs remembered as finished (at most ``memory``)."""
        return len(self._finished)

    def finish(self, uuid: str, detail: str) -> None:
        """Finish ``uuid`` with ``stack_error`` and ``detail``, then release its flight."""
        if uuid in self._finished or uuid in self._pending:
            return
        self._pending.add(uuid)
        if (flight := self._table.get(uuid)) is not None:
            flight.finishing = True
        self._pool.spawn(lambda: self._run(uuid, detail), f"finish job {uuid}")

    async def _run(self, uuid: str, detail: str) -> None:
        detail = crop_detail(redact_tokens(detail))
        try:
            await self._until_done(uuid, detail)
        finally:
            self._pending.discard(uuid)
            if (flight := self._table.get(uuid)) is not None:
                flight.finishing = False
            self._release(uuid)

    async def _until_done(self, uuid: str, detail: str) -> None:
        attempt = 0
        while True:
            try:
                async with self._pool.slot():
                    await self._api.finish(uuid, detail, -1, "stack_error")
            except StacksAPIError as exc:
                if isinstance(exc, AuthenticationError):
                    self._on_fatal(Fatal(f"finishing a job failed permanently: {exc}", exc))
                    return
                if is_permanent(exc):  # already terminal, or gone: nothing left to finish
                    self._log.error("job %s: finish refused: %s", uuid, exc,
                                    extra={"job_uuid": uuid})  # fmt: skip
                    return
                attempt += 1
                self._metrics.inc("finish_retries")
                self._emit(EventKind.API_ERROR, uuid, f"finish failed (will retry): {exc}")
                delay = min(MAX_BACKOFF, 0.5 * 2 ** (attempt - 1))
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                continue
            self._finished.add(uuid)
            self._metrics.set_job_records("finished", len(self._finished))
            self._metrics.inc("jobs_finished_by_stack")
            self._emit(EventKind.FINISHED_BY_STACK, uuid, detail, exit_status=-1,
                       signal_reason="stack_error", detail=detail)  # fmt: skip
            return
