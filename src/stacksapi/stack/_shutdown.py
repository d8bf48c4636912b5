"""``Shutdown``: how a stopping stack winds down, by ``on_shutdown``.

Both policies stop polling, let launches and finishes under way complete (so nothing is left
half-done), give back jobs never handed to the dispatcher, and deregister at the end.

- ``leave`` (the default): work still provisioning or running is left alone, for the next stack
  started with the same key to adopt (a restart, a rolling update). Nothing fails, nothing waits.
- ``drain`` (a stop meant to be final): wait up to ``shutdown_grace`` for agents to finish their
  jobs, then tear down whatever is left through the dispatcher's ``cancel``.

While it waits it reports what for (an event a line: agents left, grace remaining); a second
stop request (Ctrl-C again) skips the waiting at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from stacksapi._errors import StacksAPIError

from ._api import LimitedAPI
from ._config import StackConfig
from ._events import Emitter, EventKind
from ._flights import FlightTable
from ._launcher import Launcher
from ._pool import WorkerPool

__all__ = ["Shutdown"]

_REPORT_EVERY = 5.0  # seconds between two "waiting for ..." lines when nothing changed
_TEARDOWN_WAIT = 15.0  # most seconds to wait for torn-down work to report its end


class Shutdown:
    """One wind-down of one stack (see the module docstring)."""

    def __init__(
        self,
        config: StackConfig,
        table: FlightTable,
        *,
        pool: WorkerPool,
        launcher: Launcher,
        emit: Emitter,
        clock: Callable[[], float],
        forced: Callable[[], bool],
        watcher_alive: Callable[[], bool],
    ) -> None:
        self._cfg = config
        self._table = table
        self._pool = pool
        self._launcher = launcher
        self._emit = emit
        self._clock = clock
        self._forced = forced
        self._watcher_alive = watcher_alive

    async def wind_down(self, *, graceful: bool) -> float:
        """Apply the policy; return the grace left for ``Dispatcher.shutdown``."""
        cfg, table = self._cfg, self._table
        drain = cfg.shutdown_policy == "drain"
        grace = cfg.shutdown_grace if graceful else 0.0
        deadline = self._clock() + grace
        how = "draining" if drain else "leaving running work to the next stack with this key"
        self._emit(EventKind.STOPPING, message=f"stopping: no new jobs ({how}); "
                   "Ctrl-C again to skip the grace period")  # fmt: skip
        await self._wait(
            lambda: len(self._pool), max(deadline, self._clock() + 1.0),
            ("launch or finish", "launches and finishes"),
        )  # fmt: skip
        for uuid in [u for u, f in table.items() if not f.dispatched]:
            self._launcher.cancel_work(uuid, "the stack is shutting down")  # never handed over
        if not drain:
            if table:
                provisioning = len(table.unstarted())
                self._emit(
                    EventKind.WAITING,
                    message=f"leaving {len(table)} agent{'' if len(table) == 1 else 's'} "
                    f"({provisioning} provisioning) to the "
                    f"next stack started with key {cfg.key!r} (on_shutdown = \"leave\")",
                    agents=len(table), grace_left=0.0,
                )  # fmt: skip
            return 0.0
        await self._wait(lambda: len(table), deadline, ("agent to finish", "agents to finish"))
        for uuid in list(table):
            self._launcher.cancel_work(uuid, "the stack is shutting down")
        if table:
            await self._wait(
                lambda: len(table),
                self._clock() + _TEARDOWN_WAIT,
                ("agent being torn down", "agents being torn down"),
                forceable=False,
            )
        return 0.0 if self._forced() else max(0.0, deadline - self._clock())

    async def _wait(
        self,
        count: Callable[[], int],
        until: float,
        names: tuple[str, str],
        *,
        forceable: bool = True,
    ) -> None:
        """Wait while ``count()`` > 0, up to ``until``, reporting what is left as it changes.

        ``names``: what is waited for, one and many. Only a forceable wait is the grace period
        (a second stop request ends it); the others are bounded teardowns."""
        last: tuple[int, float] | None = None
        while (n := count()) and (left := until - self._clock()) > 0:
            what = names[0] if n == 1 else names[1]
            if forceable and self._forced():
                self._emit(EventKind.WAITING, message=f"stop now: not waiting for {n} {what}",
                           agents=n, grace_left=0.0)  # fmt: skip
                return
            if not self._watcher_alive():
                return  # nobody would see the agents start or end
            if last is None or n != last[0] or self._clock() - last[1] >= _REPORT_EVERY:
                tail = " of grace left; Ctrl-C again to stop now" if forceable else " at most"
                self._emit(EventKind.WAITING, message=f"waiting for {n} {what}, "
                           f"{left:.0f} s{tail}", agents=n, grace_left=round(left, 1))  # fmt: skip
                last = (n, self._clock())
            await asyncio.sleep(min(0.1, left))

    async def deregister(self, api: LimitedAPI) -> None:
        try:
            await api.deregister()
            self._emit(EventKind.DEREGISTERED, message=f"deregistered stack {self._cfg.key!r}")
        except StacksAPIError as exc:
            self._emit.log.error("stack %s: deregister failed: %s", self._cfg.key, exc)
