"""The runtime's view of the API: the async client behind the rate limiter, counted in metrics.

Every call the runtime makes goes through :class:`LimitedAPI`, so the documented per-scope limits
hold by construction and every call is counted by endpoint and status. The client itself is typed
as the small :class:`AsyncStacksClient` protocol (``stacksapi.AsyncClient`` satisfies it), which
keeps the runtime independent of the client's construction and easy to drive in tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from stacksapi._errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    StacksAPIError,
    UnprocessableEntityError,
)
from stacksapi._models import (
    Job,
    JobAcquisitionTokens,
    JobStates,
    NotificationsResult,
    Reservation,
    ScheduledJobsPage,
    StackNotification,
)
from stacksapi._models import (
    Stack as StackInfo,
)

from ._metrics import StackMetrics
from ._ratelimit import RateLimiter

__all__ = ["AsyncStacksClient", "LimitedAPI", "is_permanent"]

R = TypeVar("R")


class AsyncStacksClient(Protocol):
    """The part of ``stacksapi.AsyncClient`` the runtime uses."""

    async def register_stack(
        self, key: str, *, queue_key: str, type: Any = ..., metadata: Mapping[str, str] | None = ...
    ) -> StackInfo: ...

    async def deregister_stack(self, key: str) -> None: ...

    async def list_scheduled_jobs(
        self, stack_key: str, *, queue_key: str, limit: int | None = ..., after: str | None = ...
    ) -> ScheduledJobsPage: ...

    async def batch_reserve_jobs(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        reservation_expiry_seconds: int | None = ...,
    ) -> Reservation: ...

    async def get_job(self, stack_key: str, job_uuid: str) -> Job: ...

    async def get_job_states(self, stack_key: str, job_uuids: Sequence[str]) -> JobStates: ...

    async def finish_job(
        self,
        stack_key: str,
        job_uuid: str,
        *,
        detail: str,
        exit_status: int = ...,
        signal_reason: str | None = ...,
    ) -> None: ...

    async def create_stack_notifications(
        self, stack_key: str, notifications: Sequence[StackNotification]
    ) -> NotificationsResult: ...

    async def issue_job_acquisition_tokens(
        self, stack_key: str, job_uuids: Sequence[str], *, token_lifetime_seconds: int | None = ...
    ) -> JobAcquisitionTokens: ...


def is_permanent(error: BaseException) -> bool:
    """True for errors that retrying cannot fix (bad token, missing queue, stack limit...)."""
    return isinstance(
        error,
        AuthenticationError
        | PermissionDeniedError
        | NotFoundError
        | BadRequestError
        | UnprocessableEntityError,
    )


class LimitedAPI:
    """Calls the client for one stack key, paced per scope and counted per endpoint and status."""

    def __init__(
        self,
        client: AsyncStacksClient,
        stack_key: str,
        limiter: RateLimiter,
        metrics: StackMetrics,
        on_rate_limited: Callable[[str, RateLimitError], None],
    ) -> None:
        self.client = client
        self.key = stack_key
        self.limiter = limiter
        self.metrics = metrics
        self._on_rate_limited = on_rate_limited

    async def call(self, endpoint: str, make: Callable[[], Awaitable[R]]) -> R:
        """Wait for the scope's budget, then run ``make()``, counting the outcome."""
        await self.limiter.acquire(endpoint)
        try:
            result = await make()
        except RateLimitError as exc:
            self.metrics.api_call(endpoint, "429")
            self.limiter.penalize(endpoint, exc.retry_after if exc.retry_after else 1.0)
            self._on_rate_limited(endpoint, exc)
            raise
        except APIStatusError as exc:
            self.metrics.api_call(endpoint, str(exc.status_code))
            raise
        except APIConnectionError:
            self.metrics.api_call(endpoint, "connection_error")
            raise
        except StacksAPIError:
            self.metrics.api_call(endpoint, "invalid")
            raise
        self.metrics.api_call(endpoint, "ok")
        return result

    async def register(self, queue_key: str, type_: str, metadata: Mapping[str, str]) -> StackInfo:
        return await self.call(
            "register_stack",
            lambda: self.client.register_stack(
                self.key, queue_key=queue_key, type=type_, metadata=dict(metadata)
            ),
        )

    async def deregister(self) -> None:
        await self.call("deregister_stack", lambda: self.client.deregister_stack(self.key))

    async def list_jobs(self, queue_key: str, limit: int, after: str | None) -> ScheduledJobsPage:
        return await self.call(
            "list_scheduled_jobs",
            lambda: self.client.list_scheduled_jobs(
                self.key, queue_key=queue_key, limit=limit, after=after
            ),
        )

    async def reserve(self, uuids: Sequence[str], expiry: int) -> Reservation:
        return await self.call(
            "batch_reserve_jobs",
            lambda: self.client.batch_reserve_jobs(
                self.key, list(uuids), reservation_expiry_seconds=expiry
            ),
        )

    async def tokens(self, uuids: Sequence[str], lifetime: int | None) -> JobAcquisitionTokens:
        return await self.call(
            "issue_job_acquisition_tokens",
            lambda: self.client.issue_job_acquisition_tokens(
                self.key, list(uuids), token_lifetime_seconds=lifetime
            ),
        )

    async def job(self, uuid: str) -> Job:
        return await self.call("get_job", lambda: self.client.get_job(self.key, uuid))

    async def states(self, uuids: Sequence[str]) -> JobStates:
        return await self.call(
            "get_job_states", lambda: self.client.get_job_states(self.key, list(uuids))
        )

    async def finish(self, uuid: str, detail: str, exit_status: int, reason: str | None) -> None:
        await self.call(
            "finish_job",
            lambda: self.client.finish_job(
                self.key, uuid, detail=detail, exit_status=exit_status, signal_reason=reason
            ),
        )

    async def notify(self, notes: Sequence[StackNotification]) -> NotificationsResult:
        return await self.call(
            "create_stack_notifications",
            lambda: self.client.create_stack_notifications(self.key, list(notes)),
        )
