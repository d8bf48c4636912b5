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

from ._api import LimitedAPI, is_permanent
from ._config import StackConfig
from ._events import EventKind
from ._inflight import MAX_BACKOFF, Fatal
from ._metrics import StackMetrics

__all__ = ["Registration", "forgotten"]

Emit = Callable[..., None]


def forgotten(error: BaseException) -> bool:
    """True for the error a call about a stack the server does not know gets (404)."""
    return isinstance(error, NotFoundError)


class Registration:
    """Registers ``config.key``; :meth:`recover` registers it again after a 404."""

    def __init__(
        self,
        api: LimitedAPI,
        config: StackConfig,
        metrics: StackMetrics,
        emit: Emit,
        *,
        log: logging.Logger,
        stopping: Callable[[], bool],
    ) -> None:
        self._api, self._config, self._metrics = api, config, metrics
        self._emit, self._log, self._stopping = emit, log, stopping
        self._recoveries = 0  # consecutive re-registrations without a good poll between

    async def register(self, *, again: bool = False) -> None:
        """Register, retrying transient errors twice; :class:`Fatal` when it cannot."""
        cfg, attempt = self._config, 0
        while True:
            try:
                await self._api.register(cfg.queue_key, cfg.type, cfg.metadata)
            except StacksAPIError as exc:
                if is_permanent(exc) or attempt >= 2 or self._stopping():
                    raise Fatal(f"cannot register stack {cfg.key!r}: {exc}", exc) from exc
                attempt += 1
                await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**attempt))
                continue
            word = "again" if again else ""
            self._emit(EventKind.REGISTERED, message=f"registered stack {cfg.key!r} {word}".strip())
            return

    async def recover(self, error: StacksAPIError) -> None:
        """The server answered 404 about this stack: wait (after the first time), register again."""
        key = self._config.key
        self._metrics.inc("stack_reregistered")
        self._log.warning(
            "stack %s: the server no longer knows this stack (%s); registering again. "
            "Was it deregistered by another process using the same stack key? "
            "Give each process its own key.", key, error,
            extra={"event": "reregistering"},
        )  # fmt: skip
        if self._recoveries:
            await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**self._recoveries))
        self._recoveries += 1
        await self.register(again=True)

    def healthy(self) -> None:
        """A poll went through: the next 404 is registered again at once."""
        self._recoveries = 0
