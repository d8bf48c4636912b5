"""``Watcher``: keep a live view of this stack's Jobs and pods with watches, the way informers do.

Each kind is listed once (which gives a ``resourceVersion``), then watched from there with
bookmarks, remembering the version of every event. A watch that ends or breaks (the server's
timeout, a lost connection, a server error) is started again from the last version seen, so
nothing is missed and nothing is listed again; only ``410 Gone`` (that version is too old) makes
the kind be listed again. The list's version goes to the handler with it: a list is evidence
only about objects older than it (see ``KubernetesDispatcher.jobs_listed``). Restarts back off
up to 30 s while the API server is unreachable, and are counted by reason. A periodic sweep,
local and free of API calls, lets the owner apply timeouts (a pod stuck for too long).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from ._kube import Gone, KubeAPI

__all__ = ["WatchHandler", "Watcher"]

_log = logging.getLogger("stacksapi.kubernetes")
_MAX_BACKOFF = 30.0


class WatchHandler(Protocol):
    """What the watcher feeds (the dispatcher). All calls happen on the event loop."""

    def on_job(self, kind: str, job: Job) -> None: ...

    def on_pod(self, kind: str, pod: Pod) -> None: ...

    def jobs_listed(self, jobs: list[Job], version: str | None) -> None: ...

    def pods_listed(self, pods: list[Pod], version: str | None) -> None: ...

    def sweep(self) -> None: ...


class Watcher:
    """Runs the Job watch, the pod watch and the sweep until :meth:`stop`."""

    def __init__(
        self,
        api: KubeAPI,
        selector: Mapping[str, str],
        handler: WatchHandler,
        *,
        sweep_interval: float,
    ) -> None:
        self.api = api
        self.selector = dict(selector)
        self.handler = handler
        self.sweep_interval = sweep_interval
        self._tasks: list[asyncio.Task[None]] = []
        self.relists = 0  # how often a kind had to be listed again (tests, metrics)

    def start(self, jobs_version: str | None, pods_version: str | None = None) -> None:
        """Start watching from the versions of the lists the caller made (``None``: list)."""
        self._tasks = [
            asyncio.create_task(
                self._follow(Job, jobs_version, self.api.list_jobs, self.handler.jobs_listed,
                             self.handler.on_job), name="k8s-watch-jobs"),
            asyncio.create_task(
                self._follow(Pod, pods_version, self.api.list_pods, self.handler.pods_listed,
                             self.handler.on_pod), name="k8s-watch-pods"),
            asyncio.create_task(self._sweep(), name="k8s-sweep"),
        ]  # fmt: skip

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _follow(
        self,
        res: type[Any],
        version: str | None,
        list_: Callable[[Mapping[str, str]], Awaitable[tuple[list[Any], str | None]]],
        listed: Callable[[list[Any], str | None], None],
        event: Callable[[str, Any], None],
    ) -> None:
        name = "jobs" if res is Job else "pods"
        backoff = 0.5
        while True:
            try:
                if version is None:
                    items, version = await list_(self.selector)
                    self.relists += 1
                    listed(items, version)
                quiet = True
                async for kind, obj in self.api.watch(res, self.selector, version):
                    backoff, quiet = 0.5, False
                    seen = obj.metadata.resourceVersion if obj.metadata is not None else None
                    version = seen or version
                    if kind != "BOOKMARK":
                        event(kind, obj)
                reason = "closed"
                if quiet:  # ended at once, without a single event: do not spin
                    await asyncio.sleep(backoff)
                    backoff = min(_MAX_BACKOFF, backoff * 2)
            except asyncio.CancelledError:
                raise
            except Gone as exc:
                _log.info("watching %s: %s; listing again", name, exc)
                version, reason = None, "expired"
            except Exception as exc:
                _log.warning("watching %s failed (again in %.1fs): %s", name, backoff, _short(exc))
                reason = "error"
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)
            self.api.metrics.watch_restart(name, reason)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                self.handler.sweep()
            except Exception:
                _log.exception("checking pods failed")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
