"""``Registration``: register the stack at start, and again whenever the server forgets it.

A 404 on a poll or a reserve means the server no longer knows this stack key: it was
deregistered (by another process using the same key as it stopped, by an operator) or the
server lost it. Exiting would abandon the work in flight, so the stack registers again (an
idempotent upsert), with a warning, the ``stack_reregistered`` metric and backoff between
consecutive attempts, and goes on; the work it holds is still watched. A 404 at register itself
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
        log: logging.Logger,
        stopping: Callable[[], bool],
    ) -> None:
        self._api, self._config, self._emit = api, config, emit
        self._metrics, self._shared_key = metrics, shared_key
        self._log, self._stopping = log, stopping
        self._recoveries = 0  # consecutive re-registrations without a good poll between

    async def register(self) -> None:
        """Register, retrying transient errors; :class:`~._exit.Fatal` when it cannot."""
        await register(self._api, self._config, self._emit, self._stopping)

    async def recover(self, error: StacksAPIError) -> None:
        """The server answered 404 about this stack: wait (after the first time), register again."""
        key = self._config.key
        self._metrics.inc("stack_reregistered")
        self._shared_key.sign("the server forgot the stack while it ran")
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

    def healthy(self) -> None:
        """A poll went through: the next 404 is registered again at once."""
        self._recoveries = 0
