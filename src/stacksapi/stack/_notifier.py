"""``Notifier``: posts the notifications the runtime writes on jobs, in batches, twice a second."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from stacksapi._errors import AuthenticationError, StacksAPIError

from ._api import LimitedAPI
from ._exit import Fatal
from ._planning import NotificationBatcher

__all__ = ["Notifier"]


class Notifier:
    """Queues notes per job (cropped, at most the API's per-job count) and sends them batched."""

    def __init__(self, api: LimitedAPI, log: logging.Logger, *, enabled: bool) -> None:
        self._api = api
        self._log = log
        self._enabled = enabled
        self._notes = NotificationBatcher()

    def note(self, uuid: str, detail: str) -> None:
        if self._enabled:
            self._notes.add(uuid, detail, dt.datetime.now(dt.UTC))

    def forget(self, uuid: str) -> None:
        self._notes.forget(uuid)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            await self.flush(final=False)

    async def flush(self, *, final: bool) -> None:
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
