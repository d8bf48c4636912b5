"""``KubeAPI``: the few Kubernetes calls the dispatcher makes, polite and resilient.

Every request goes through a client-side token bucket (``api_qps``, ``api_burst``) so a burst of
jobs never floods the API server; transient failures (connection errors, 429, 500, 502, 503,
504) are retried with exponential backoff (honouring ``Retry-After``), and a 409 on create is
reported as :class:`AlreadyExists` so the caller can treat "created twice" as "already there".
Built on lightkube's :class:`~lightkube.AsyncClient` and its typed resources.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core.resource import NamespacedResource
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event, Pod, Secret
from lightkube.types import CascadeType, OnErrorAction, OnErrorResult, PatchType

from stacksapi._retry import parse_retry_after

__all__ = ["AlreadyExists", "KubeAPI", "TokenBucket", "status_code"]

_log = logging.getLogger("stacksapi.kubernetes")
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")
R = TypeVar("R", bound=NamespacedResource)


class AlreadyExists(Exception):
    """A create answered 409: an object of that name is already there."""


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a lightkube API error, else ``None``."""
    if isinstance(exc, ApiError):
        code = exc.status.code if exc.status is not None else None
        response = getattr(exc, "response", None)
        return code if code is not None or response is None else response.status_code
    return None


class TokenBucket:
    """At most ``burst`` requests at once, refilled at ``rate`` per second.

    ``clock`` and ``sleep`` are injectable so the arithmetic is testable without waiting.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._at = clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds spent waiting for a token, in total

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                delay = (1 - self._tokens) / self.rate
                self.waited += delay
                await self._sleep(delay)


class KubeAPI:
    """Rate-limited, retrying calls on one namespace."""

    def __init__(
        self, client: AsyncClient, namespace: str, *, qps: float, burst: int, retries: int
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.retries = retries
        self.bucket = TokenBucket(qps, burst)

    async def _call(
        self, what: str, make: Callable[[], Awaitable[T]], *, conflicts: bool = False
    ) -> T:
        """Run ``make`` within the rate limit, retrying transient errors (and, with
        ``conflicts``, a 409 Conflict of an update raced by another writer)."""
        attempt = 0
        while True:
            await self.bucket.take()
            try:
                return await make()
            except (ApiError, httpx2.TransportError) as exc:
                code = status_code(exc)
                transient = code in _TRANSIENT or isinstance(exc, httpx2.TransportError)
                transient = transient or (conflicts and code == 409)
                if not transient or attempt >= self.retries:
                    raise
                delay = _retry_after(exc) or min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1)
                attempt += 1
                _log.info("%s: %s; retry %d in %.2fs", what, code or type(exc).__name__,
                          attempt, delay)  # fmt: skip
                await asyncio.sleep(delay)

    async def create(self, obj: R) -> R:
        """Create ``obj``; :class:`AlreadyExists` on 409 (also after a retried timeout)."""
        try:
            return await self._call(f"create {_kind(obj)}", lambda: self.client.create(obj))
        except ApiError as exc:
            if status_code(exc) == 409:
                raise AlreadyExists(str(exc.status.message or "already exists")) from None
            raise

    async def get_job(self, name: str) -> Job | None:
        try:
            return await self._call(
                "get job", lambda: self.client.get(Job, name, namespace=self.namespace)
            )
        except ApiError as exc:
            if status_code(exc) == 404:
                return None
            raise

    async def delete_job(self, name: str) -> bool:
        """Delete a Job and (in the background) its pods and Secret; False if it was gone."""
        try:
            await self._call(
                "delete job",
                lambda: self.client.delete(
                    Job, name, namespace=self.namespace, cascade=CascadeType.BACKGROUND
                ),
                conflicts=True,
            )
        except ApiError as exc:
            if status_code(exc) == 404:
                return False
            raise
        return True

    async def merge_patch_secret(self, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Secret (a merge patch carries no resourceVersion: no conflicts)."""
        await self._call(
            "patch secret",
            lambda: self.client.patch(
                Secret, name, dict(patch), namespace=self.namespace, patch_type=PatchType.MERGE
            ),
            conflicts=True,
        )

    async def list_jobs(self, labels: Mapping[str, str]) -> tuple[list[Job], str | None]:
        return await self._list(Job, labels)

    async def list_pods(self, labels: Mapping[str, str]) -> tuple[list[Pod], str | None]:
        return await self._list(Pod, labels)

    async def _list(self, res: type[R], labels: Mapping[str, str]) -> tuple[list[R], str | None]:
        async def run() -> tuple[list[R], str | None]:
            it = self.client.list(res, namespace=self.namespace, labels=dict(labels))
            items = [item async for item in it]
            try:
                version: str | None = it.resourceVersion
            except Exception:  # no item and no version: watch from "now"
                version = None
            return items, version

        return await self._call(f"list {res.__name__}", run)

    async def pod_events(self, pod_name: str) -> list[Event]:
        """The events about one pod (oldest first)."""

        async def run() -> list[Event]:
            fields: dict[str, Any] = {"involvedObject.name": pod_name}
            it = self.client.list(Event, namespace=self.namespace, fields=fields)
            return [e async for e in it]

        return sorted(await self._call("list events", run), key=_event_time)

    async def watch(
        self, res: type[R], labels: Mapping[str, str], version: str | None
    ) -> AsyncIterator[tuple[str, R]]:
        """Watch ``res`` from ``version``; errors end the iteration (the caller re-lists)."""
        await self.bucket.take()
        stream = self.client.watch(
            res,
            namespace=self.namespace,
            labels=dict(labels),
            resource_version=version,
            server_timeout=300,
            on_error=_raise,
        )
        async for kind, obj in stream:
            yield kind, obj


def _raise(exc: Exception, count: int) -> OnErrorResult:
    del exc, count
    return OnErrorResult(OnErrorAction.RAISE)


def _kind(obj: Any) -> str:
    return str(getattr(obj, "kind", None) or type(obj).__name__)


def _retry_after(exc: BaseException) -> float | None:
    if not isinstance(exc, ApiError):
        return None
    response = getattr(exc, "response", None)
    if response is None:
        return None
    wait = parse_retry_after(response.headers.get("Retry-After"))
    return None if wait is None else min(wait, 30.0)


def _event_time(event: Event) -> tuple[str, int]:
    """Sort key: last time seen (second resolution), then the order the server stored them."""
    when = event.lastTimestamp or event.eventTime or event.firstTimestamp
    version = event.metadata.resourceVersion if event.metadata is not None else None
    order = int(version) if version is not None and version.isdigit() else 0
    return (when.isoformat() if when is not None else "", order)
