"""``WorkerPool``: runs dispatcher calls and finishes in the background, a bounded number at once.

The loops that poll and watch never await a dispatcher (a slow ``cancel`` would hold renewals
back until reservations lapse). They hand the call to the pool and go on; the pool runs at most
``concurrency`` of them at a time, so a burst of cancels cannot open a thousand connections to a
Kubernetes API either.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["WorkerPool", "cancel_tasks", "running_loop"]


class WorkerPool:
    """Background tasks; :meth:`slot` bounds how many do their work at once."""

    def __init__(self, concurrency: int, log: logging.Logger) -> None:
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._log = log

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the ``concurrency`` slots (take it around each call, not around waits)."""
        async with self._slots:
            yield

    def spawn(self, work: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
        """Run ``work()`` in the background. An exception it raises is logged, never lost."""

        async def guarded() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception("%s failed", name)

        task = asyncio.create_task(guarded(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the tasks running now (and those they spawn)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)

    async def close(self) -> None:
        """Cancel what is still running."""
        await cancel_tasks(list(self._tasks))


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def cancel_tasks(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
