"""``Watcher``: keep a live view of this stack's Jobs and pods with watches, not polling.

Each kind is listed once (which also gives a ``resourceVersion``), then watched from there. When a
watch breaks (connection lost, ``410 Gone``, a server error) the kind is listed again, which also
catches what changed meanwhile (a Job deleted while the stream was down), and watched again,
backing off up to 30 s while the API server is unreachable. A periodic sweep, local and free of
API calls, lets the owner apply timeouts (a pod stuck for too long) between events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Protocol

from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from ._kube import KubeAPI

__all__ = ["WatchHandler", "Watcher"]

_log = logging.getLogger("stacksapi.kubernetes")
_MAX_BACKOFF = 30.0


class WatchHandler(Protocol):
    """What the watcher feeds (the dispatcher). All calls happen on the event loop."""

    def on_job(self, kind: str, job: Job) -> None: ...

    def on_pod(self, kind: str, pod: Pod) -> None: ...

    def jobs_listed(self, jobs: list[Job]) -> None: ...

    def pods_listed(self, pods: list[Pod]) -> None: ...

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

    def start(self, jobs_version: str | None) -> None:
        """Start watching; ``jobs_version`` is the version of the Job list the caller made."""
        self._tasks = [
            asyncio.create_task(self._jobs(jobs_version), name="k8s-watch-jobs"),
            asyncio.create_task(self._pods(), name="k8s-watch-pods"),
            asyncio.create_task(self._sweep(), name="k8s-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _jobs(self, version: str | None) -> None:
        backoff = 0.5
        listed = version is not None
        while True:
            try:
                if not listed:
                    jobs, version = await self.api.list_jobs(self.selector)
                    self.relists += 1
                    self.handler.jobs_listed(jobs)
                listed = False  # after a break, list again
                async for kind, job in self.api.watch(Job, self.selector, version):
                    backoff = 0.5
                    self.handler.on_job(kind, job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("watching Jobs failed (again in %.1fs): %s", backoff, _short(exc))
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)

    async def _pods(self) -> None:
        backoff = 0.5
        while True:
            try:
                pods, version = await self.api.list_pods(self.selector)
                self.handler.pods_listed(pods)
                async for kind, pod in self.api.watch(Pod, self.selector, version):
                    backoff = 0.5
                    self.handler.on_pod(kind, pod)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("watching pods failed (again in %.1fs): %s", backoff, _short(exc))
                await asyncio.sleep(backoff)
                backoff = min(_MAX_BACKOFF, backoff * 2)

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
