"""Registering the stack: a few tries with backoff for passing errors, then a :class:`Fatal`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stacksapi._errors import StacksAPIError

from ._api import LimitedAPI, is_permanent
from ._config import StackConfig
from ._events import Emitter, EventKind
from ._exit import MAX_BACKOFF, Fatal

__all__ = ["register"]


async def register(
    api: LimitedAPI, cfg: StackConfig, emit: Emitter, stopping: Callable[[], bool]
) -> None:
    """Register (an idempotent upsert); raise :class:`Fatal` when it cannot be done."""
    attempt = 0
    while True:
        try:
            await api.register(cfg.queue_key, cfg.type, cfg.metadata)
        except StacksAPIError as exc:
            if is_permanent(exc) or attempt >= 2 or stopping():
                raise Fatal(f"cannot register stack {cfg.key!r}: {exc}", exc) from exc
            attempt += 1
            await asyncio.sleep(min(MAX_BACKOFF, 0.5 * 2**attempt))
            continue
        emit(EventKind.REGISTERED, message=f"registered stack {cfg.key!r}")
        return
