"""``KubeAPI``: the few Kubernetes calls the dispatcher makes, polite and resilient.

Every request goes through a client-side token bucket (``api_qps``, ``api_burst``) so a burst of
jobs never floods the API server; transient failures (connection errors, 429, 500, 502, 503,
504) are retried with exponential backoff (honouring ``Retry-After``), and a 409 on create is
reported as :class:`AlreadyExists` so the caller can decide what the existing object is. A
caller that stops wanting a call (a cancel during a create retry) passes ``give_up``: the retry
loop then raises :class:`Abandoned` instead of trying again. Each watch request is one stream
(with bookmarks) that ends or raises :class:`Gone`; the caller decides how to go on. Every
request is counted in :class:`~._metrics.KubeMetrics`. Built on lightkube's
:class:`~lightkube.AsyncClient` and its typed resources.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2
from lightkube import ApiError, AsyncClient
from lightkube.core import decoders
from lightkube.core.resource import NamespacedResource
from lightkube.core.selector import build_selector
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event, Pod, Secret
from lightkube.types import CascadeType, PatchType

from stacksapi._retry import parse_retry_after

from ._config import KubernetesConfig
from ._metrics import KubeMetrics

if TYPE_CHECKING:
    from lightkube.config.kubeconfig import KubeConfig

__all__ = [
    "Abandoned",
    "AlreadyExists",
    "Gone",
    "KubeAPI",
    "TokenBucket",
    "connect",
    "error_reason",
    "status_code",
]

_log = logging.getLogger("stacksapi.kubernetes")
_TRANSIENT = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")
R = TypeVar("R", bound=NamespacedResource)


def connect(config: KubernetesConfig, kube_config: KubeConfig | None = None) -> AsyncClient:
    """A client for the cluster: ``kube_config``, else ``config.kubeconfig``, else in-cluster,
    ``KUBECONFIG`` or ``~/.kube/config``; ``config.context`` picks the context."""
    from lightkube.config.kubeconfig import KubeConfig

    try:
        if kube_config is not None:
            found = kube_config
        elif config.kubeconfig is not None:
            found = KubeConfig.from_file(config.kubeconfig)
        else:
            found = KubeConfig.from_env()
        single = found.get(context_name=config.context)
    except Exception as exc:
        raise RuntimeError(f"cannot load the Kubernetes configuration: {exc}") from None
    if single is None:
        raise RuntimeError("cannot load the Kubernetes configuration: no current context")
    return AsyncClient(
        config=single, namespace=config.namespace, field_manager="stacksapi", trust_env=False
    )


class AlreadyExists(Exception):
    """A create answered 409: an object of that name is already there."""


class Gone(Exception):
    """A watch answered 410: its resourceVersion is too old; list again."""


class Abandoned(Exception):
    """A call was given up between attempts because its caller no longer wants it."""


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a lightkube API error, else ``None``."""
    if isinstance(exc, ApiError):
        code = exc.status.code if exc.status is not None else None
        response = getattr(exc, "response", None)
        return code if code is not None or response is None else response.status_code
    return None


def error_reason(exc: BaseException) -> str:
    """A Kubernetes API error in one line: code, reason and message (else the exception)."""
    if isinstance(exc, ApiError) and exc.status is not None:
        return f"{exc.status.code} {exc.status.reason or ''}: {exc.status.message or ''}".strip()
    return str(exc) or type(exc).__name__


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
        self,
        client: AsyncClient,
        namespace: str,
        *,
        qps: float,
        burst: int,
        retries: int,
        metrics: KubeMetrics | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.retries = retries
        self.bucket = TokenBucket(qps, burst)
        self.metrics = metrics or KubeMetrics(stack_key="")

    async def _call(
        self,
        verb: str,
        resource: str,
        make: Callable[[], Awaitable[T]],
        *,
        conflicts: bool = False,
        give_up: Callable[[], bool] | None = None,
    ) -> T:
        """Run ``make`` within the rate limit, retrying transient errors (and, with
        ``conflicts``, a 409 Conflict of an update raced by another writer)."""
        attempt = 0
        while True:
            await self.bucket.take()
            try:
                result = await make()
            except (ApiError, httpx2.TransportError) as exc:
                code = status_code(exc)
                self.metrics.api_call(verb, resource, str(code or type(exc).__name__))
                transient = code in _TRANSIENT or isinstance(exc, httpx2.TransportError)
                transient = transient or (conflicts and code == 409)
                if not transient or attempt >= self.retries:
                    raise
                delay = _retry_after(exc) or min(5.0, 0.1 * 2**attempt) * random.uniform(0.5, 1)
                attempt += 1
                _log.info("%s %s: %s; retry %d in %.2fs", verb, resource,
                          code or type(exc).__name__, attempt, delay)  # fmt: skip
                await asyncio.sleep(delay)
                if give_up is not None and give_up():
                    raise Abandoned(f"{verb} {resource} given up after {attempt} attempts") from exc
            else:
                self.metrics.api_call(verb, resource)
                return result

    async def create(self, obj: R, *, give_up: Callable[[], bool] | None = None) -> R:
        """Create ``obj``; :class:`AlreadyExists` on 409 (also after a retried timeout)."""
        try:
            return await self._call(
                "create", _plural(obj), lambda: self.client.create(obj), give_up=give_up
            )
        except ApiError as exc:
            if status_code(exc) == 409:
                raise AlreadyExists(str(exc.status.message or "already exists")) from None
            raise

    async def get_job(self, name: str) -> Job | None:
        try:
            return await self._call(
                "get", "jobs", lambda: self.client.get(Job, name, namespace=self.namespace)
            )
        except ApiError as exc:
            if status_code(exc) == 404:
                return None
            raise

    async def delete_job(self, name: str, *, foreground: bool = False) -> bool:
        """Delete a Job and its pods and Secret; False if it was gone.

        In the background by default (the Job goes at once, what it owns soon after);
        ``foreground`` keeps the Job until what it owns is gone, for a caller that waits.
        """
        cascade = CascadeType.FOREGROUND if foreground else CascadeType.BACKGROUND
        try:
            await self._call(
                "delete",
                "jobs",
                lambda: self.client.delete(Job, name, namespace=self.namespace, cascade=cascade),
                conflicts=True,
            )
        except ApiError as exc:
            if status_code(exc) == 404:
                return False
            raise
        return True

    async def release_job(self, name: str) -> Job:
        """Resume a Job created suspended: its pod is created now."""
        patch = {"spec": {"suspend": False}}
        return await self._call(
            "patch",
            "jobs",
            lambda: self.client.patch(
                Job, name, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            ),
            conflicts=True,
        )

    async def merge_patch_secret(self, name: str, patch: Mapping[str, Any]) -> None:
        """Merge-patch a Secret (a merge patch carries no resourceVersion: no conflicts)."""
        await self._call(
            "patch",
            "secrets",
            lambda: self.client.patch(
                Secret, name, dict(patch), namespace=self.namespace, patch_type=PatchType.MERGE
            ),
            conflicts=True,
        )

    async def server_version(self) -> tuple[int, int] | None:
        """The API server's ``(major, minor)`` from ``/version``; ``None`` when unknown."""

        async def run() -> Any:
            response = await self.client._client._client.get("/version")
            response.raise_for_status()
            return response.json()

        try:
            info = await self._call("get", "version", run)
        except Exception as exc:
            _log.warning("cannot read the Kubernetes server version: %s", exc)
            return None
        return parse_version(info)

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

        return await self._call("list", _resource(res), run)

    async def pod_events(self, pod_name: str) -> list[Event]:
        """The events about one pod (oldest first)."""

        async def run() -> list[Event]:
            fields: dict[str, Any] = {"involvedObject.name": pod_name}
            it = self.client.list(Event, namespace=self.namespace, fields=fields)
            return [e async for e in it]

        return sorted(await self._call("list", "events", run), key=_event_time)

    async def watch(
        self, res: type[R], labels: Mapping[str, str], version: str | None
    ) -> AsyncIterator[tuple[str, R]]:
        """One watch request on ``res`` from ``version``, with ``BOOKMARK`` events.

        Yields ``(type, object)`` until the server ends the stream; raises :class:`Gone` when
        ``version`` is too old, :class:`ApiError` or a transport error otherwise.
        """
        await self.bucket.take()
        generic = self.client._client
        params = {"timeoutSeconds": 300, "resourceVersion": version, "allowWatchBookmarks": "true",
                  "labelSelector": build_selector(dict(labels))}  # fmt: skip
        request = generic.prepare_request(
            "list", res=res, namespace=self.namespace, watch=True, params=params
        )
        request.timeout = generic._watch_timeout
        http = generic._client
        response = await http.send(generic.build_adapter_request(request), stream=True)
        name = _resource(res)
        try:
            if response.status_code >= 400:
                await response.aread()
                self.metrics.api_call("watch", name, str(response.status_code))
                if response.status_code == 410:
                    raise Gone(f"watch {name}: resource version {version} is too old")
                raise ApiError(request=response.request, response=response)
            self.metrics.api_call("watch", name)
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = decoders.decode_watch_event(line.encode())
                if event.type == "ERROR":
                    failure = decoders.decode_status(event.object)
                    if failure.code == 410:
                        raise Gone(f"watch {name}: {failure.message or 'too old'}")
                    raise ApiError(status=failure)
                yield event.type, decoders.decode_object(event.object, res)
        finally:
            await response.aclose()


def parse_version(info: Any) -> tuple[int, int] | None:
    """``(major, minor)`` from a ``/version`` answer (``minor`` may read ``"29+"``)."""
    try:
        major = int(str(info["major"]).rstrip("+"))
        minor = int("".join(ch for ch in str(info["minor"]) if ch.isdigit()))
    except (KeyError, TypeError, ValueError):
        return None
    return major, minor


def _resource(res: type[Any]) -> str:
    return {"Job": "jobs", "Pod": "pods", "Secret": "secrets", "Event": "events"}.get(
        res.__name__, res.__name__.lower()
    )


def _plural(obj: Any) -> str:
    return _resource(type(obj))


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
