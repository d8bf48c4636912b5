"""Client: the synchronous Stacks API client, a thin send-and-sleep loop over the shared core."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import Any, TypeVar

import httpx2

from . import _core
from ._core import Call, Op
from ._engine import make_core
from ._models import (
    Job,
    JobAcquisitionTokens,
    JobStates,
    NotificationsResult,
    Reservation,
    ScheduledJob,
    ScheduledJobsPage,
    Stack,
    StackNotification,
    StackType,
    TokenInfo,
)
from ._response import Response
from ._retry import RetryPolicy
from ._settings import (
    DEFAULT,
    DEFAULT_TIMEOUT,
    RetryArg,
    TimeoutTypes,
)
from ._transport import sync_path
from ._with_response import ClientWithResponse

__all__ = ["Client"]

T = TypeVar("T")


class Client:
    """Synchronous client of Buildkite's Stacks API. Use it as a context manager, or ``close()``.

    ``token``: a cluster token; ``None`` reads ``BUILDKITE_CLUSTER_TOKEN``. ``base_url``: the
    argument, else ``STACKSAPI_BASE_URL``, else ``https://agent.buildkite.com/v3/``. ``timeout``:
    seconds or an ``httpx2.Timeout`` (default 30 s per read/write/pool wait, 10 s to connect);
    ``None`` is refused, pass ``math.inf`` to wait forever on purpose. ``retry``: a
    :class:`RetryPolicy`; or ``max_retries=N`` for the default policy with N retries (0: none).
    Every method also takes ``retry=`` (a :class:`RetryPolicy`, or ``False``) and ``timeout=``
    for that call alone.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        http_client: httpx2.Client | None = None,
        timeout: TimeoutTypes = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_retries: int | None = None,
        logger: logging.Logger | None = None,
        log_http_payloads: bool = False,
        user_agent_prefix: str | None = None,
        allow_insecure_http: bool = False,
    ) -> None:
        if http_client is not None and not isinstance(http_client, httpx2.Client):
            raise TypeError(
                "http_client: must be an httpx2.Client (AsyncClient takes the async one)"
            )
        self._core, headers = make_core(
            token,
            base_url=base_url,
            timeout=timeout,
            retry=retry,
            max_retries=max_retries,
            logger=logger,
            log_http_payloads=log_http_payloads,
            user_agent_prefix=user_agent_prefix,
            allow_insecure_http=allow_insecure_http,
            send_headers=http_client is not None,
        )
        self._owns_http = http_client is None
        self._wire = sync_path(http_client, self._core.base_url, headers, self._core.timeout)
        self._sleep: Callable[[float], None] = time.sleep  # tests inject a recorder here
        self.with_response = ClientWithResponse(self)

    # --- plumbing ----------------------------------------------------------------------------

    def _run(self, op: Op[T], retry: RetryArg, timeout: Any) -> Response[T]:
        policy, tmo = self._core.call_settings(op.warnings, retry, timeout)
        return _core.merge_responses(op, [self._send(c, policy, tmo) for c in op.calls])

    def _send(self, call: Call, policy: RetryPolicy, timeout: Any) -> Response[Any]:
        state = self._core.begin(call, policy)
        while True:
            start = perf_counter()
            try:
                r = self._wire.send(call, state.url, state.headers, timeout)
            except httpx2.HTTPError as exc:
                wait = state.on_error(exc, perf_counter() - start)
            else:
                result = state.on_response(r.status, r.headers, r.content, perf_counter() - start)
                if result is not None:
                    return result
                wait = state.wait
            self._sleep(wait)

    def close(self) -> None:
        """Close the HTTP connections (not those of a caller's ``http_client``)."""
        if self._owns_http:
            self._wire.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._core.base_url!r}, token='***')"

    # --- endpoints ---------------------------------------------------------------------------

    def register_stack(
        self,
        key: str,
        *,
        queue_key: str,
        type: StackType | str = StackType.CUSTOM,
        metadata: Mapping[str, str] | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Stack:
        """Register (or update) a stack serving ``queue_key``. Idempotent upsert."""
        op = _core.register_stack(key, queue_key=queue_key, type=type, metadata=metadata)
        return self._run(op, retry, timeout).data

    def deregister_stack(
        self, key: str, *, retry: RetryArg = None, timeout: TimeoutTypes = DEFAULT
    ) -> None:
        """Deregister a stack so it stops counting against the organization's stack limit."""
        self._run(_core.deregister_stack(key), retry, timeout)

    def list_scheduled_jobs(
        self,
        stack_key: str,
        *,
        queue_key: str,
        limit: int | None = None,
        after: str | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> ScheduledJobsPage:
        """One page of jobs waiting in ``queue_key``, oldest first (``limit`` 1..1000)."""
        op = _core.list_scheduled_jobs(stack_key, queue_key=queue_key, limit=limit, after=after)
        return self._run(op, retry, timeout).data

    def iter_scheduled_jobs(
        self,
        stack_key: str,
        *,
        queue_key: str,
        page_size: int | None = None,
        max_pages: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Iterator[ScheduledJob]:
        """Every scheduled job, page after page, following cursors (arguments checked now)."""
        pager = _core.Pager(
            stack_key, queue_key=queue_key, page_size=page_size, max_pages=max_pages
        )
        return self._pages(pager, retry, timeout)

    def _pages(self, pager: _core.Pager, retry: RetryArg, timeout: Any) -> Iterator[ScheduledJob]:
        while (op := pager.next_op()) is not None:
            yield from pager.feed(self._run(op, retry, timeout).data)

    def batch_reserve_jobs(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        reservation_expiry_seconds: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Reservation:
        """Reserve jobs for this stack (or extend a reservation); run only ``.reserved``."""
        op = _core.batch_reserve_jobs(
            stack_key, job_uuids, reservation_expiry_seconds=reservation_expiry_seconds
        )
        return self._run(op, retry, timeout).data

    def get_job(
        self,
        stack_key: str,
        job_uuid: str,
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Job:
        """A job's command and environment."""
        return self._run(_core.get_job(stack_key, job_uuid), retry, timeout).data

    def get_job_states(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> JobStates:
        """The current state of each job (uuid -> state string)."""
        return self._run(_core.get_job_states(stack_key, job_uuids), retry, timeout).data

    def finish_job(
        self,
        stack_key: str,
        job_uuid: str,
        *,
        detail: str,
        exit_status: int = -1,
        signal_reason: str | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> None:
        """Finish a job the stack will not run; ``exit_status`` is always sent (0 is success)."""
        op = _core.finish_job(
            stack_key,
            job_uuid,
            detail=detail,
            exit_status=exit_status,
            signal_reason=signal_reason,
        )
        self._run(op, retry, timeout)

    def create_stack_notifications(
        self,
        stack_key: str,
        notifications: Sequence[StackNotification],
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> NotificationsResult:
        """Show short texts on jobs; the result lists failures by index into ``notifications``."""
        op = _core.create_stack_notifications(stack_key, notifications)
        return self._run(op, retry, timeout).data

    def issue_job_acquisition_tokens(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        token_lifetime_seconds: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> JobAcquisitionTokens:
        """One short-lived token per reserved job, for the agent that acquires it."""
        op = _core.issue_job_acquisition_tokens(
            stack_key, job_uuids, token_lifetime_seconds=token_lifetime_seconds
        )
        return self._run(op, retry, timeout).data

    def get_token(self, *, retry: RetryArg = None, timeout: TimeoutTypes = DEFAULT) -> TokenInfo:
        """What the server knows of this client's token (``GET token``)."""
        return self._run(_core.get_token(), retry, timeout).data
