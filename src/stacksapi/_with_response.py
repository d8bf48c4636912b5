"""``client.with_response``: each single-response method of a client, returning a :class:`Response`.

Same names and arguments as the client's methods; the decoded model is in ``.data`` next to the
status code, headers, rate-limit state and elapsed time, which users want on successful calls too.
``iter_scheduled_jobs`` has no counterpart: an iterator spans many responses.
"""

# ``timeout=`` on async methods is the public contract (an httpx2 timeout per request), not a
# deadline the caller should express with anyio.fail_after.
# ruff: noqa: ASYNC109

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from . import _core
from ._models import (
    Job,
    JobAcquisitionTokens,
    JobStates,
    NotificationsResult,
    Reservation,
    ScheduledJobsPage,
    Stack,
    StackNotification,
    StackType,
    TokenInfo,
)
from ._response import Response
from ._settings import DEFAULT, RetryArg, TimeoutTypes

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._client import Client

__all__ = ["AsyncClientWithResponse", "ClientWithResponse"]


class ClientWithResponse:
    """``client.with_response``: the same calls, returning a :class:`Response` around the data."""

    def __init__(self, client: Client) -> None:
        self._run = client._run

    def register_stack(
        self,
        key: str,
        *,
        queue_key: str,
        type: StackType | str = StackType.CUSTOM,
        metadata: Mapping[str, str] | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[Stack]:
        """:meth:`Client.register_stack`, in a :class:`Response`."""
        op = _core.register_stack(key, queue_key=queue_key, type=type, metadata=metadata)
        return self._run(op, retry, timeout)

    def deregister_stack(
        self, key: str, *, retry: RetryArg = None, timeout: TimeoutTypes = DEFAULT
    ) -> Response[None]:
        """:meth:`Client.deregister_stack`, in a :class:`Response`."""
        return self._run(_core.deregister_stack(key), retry, timeout)

    def list_scheduled_jobs(
        self,
        stack_key: str,
        *,
        queue_key: str,
        limit: int | None = None,
        after: str | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[ScheduledJobsPage]:
        """:meth:`Client.list_scheduled_jobs`, in a :class:`Response`."""
        op = _core.list_scheduled_jobs(stack_key, queue_key=queue_key, limit=limit, after=after)
        return self._run(op, retry, timeout)

    def batch_reserve_jobs(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        reservation_expiry_seconds: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[Reservation]:
        """:meth:`Client.batch_reserve_jobs`, in a :class:`Response`."""
        op = _core.batch_reserve_jobs(
            stack_key, job_uuids, reservation_expiry_seconds=reservation_expiry_seconds
        )
        return self._run(op, retry, timeout)

    def get_job(
        self,
        stack_key: str,
        job_uuid: str,
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[Job]:
        """:meth:`Client.get_job`, in a :class:`Response`."""
        return self._run(_core.get_job(stack_key, job_uuid), retry, timeout)

    def get_job_states(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[JobStates]:
        """:meth:`Client.get_job_states`, in a :class:`Response`."""
        return self._run(_core.get_job_states(stack_key, job_uuids), retry, timeout)

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
    ) -> Response[None]:
        """:meth:`Client.finish_job`, in a :class:`Response`."""
        op = _core.finish_job(
            stack_key,
            job_uuid,
            detail=detail,
            exit_status=exit_status,
            signal_reason=signal_reason,
        )
        return self._run(op, retry, timeout)

    def create_stack_notifications(
        self,
        stack_key: str,
        notifications: Sequence[StackNotification],
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[NotificationsResult]:
        """:meth:`Client.create_stack_notifications`, in a :class:`Response`."""
        op = _core.create_stack_notifications(stack_key, notifications)
        return self._run(op, retry, timeout)

    def issue_job_acquisition_tokens(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        token_lifetime_seconds: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[JobAcquisitionTokens]:
        """:meth:`Client.issue_job_acquisition_tokens`, in a :class:`Response`."""
        op = _core.issue_job_acquisition_tokens(
            stack_key, job_uuids, token_lifetime_seconds=token_lifetime_seconds
        )
        return self._run(op, retry, timeout)

    def get_token(
        self, *, retry: RetryArg = None, timeout: TimeoutTypes = DEFAULT
    ) -> Response[TokenInfo]:
        """:meth:`Client.get_token`, in a :class:`Response`."""
        return self._run(_core.get_token(), retry, timeout)


class AsyncClientWithResponse:
    """``client.with_response``: the same calls, returning a :class:`Response` around the data."""

    def __init__(self, client: AsyncClient) -> None:
        self._run = client._run

    async def register_stack(
        self,
        key: str,
        *,
        queue_key: str,
        type: StackType | str = StackType.CUSTOM,
        metadata: Mapping[str, str] | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[Stack]:
        """:meth:`AsyncClient.register_stack`, in a :class:`Response`."""
        op = _core.register_stack(key, queue_key=queue_key, type=type, metadata=metadata)
        return await self._run(op, retry, timeout)

    async def deregister_stack(
        self, key: str, *, retry: RetryArg = None, timeout: TimeoutTypes = DEFAULT
    ) -> Response[None]:
        """:meth:`AsyncClient.deregister_stack`, in a :class:`Response`."""
        return await self._run(_core.deregister_stack(key), retry, timeout)

    async def list_scheduled_jobs(
        self,
        stack_key: str,
        *,
        queue_key: str,
        limit: int | None = None,
        after: str | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[ScheduledJobsPage]:
        """:meth:`AsyncClient.list_scheduled_jobs`, in a :class:`Response`."""
        op = _core.list_scheduled_jobs(stack_key, queue_key=queue_key, limit=limit, after=after)
        return await self._run(op, retry, timeout)

    async def batch_reserve_jobs(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        reservation_expiry_seconds: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[Reservation]:
        """:meth:`AsyncClient.batch_reserve_jobs`, in a :class:`Response`."""
        op = _core.batch_reserve_jobs(
            stack_key, job_uuids, reservation_expiry_seconds=reservation_expiry_seconds
        )
        return await self._run(op, retry, timeout)

    async def get_job(
        self,
        stack_key: str,
        job_uuid: str,
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[Job]:
        """:meth:`AsyncClient.get_job`, in a :class:`Response`."""
        return await self._run(_core.get_job(stack_key, job_uuid), retry, timeout)

    async def get_job_states(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[JobStates]:
        """:meth:`AsyncClient.get_job_states`, in a :class:`Response`."""
        return await self._run(_core.get_job_states(stack_key, job_uuids), retry, timeout)

    async def finish_job(
        self,
        stack_key: str,
        job_uuid: str,
        *,
        detail: str,
        exit_status: int = -1,
        signal_reason: str | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[None]:
        """:meth:`AsyncClient.finish_job`, in a :class:`Response`."""
        op = _core.finish_job(
            stack_key,
            job_uuid,
            detail=detail,
            exit_status=exit_status,
            signal_reason=signal_reason,
        )
        return await self._run(op, retry, timeout)

    async def create_stack_notifications(
        self,
        stack_key: str,
        notifications: Sequence[StackNotification],
        *,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[NotificationsResult]:
        """:meth:`AsyncClient.create_stack_notifications`, in a :class:`Response`."""
        op = _core.create_stack_notifications(stack_key, notifications)
        return await self._run(op, retry, timeout)

    async def issue_job_acquisition_tokens(
        self,
        stack_key: str,
        job_uuids: Sequence[str],
        *,
        token_lifetime_seconds: int | None = None,
        retry: RetryArg = None,
        timeout: TimeoutTypes = DEFAULT,
    ) -> Response[JobAcquisitionTokens]:
        """:meth:`AsyncClient.issue_job_acquisition_tokens`, in a :class:`Response`."""
        op = _core.issue_job_acquisition_tokens(
            stack_key, job_uuids, token_lifetime_seconds=token_lifetime_seconds
        )
        return await self._run(op, retry, timeout)

    async def get_token(
        self, *, retry: RetryArg = None, timeout: TimeoutTypes = DEFAULT
    ) -> Response[TokenInfo]:
        """:meth:`AsyncClient.get_token`, in a :class:`Response`."""
        return await self._run(_core.get_token(), retry, timeout)
