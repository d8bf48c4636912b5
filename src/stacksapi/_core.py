"""The sans-IO heart of both clients: what to send for each method, and what a response means.

Each public method becomes an :class:`Op`: one or more :class:`Call` (job uuid lists are split into
requests of at most 1000) and a merge of their results. Validation happens while the Op is built,
so a bad argument raises before anything is sent. ``_engine`` follows each call through its
attempts; the clients only send and sleep. Client settings live in ``_settings``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx2
import msgspec

from . import _models as m
from ._endpoints import ENDPOINTS, Endpoint, escape_path_segment
from ._errors import RequestValidationError
from ._response import Response
from ._validate import (
    check_int_range,
    check_job_uuid,
    check_job_uuids,
    check_metadata,
    check_notification,
    check_optional_str,
    check_stack_key,
    check_str,
    crop_finish_detail,
)

__all__ = [
    "BATCH_SIZE",
    "Call",
    "Op",
    "Pager",
    "batch_reserve_jobs",
    "create_stack_notifications",
    "deregister_stack",
    "finish_job",
    "get_job",
    "get_job_states",
    "get_token",
    "issue_job_acquisition_tokens",
    "list_scheduled_jobs",
    "register_stack",
]

T = TypeVar("T")

BATCH_SIZE = 1000


# --- operations -------------------------------------------------------------------------------


def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(type_, dec_hook=m.decode_hook)


_ENCODER = msgspec.json.Encoder(enc_hook=m.encode_hook)
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: _decoder(t)
    for t in (
        m.Stack,
        m.ScheduledJobsPage,
        m.Reservation,
        m.Job,
        m.JobStates,
        m.NotificationsResult,
        m.JobAcquisitionTokens,
        m.TokenInfo,
    )
}


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request: path relative to the base URL (escaped), query, JSON body, result type.

    ``result`` ``None`` means the body is ignored and the data is ``None``. ``idempotent`` false
    marks calls whose repeat after a lost response may meet "already done" (finish).
    """

    endpoint: Endpoint
    path: str
    params: dict[str, str | int] | None = None
    body: bytes | None = None
    result: type[Any] | None = None
    idempotent: bool = True

    @property
    def method(self) -> str:
        return self.endpoint.method


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """What one public method sends: its calls, how to merge their data, warnings to log."""

    calls: tuple[Call, ...]
    merge: Callable[[list[Any]], T] | None = None  # None: exactly one call, its data as is
    warnings: tuple[str, ...] = ()


def _path(name: str, key: str | None = None, uuid: str | None = None) -> tuple[Endpoint, str]:
    endpoint = ENDPOINTS[name]
    path = endpoint.path
    if key is not None:
        path = path.replace("{key}", escape_path_segment(key))
    if uuid is not None:
        path = path.replace("{uuid}", escape_path_segment(uuid))
    return endpoint, path


def _chunked(
    endpoint: Endpoint, path: str, uuids: list[str], body: Callable[[list[str]], Any], result: type
) -> tuple[Call, ...]:
    """One call per 1000 job uuids (none for an empty list), each with ``body(chunk)``."""
    return tuple(
        Call(endpoint, path, body=_ENCODER.encode(body(uuids[i : i + BATCH_SIZE])), result=result)
        for i in range(0, len(uuids), BATCH_SIZE)
    )


def _seconds(value: object, field: str) -> int | None:
    """An optional duration argument: ``None`` (the server's default) or 1..3600 seconds."""
    return None if value is None else check_int_range(value, field, 1, 3600)


def register_stack(
    key: object, *, queue_key: object, type: object, metadata: object
) -> Op[m.Stack]:
    body = m.RegisterStackRequest(
        key=check_stack_key(key, "key"),
        type=str(check_str(type, "type")),
        queue_key=check_str(queue_key, "queue_key"),
        metadata=check_metadata(metadata),
    )
    endpoint, path = _path("register_stack")
    return Op((Call(endpoint, path, body=_ENCODER.encode(body), result=m.Stack),))


def deregister_stack(key: object) -> Op[None]:
    endpoint, path = _path("deregister_stack", check_stack_key(key, "key"))
    return Op((Call(endpoint, path),))


def list_scheduled_jobs(
    stack_key: object, *, queue_key: object, limit: object, after: object
) -> Op[m.ScheduledJobsPage]:
    params: dict[str, str | int] = {"queue_key": check_str(queue_key, "queue_key")}
    if limit is not None:
        params["limit"] = check_int_range(limit, "limit", 1, BATCH_SIZE)
    cursor = check_optional_str(after, "after")
    if cursor is not None:
        params["after"] = cursor
    endpoint, path = _path("list_scheduled_jobs", check_stack_key(stack_key))
    return Op((Call(endpoint, path, params=params, result=m.ScheduledJobsPage),))


def _concat(model: Callable[..., T], *fields: str) -> Callable[[list[T]], T]:
    """A merge of chunked answers: ``model`` with each tuple field joined in request order."""

    def merge(parts: list[T]) -> T:
        return model(**{f: tuple(x for p in parts for x in getattr(p, f)) for f in fields})

    return merge


def batch_reserve_jobs(
    stack_key: object, job_uuids: object, *, reservation_expiry_seconds: object
) -> Op[m.Reservation]:
    endpoint, path = _path("batch_reserve_jobs", check_stack_key(stack_key))
    uuids = check_job_uuids(job_uuids)
    expiry = _seconds(reservation_expiry_seconds, "reservation_expiry_seconds")

    def body(chunk: list[str]) -> m.ReserveJobsRequest:
        return m.ReserveJobsRequest(job_uuids=chunk, reservation_expiry_seconds=expiry)

    merge = _concat(m.Reservation, "reserved", "not_reserved")
    return Op(_chunked(endpoint, path, uuids, body, m.Reservation), merge)


def get_job(stack_key: object, job_uuid: object) -> Op[m.Job]:
    endpoint, path = _path("get_job", check_stack_key(stack_key), check_job_uuid(job_uuid))
    return Op((Call(endpoint, path, result=m.Job),))


def _merge_states(parts: list[m.JobStates]) -> m.JobStates:
    states: dict[str, str] = {}
    for p in parts:
        states.update(p.states)
    return m.JobStates(states=states)


def get_job_states(stack_key: object, job_uuids: object) -> Op[m.JobStates]:
    endpoint, path = _path("get_job_states", check_stack_key(stack_key))
    uuids = check_job_uuids(job_uuids)
    calls = _chunked(
        endpoint, path, uuids, lambda chunk: m.JobUUIDsRequest(job_uuids=chunk), m.JobStates
    )
    return Op(calls, _merge_states)


def finish_job(
    stack_key: object,
    job_uuid: object,
    *,
    detail: object,
    exit_status: object,
    signal_reason: object,
) -> Op[None]:
    key = check_stack_key(stack_key)
    uuid = check_job_uuid(job_uuid)
    if isinstance(exit_status, bool) or not isinstance(exit_status, int):
        raise RequestValidationError(
            "exit_status", "must be an int", value_hint=type(exit_status).__name__
        )
    text, warning = crop_finish_detail(detail)
    body = m.FinishJobRequest(
        exit_status=exit_status,
        detail=text,
        signal_reason=check_optional_str(signal_reason, "signal_reason"),
    )
    endpoint, path = _path("finish_job", key, uuid)
    call = Call(endpoint, path, body=_ENCODER.encode(body), idempotent=False)
    return Op((call,), warnings=(warning,) if warning else ())


def create_stack_notifications(
    stack_key: object, notifications: object
) -> Op[m.NotificationsResult]:
    endpoint, path = _path("create_stack_notifications", check_stack_key(stack_key))
    if isinstance(notifications, str | bytes) or not isinstance(notifications, Sequence):
        raise RequestValidationError(
            "notifications",
            "must be a sequence of StackNotification",
            value_hint=type(notifications).__name__,
        )
    checked: list[m.StackNotification] = []
    warnings: list[str] = []
    for i, n in enumerate(notifications):
        note, warning = check_notification(n, i)
        checked.append(note)
        if warning:
            warnings.append(warning)
    starts: list[int] = []
    calls: list[Call] = []
    for start in range(0, len(checked), BATCH_SIZE):
        starts.append(start)
        body = m.NotificationsRequest(notifications=checked[start : start + BATCH_SIZE])
        calls.append(Call(endpoint, path, body=_ENCODER.encode(body), result=m.NotificationsResult))

    def merge(parts: list[m.NotificationsResult]) -> m.NotificationsResult:
        # Indexes in each answer count from its own request: shift them to the caller's list.
        errors = [
            m.NotificationError(error=e.error, indexes=tuple(i + offset for i in e.indexes))
            for offset, part in zip(starts, parts, strict=True)
            for e in part.errors
        ]
        return m.NotificationsResult(errors=tuple(errors))

    return Op(tuple(calls), merge, tuple(warnings))


def issue_job_acquisition_tokens(
    stack_key: object, job_uuids: object, *, token_lifetime_seconds: object
) -> Op[m.JobAcquisitionTokens]:
    endpoint, path = _path("issue_job_acquisition_tokens", check_stack_key(stack_key))
    uuids = check_job_uuids(job_uuids)
    lifetime = _seconds(token_lifetime_seconds, "token_lifetime_seconds")

    def body(chunk: list[str]) -> m.TokensRequest:
        return m.TokensRequest(job_uuids=chunk, token_lifetime_seconds=lifetime)

    merge = _concat(m.JobAcquisitionTokens, "job_acquisition_tokens", "not_issued")
    return Op(_chunked(endpoint, path, uuids, body, m.JobAcquisitionTokens), merge)


def get_token() -> Op[m.TokenInfo]:
    endpoint, path = _path("get_token")
    return Op((Call(endpoint, path, result=m.TokenInfo),))


def decode(call: Call, content: bytes) -> Any:
    """The data of a 2xx response to ``call`` (raises ``msgspec`` errors on a bad body)."""
    if call.result is None:
        return None
    return _DECODERS[call.result].decode(content)


def merge_responses(op: Op[T], responses: list[Response[Any]]) -> Response[T]:
    """One Response for an op: the single call's, or the merged data with the last call's facts."""
    if op.merge is None:
        only: Response[T] = responses[0]
        return only
    data = op.merge([r.data for r in responses])
    if not responses:
        return Response(data, status_code=200, headers=httpx2.Headers(), elapsed=_dt.timedelta(0))
    last = responses[-1]
    total = sum((r.elapsed for r in responses), _dt.timedelta(0))
    return Response(data, status_code=last.status_code, headers=last.headers, elapsed=total)


class Pager:
    """Follows ``end_cursor`` page after page for ``iter_scheduled_jobs``; checks arguments at once.

    It stops when a page says there is no next page, has no cursor, repeats the cursor it was asked
    with (a server bug would otherwise loop forever), or after ``max_pages`` pages.
    """

    __slots__ = ("after", "done", "max_pages", "page_size", "pages", "queue_key", "stack_key")

    def __init__(
        self, stack_key: object, *, queue_key: object, page_size: object, max_pages: object
    ) -> None:
        if page_size is not None:
            check_int_range(page_size, "page_size", 1, BATCH_SIZE)
        list_scheduled_jobs(stack_key, queue_key=queue_key, limit=page_size, after=None)
        if max_pages is not None:
            check_int_range(max_pages, "max_pages", 1, 2**31)
        self.stack_key = stack_key
        self.queue_key = queue_key
        self.page_size = page_size
        self.max_pages = max_pages
        self.after: str | None = None
        self.pages = 0
        self.done = False

    def next_op(self) -> Op[m.ScheduledJobsPage] | None:
        """The request of the next page, or ``None`` when done."""
        if self.done or (isinstance(self.max_pages, int) and self.pages >= self.max_pages):
            return None
        return list_scheduled_jobs(
            self.stack_key, queue_key=self.queue_key, limit=self.page_size, after=self.after
        )

    def feed(self, page: m.ScheduledJobsPage) -> tuple[m.ScheduledJob, ...]:
        """Take a page; its jobs."""
        self.pages += 1
        cursor = page.page_info.end_cursor
        if not page.page_info.has_next_page or not cursor or cursor == self.after:
            self.done = True
        self.after = cursor
        return page.jobs
