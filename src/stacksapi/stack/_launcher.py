"""``Launcher``: turns held jobs into dispatcher work, and tears that work down.

For each job the stack reserved it issues a job acquisition token, fetches the job once
(``get_job``: command, env, plugins) and hands a :class:`DispatchRequest` to the dispatcher in
the worker pool. It also keeps tokens fresh for work still provisioning (``refresh_token``, or a
teardown and a new dispatch for a dispatcher that cannot take one), and cancels work. Nothing
here waits for a dispatcher on the caller's behalf: each call is a task in the pool.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable, Sequence
from functools import partial

from stacksapi._errors import AuthenticationError, StacksAPIError
from stacksapi._models import Secret

from ._api import LimitedAPI, is_permanent
from ._config import StackConfig
from ._dispatcher import (
    DispatchDeferred,
    Dispatcher,
    DispatchError,
    DispatchRequest,
    TokenRefresher,
)
from ._events import Emitter, EventKind
from ._failures import StartFailures
from ._finisher import Finisher
from ._flights import FlightTable
from ._metrics import StackMetrics
from ._notifier import Notifier
from ._planning import aware, chunks, redact_tokens
from ._pool import WorkerPool

__all__ = ["DEFAULT_TOKEN_LIFETIME", "Launcher"]

DEFAULT_TOKEN_LIFETIME = 900
"""The server's token lifetime when the stack does not ask for one (seconds)."""


class Launcher:
    """Dispatches held jobs and cancels their work. See the module docstring."""

    def __init__(
        self,
        config: StackConfig,
        dispatcher: Dispatcher,
        *,
        api: LimitedAPI,
        table: FlightTable,
        pool: WorkerPool,
        finisher: Finisher,
        failures: StartFailures,
        notifier: Notifier,
        emit: Emitter,
        metrics: StackMetrics,
        clock: Callable[[], float],
        release: Callable[[str], None],
        defer: Callable[[str, float], None],
        log: logging.Logger,
    ) -> None:
        self._cfg = config
        self._dispatcher = dispatcher
        self._api = api
        self._table = table
        self._pool = pool
        self._finisher = finisher
        self._failures = failures
        self._notes = notifier
        self._emit = emit
        self._metrics = metrics
        self._clock = clock
        self._release = release
        self._defer = defer
        self._log = log
        self._retry: set[str] = set()  # held; a token or job fetch failed on a passing error

    @property
    def token_lifetime(self) -> int:
        return self._cfg.token_lifetime_seconds or DEFAULT_TOKEN_LIFETIME

    # --- dispatch ---------------------------------------------------------------------------

    async def launch(self, uuids: Sequence[str]) -> None:
        """Issue tokens for held jobs and hand each to the dispatcher (in the pool)."""
        tokens: dict[str, Secret | None] = dict.fromkeys(uuids)
        if self._cfg.issue_tokens and uuids:
            tokens = await self._issue(uuids)
        for uuid, token in tokens.items():
            if (flight := self._table.get(uuid)) is None or flight.cancelled:
                continue
            flight.dispatched = True
            flight.since = flight.since or self._clock()  # a re-dispatch keeps the first start
            if token is not None:
                flight.token_expires_at = self._clock() + self.token_lifetime
                flight.token_unknown = False
            self._pool.spawn(partial(self._dispatch, uuid, token), f"dispatch job {uuid}")

    async def retry_failed(self) -> None:
        """Launch again held jobs whose token or job fetch failed on a passing error."""
        retry = sorted(
            u for u in self._retry if (f := self._table.get(u)) is not None and not f.cancelled
        )
        self._retry.clear()
        if retry:
            await self.launch(retry)

    async def _issue(self, uuids: Sequence[str]) -> dict[str, Secret | None]:
        try:
            issued = await self._api.tokens(uuids, self._cfg.token_lifetime_seconds)
        except StacksAPIError as exc:
            if isinstance(exc, AuthenticationError):
                raise
            if not is_permanent(exc):  # still held (and renewed): ask again at the next poll
                self._retry.update(uuids)
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
            if t.job_uuid in self._table
        }
        for uuid in [*issued.not_issued, *(u for u in uuids if u not in out)]:
            if uuid in self._table:
                self._emit(EventKind.TOKEN_NOT_ISSUED, uuid, "no acquisition token issued")
                self._release(uuid)
        return out

    async def _dispatch(self, uuid: str, token: Secret | None) -> None:
        cfg = self._cfg
        flight = self._table.get(uuid)
        if flight is None or flight.cancelled:
            return
        if flight.details is None and cfg.fetch_job_details:
            try:
                async with self._pool.slot():  # thousands of fetches at once swamp the
                    flight.details = await self._api.job(uuid)  # connection pool
            except StacksAPIError as exc:
                if isinstance(exc, AuthenticationError) or not is_permanent(exc):
                    flight.dispatched = False  # fetched again with a fresh token at next poll
                    self._retry.add(uuid)
                    self._emit(EventKind.API_ERROR, uuid, f"job fetch failed (will retry): {exc}")
                    return
                self._emit(EventKind.LOST, uuid, f"the job cannot be fetched: {exc}")
                self._release(uuid)
                return
        if flight.cancelled:  # torn down while its details were fetched
            self._release(uuid)
            return
        request = DispatchRequest(flight.job, cfg.key, cfg.queue_key, token, details=flight.details)
        try:
            async with self._pool.slot():
                await self._dispatcher.dispatch(request)
        except DispatchDeferred as exc:
            self._metrics.inc("dispatches_deferred")
            self._emit(EventKind.DEFERRED, uuid, f"the dispatcher deferred the job: {exc}")
            self._defer(uuid, exc.retry_after if exc.retry_after is not None else -1.0)
            return
        except DispatchError as exc:
            error = str(exc)
            detail = redact_tokens(f"The stack could not start an agent for this job: {exc}")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            detail = redact_tokens(f"The stack's dispatcher failed: {error}")
            trace = redact_tokens("".join(traceback.format_exception(exc)))
            self._log.error("job %s: dispatcher raised:\n%s", uuid, trace, extra={"job_uuid": uuid})
        else:
            self._failures.launched()
            self._metrics.inc("jobs_dispatched")
            wait = (dt.datetime.now(dt.UTC) - aware(flight.job.scheduled_at)).total_seconds()
            self._metrics.observe_dispatch_wait(wait)
            self._emit(EventKind.DISPATCHED, uuid, "dispatched", wait=wait)
            self._notes.note(uuid, f"Stack {cfg.key} is starting an agent")
            return
        self._metrics.inc("dispatch_failures")
        self._emit(EventKind.DISPATCH_FAILED, uuid, detail)
        self._failures.start_failed(uuid, redact_tokens(error), detail)

    # --- fresh tokens for slow provisioning -------------------------------------------------

    async def refresh_tokens(self, uuids: Sequence[str]) -> None:
        """Give work still provisioning a fresh token before its own expires (or when its age is
        unknown): through ``refresh_token`` when the dispatcher has it, else by a new dispatch."""
        refresher = self._dispatcher if isinstance(self._dispatcher, TokenRefresher) else None
        if refresher is None:
            for uuid in uuids:
                self._redispatch(uuid)
            return
        for batch in chunks(list(uuids)):
            for uuid in batch:
                if (flight := self._table.get(uuid)) is not None:
                    flight.refreshing = True
            tokens = await self._issue(batch)
            for uuid, token in tokens.items():
                if token is not None:
                    work = partial(self._hand_token, refresher, uuid, token)
                    self._pool.spawn(work, f"refresh token of job {uuid}")
            for uuid in batch:
                if uuid not in tokens and (flight := self._table.get(uuid)) is not None:
                    flight.refreshing = False

    async def _hand_token(self, refresher: TokenRefresher, uuid: str, token: Secret) -> None:
        issued_at = self._clock()
        try:
            async with self._pool.slot():
                taken = await refresher.refresh_token(uuid, token)
        except Exception:
            self._log.exception("job %s: refresh_token failed", uuid, extra={"job_uuid": uuid})
            taken = False
        flight = self._table.get(uuid)
        if flight is None:
            return
        flight.refreshing = False
        if not taken:
            self._redispatch(uuid)
            return
        flight.token_expires_at, flight.token_unknown = issued_at + self.token_lifetime, False
        self._metrics.inc("tokens_refreshed")
        self._emit(EventKind.TOKEN_REFRESHED, uuid, "a fresh acquisition token was handed over")

    def _redispatch(self, uuid: str) -> None:
        flight = self._table.get(uuid)
        if flight is None or flight.started or flight.cancelled:
            return
        flight.redispatch = True
        self._metrics.inc("jobs_redispatched")
        self.cancel_work(uuid, "its acquisition token is expiring; starting it again")

    async def redispatched(self, uuid: str) -> None:
        """The old work of a job torn down for a fresh token is gone: dispatch it again."""
        flight = self._table.get(uuid)
        if flight is None:
            return
        flight.redispatch = flight.cancelled = flight.dispatched = False
        flight.ended = None
        await self.launch([uuid])

    # --- teardown ---------------------------------------------------------------------------

    def cancel_work(self, uuid: str, reason: str) -> None:
        """Tell the dispatcher to tear the work for ``uuid`` down (in the pool)."""
        flight = self._table.get(uuid)
        if flight is None or flight.cancelled:
            return
        flight.cancelled = True
        if not flight.redispatch:  # a job to be started again stays reserved (and renewed)
            flight.expires_at = None
            self._notes.note(uuid, f"Stack {self._cfg.key} stopped provisioning: {reason}")
        if not flight.dispatched:
            self._release(uuid)
            return
        self._pool.spawn(lambda: self._cancel(uuid, reason), f"cancel job {uuid}")

    async def _cancel(self, uuid: str, reason: str) -> None:
        try:
            async with self._pool.slot():
                await self._dispatcher.cancel(uuid, reason)
        except Exception:
            self._log.exception("job %s: dispatcher cancel failed", uuid, extra={"job_uuid": uuid})
            self._release(uuid)
