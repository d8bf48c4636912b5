"""``Registration``: register the stack at start, and again whenever the server forgets it.

A 404 on a poll or a reserve means the server no longer knows this stack key: it was
deregistered (by another process using the same key as it stopped, by an operator) or the
server lost it. Exiting would abandon the work in flight, so the stack registers again (an
idempotent upsert), with a warning, the ``stack_reregistered`` metric and backoff between
consecutive attempts, and goes on; the work it holds is still watched. The server ended the
stack's reservations when it forgot it, and the acquisition tokens with them: every job still
provisioning is reserved again at once, and an agent of it refused for its dead token is
dispatched again with a fresh one (:mod:`._failures`), never failed. A 404 at register itself
(an unknown queue) stays permanent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from stacksapi._errors import NotFoundError, StacksAPIError

from ._api import LimitedAPI
from ._config import StackConfig
from ._events import Emitter
from ._exit import MAX_BACKOFF
from ._flights import FlightTable
from ._metrics import StackMetrics
from ._register import register
from ._sharedkey import SharedKeyWatch

__all__ = ["Registration", "forgotten"]


def forgotten(error: BaseException) -> bool:
    """True for the error a call about a stack the server does not know gets (404)."""
    return isinstance(error, NotFoundError)


class Registration:
    """Registers ``config.key``; :meth:`recover` registers it again after a 404."""

    def __init__(
        self,
        api: LimitedAPI,
        config: StackConfig,
        *,
        emit: Emitter,
        metrics: StackMetrics,
        shared_key: SharedKeyWatch,
        table: FlightTable,
        clock: Callable[[], float],
        log: logging.Logger,
        stopping: Callable[[], bool],
    ) -> None:
        self._api, self._config, self._emit = api, config, emit
        self._metrics, self._shared_key = metrics, shared_key
        self._table, self._clock = table, clock
        self._log, self._stopping = log, stopping
        self._recoveries = 0  # consecutive re-registrations without a good poll between
        self._noticed = False  # this 404 episode was counted and its work marked

    async def register(self) -> None:
        """Register, retrying transient errors; :class:`~._exit.Fatal` when it cannot."""
        await register(self._api, self._config, self._emit, self._stopping)

    def noticed(self, error: StacksAPIError) -> None:
        """Any call answered 404 (the watcher's too): count the sign once, and have the work in
        flight reserved again at once (the poller registers again)."""
        if not forgotten(error) or self._noticed:
            return
        self._noticed = True
        self._shared_key.sign("the server forgot the stack while it ran")
        self._reservations_lost()

    def _reservations_lost(self) -> None:
        now = self._clock()
        for flight in self._table.values():
            if not flight.started and not flight.cancelled and not flight.finishing:
                flight.expires_at = now  # its reservation ended with the stack: take it again

    async def recover(self, error: StacksAPIError) -> None:
        """The server answered 404 about this stack: wait (after the first time), register again."""
        key = self._config.key
        self._metrics.inc("stack_reregistered")
        self.noticed(error)
        self._log.warning(
            "stack %s: the server no longer knows this stack (%s); registering again. "
            "Was it deregistered by another process using the same stack key? "
            "Give each process its own key.", key, error,
            extra={"event": "reregistering"},
        )  # fmt: skip
        if self._recoveries:
            await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**self._recoveries))
        self._recoveries += 1
        await self.register()
        self._reservations_lost()

    def healthy(self) -> None:
        """A poll went through: the next 404 is registered again at once."""
        self._recoveries = 0
        self._noticed = False
