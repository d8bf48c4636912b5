"""The Stacks API operations over an :class:`Emulator`, one function per endpoint.

Each takes the decoded request (the ``_models`` request Structs), enforces the documented limits
with a message naming the field, and returns a status and a response model (or ready JSON bytes
for the hot listing). The app calls them; they take the Emulator's lock themselves.
"""

from __future__ import annotations

import heapq
import re
import secrets
from typing import Any

from stacksapi._models import (
    ClusterQueue,
    FinishJobRequest,
    Job,
    JobAcquisitionToken,
    JobAcquisitionTokens,
    JobStates,
    JobUUIDsRequest,
    NotificationError,
    NotificationsRequest,
    NotificationsResult,
    PageInfo,
    RegisterStackRequest,
    Reservation,
    ReserveJobsRequest,
    Secret,
    Stack,
    TokenInfo,
    TokensRequest,
)

from ._clock import to_datetime, to_epoch
from ._cluster import TERMINAL, StackRecord
from ._jobs import (
    FinishRecord,
    JobRecord,
    NotificationRecord,
    ReservationRecord,
    TokenRecord,
    mask_token,
)
from ._queues import decode_cursor, encode_cursor
from ._reply import EmulatorError, encode
from ._state import Emulator

__all__ = [
    "FinishBody",
    "deregister_stack",
    "finish_job",
    "get_job",
    "get_job_states",
    "get_token",
    "issue_tokens",
    "list_scheduled_jobs",
    "notify",
    "register_stack",
    "reserve_jobs",
]

STACK_KEY = re.compile(r"[A-Za-z0-9_-]{1,80}")
STACK_TYPES = ("custom", "kubernetes", "elastic")
MAX_BATCH = 1000
MAX_SECONDS = 3600
"""Longest reservation and token lifetime a request may ask for."""
TOKEN_LIFETIME_SECONDS = 900
"""A job acquisition token's lifetime when the request names none."""
DEFAULT_PAGE = 100
MAX_DETAIL_BYTES = 4096
MAX_NOTIFICATION_CHARS = 256
MAX_NOTIFICATIONS_PER_JOB = 100
NOTIFY_AFTER_FINISH_SECONDS = 300.0
TIMESTAMP_RESOLUTION = 0.001
"""Wire timestamps carry at most micro- or milliseconds: closer times compare as equal."""
CLOCK_SKEW_SECONDS = 60.0
CLUSTER_TOKEN_TYPE = "cluster"  # noqa: S105 - a kind of token, not a token


class FinishBody(FinishJobRequest, kw_only=True, frozen=True, omit_defaults=True):
    """The finish body as servers read it: ``exit_status`` may be omitted and then means -1."""

    exit_status: int = -1


def _stack(em: Emulator, key: str, now: float) -> StackRecord:
    stack = em.stacks.get(key)
    if stack is None:
        raise EmulatorError(404, f"stack {key!r} not found (register it first)")
    stack.last_seen = now
    return stack


def _known_job(em: Emulator, job_id: str) -> JobRecord:
    job = em.jobs.get(job_id)
    if job is None:
        raise EmulatorError(404, f"job {job_id!r} not found")
    return job


def _range(field: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise EmulatorError(422, f"{field}: must be between {low} and {high} (got {value})")


def _seconds(field: str, value: int | None, default: int) -> int:
    """An optional duration in the body: ``default`` when absent, else within 1..3600."""
    seconds = default if value is None else value
    _range(field, seconds, 1, MAX_SECONDS)
    return seconds


def _uuids(field: str, values: list[str]) -> list[str]:
    _range(f"{field} count", len(values), 1, MAX_BATCH)
    return list(dict.fromkeys(values))


def register_stack(em: Emulator, req: RegisterStackRequest) -> tuple[int, Stack]:
    if not STACK_KEY.fullmatch(req.key):
        raise EmulatorError(422, "key: must be 1..80 characters of A-Z a-z 0-9 _ -")
    if req.type not in STACK_TYPES:
        raise EmulatorError(422, f"type: must be one of {', '.join(STACK_TYPES)}")
    if len(req.metadata) > 100:
        raise EmulatorError(422, f"metadata: at most 100 keys (got {len(req.metadata)})")
    for k, v in req.metadata.items():
        if not 1 <= len(k) <= 64:
            raise EmulatorError(422, f"metadata[{k[:64]!r}]: keys must be 1..64 characters")
        if len(v) > 256:
            raise EmulatorError(422, f"metadata[{k!r}]: values must be at most 256 characters")
    with em.lock:
        now = em.tick()
        if req.queue_key not in em.queues:
            raise EmulatorError(404, f"queue_key: queue {req.queue_key!r} not found")
        stack = em.stacks.get(req.key)
        created = stack is None
        if stack is None:
            if len(em.stacks) >= em.max_active_stacks:
                raise EmulatorError(
                    403,
                    f"stack limit reached: at most {em.max_active_stacks} active stacks; "
                    "deregister stacks that stopped",
                )
            stack = em.stacks[req.key] = StackRecord(
                req.key, req.type, req.queue_key, dict(req.metadata)
            )
        else:
            stack.type, stack.queue_key = req.type, req.queue_key
            stack.metadata = dict(req.metadata)
        stack.last_seen = now
        return (201 if created else 200), em.stack_view(stack)


def deregister_stack(em: Emulator, key: str) -> None:
    """Remove the stack; the reservations it held end and their jobs list again."""
    with em.lock:
        now = em.tick()
        stack = _stack(em, key, now)
        for job_id in list(stack.reserved):
            job = em.jobs[job_id]
            if job.state == "reserved":
                em.end_reservation(job, now, "stack deregistered")
                job.move("scheduled", now, "stack deregistered")
                em.queues[job.queue].add(job)
        del em.stacks[key]


def list_scheduled_jobs(
    em: Emulator, key: str, queue_key: str | None, limit: str | None, after: str | None
) -> bytes:
    """A page as JSON bytes: each job's JSON is encoded once and reused."""
    if not queue_key:
        raise EmulatorError(400, "queue_key: required query parameter")
    size = DEFAULT_PAGE
    if limit is not None:
        try:
            size = int(limit)
        except ValueError:
            raise EmulatorError(400, f"limit: must be an integer 1..{MAX_BATCH}") from None
        if not 1 <= size <= MAX_BATCH:
            raise EmulatorError(400, f"limit: must be between 1 and {MAX_BATCH} (got {size})")
    position = None
    if after:
        position = decode_cursor(after)
        if position is None:
            raise EmulatorError(400, "after: not a cursor this server issued")
    with em.lock:
        now = em.tick()
        _stack(em, key, now)
        queue = em.queues.get(queue_key)
        if queue is None:
            raise EmulatorError(404, f"queue_key: queue {queue_key!r} not found")
        queue.last_polled = now
        jobs, more = queue.page(position, size)
        parts = [job.listing or _listing(job) for job in jobs]
        paused = queue.paused
        cursor = encode_cursor(jobs[-1]) if jobs else after or None
        queue_id = queue.id
    tail = encode(
        {
            "page_info": PageInfo(has_next_page=more, end_cursor=cursor),
            "cluster_queue": ClusterQueue(id=queue_id, dispatch_paused=paused, paused=paused),
        }
    )
    if not parts:
        return b'{"jobs":[],' + tail[1:]
    # Glue the head and tail onto the end parts so the page is copied once, in one join.
    parts[0] = b'{"jobs":[' + parts[0]
    parts[-1] = parts[-1] + b"]," + tail[1:]
    return b",".join(parts)


def _listing(job: JobRecord) -> bytes:
    """A job's JSON in a listing, encoded on first use and kept (it never changes)."""
    listing = job.listing = encode(job.scheduled_job())
    return listing


def reserve_jobs(em: Emulator, key: str, req: ReserveJobsRequest) -> Reservation:
    uuids = _uuids("job_uuids", req.job_uuids)
    seconds = _seconds(
        "reservation_expiry_seconds", req.reservation_expiry_seconds, em.reservation_expiry_seconds
    )
    reserved: list[str] = []
    refused: list[str] = []
    with em.lock:
        now = em.tick()
        stack = _stack(em, key, now)
        until = now + seconds
        for job_id in uuids:
            job = em.jobs.get(job_id)
            if job is None:
                refused.append(job_id)
            elif job.state == "scheduled" and not em.queues[job.queue].paused:
                em.queues[job.queue].discard(job)
                job.move("reserved", now, f"stack {key}")
                job.reserved_by = key
                job.reserved_until = until
                stack.reserved.add(job_id)
                job.hist().reservations.append(
                    ReservationRecord(
                        stack_key=key, reserved_at=to_datetime(now), expires_at=to_datetime(until)
                    )
                )
                heapq.heappush(em.reservation_heap, (until, job_id, job.reservation_seq))
                reserved.append(job_id)
            elif job.state == "reserved" and job.reserved_by == key:
                job.reserved_until = until
                record = job.hist().reservations[-1]
                record.expires_at = to_datetime(until)
                record.extended += 1
                heapq.heappush(em.reservation_heap, (until, job_id, job.reservation_seq))
                reserved.append(job_id)
            else:
                refused.append(job_id)
    return Reservation(reserved=tuple(reserved), not_reserved=tuple(refused))


def get_job(em: Emulator, key: str, job_id: str) -> Job:
    with em.lock:
        now = em.tick()
        _stack(em, key, now)
        job = _known_job(em, job_id)
        return Job(id=job.id, env=dict(job.env), command=job.command)


def get_job_states(em: Emulator, key: str, req: JobUUIDsRequest) -> JobStates:
    """States of the known jobs among those asked for (unknown uuids are left out)."""
    uuids = _uuids("job_uuids", req.job_uuids)
    with em.lock:
        now = em.tick()
        _stack(em, key, now)
        jobs = em.jobs
        return JobStates(states={u: jobs[u].state for u in uuids if u in jobs})


def finish_job(em: Emulator, key: str, job_id: str, req: FinishBody) -> None:
    """A stack finishes a job it will not (or could not) hand to an agent."""
    if not req.detail:
        raise EmulatorError(422, "detail: required, must not be empty")
    if len(req.detail.encode()) > MAX_DETAIL_BYTES:
        raise EmulatorError(422, f"detail: at most {MAX_DETAIL_BYTES} bytes")
    if req.signal_reason is not None and len(req.signal_reason) > 256:
        raise EmulatorError(422, "signal_reason: at most 256 characters")
    with em.lock:
        now = em.tick()
        _stack(em, key, now)
        job = _known_job(em, job_id)
        if job.state in TERMINAL:
            raise EmulatorError(422, f"job {job_id} is already {job.state}: finish once per job")
        if job.state == "reserved" and job.reserved_by != key:
            raise EmulatorError(422, f"job {job_id} is reserved by another stack")
        if job.state in ("accepted", "running"):
            raise EmulatorError(422, f"job {job_id} is {job.state}: its agent finishes it")
        target = "canceled" if job.state == "canceling" else "finished"
        em.unlist(job, now, "finished")
        job.move(target, now, f"stack {key}")
        job.hist().finish = FinishRecord(
            by=f"stack {key}",
            at=to_datetime(now),
            exit_status=req.exit_status,
            detail=req.detail,
            signal_reason=req.signal_reason,
        )


def notify(em: Emulator, key: str, req: NotificationsRequest) -> NotificationsResult:
    """Create the valid notifications; report the others by index, grouped by message."""
    _range("notifications count", len(req.notifications), 1, MAX_BATCH)
    errors: dict[str, list[int]] = {}
    with em.lock:
        now = em.tick()
        _stack(em, key, now)
        for index, note in enumerate(req.notifications):
            problem = _check_note(em, note.job_uuid, note.detail, note.timestamp, now)
            if problem is not None:
                errors.setdefault(problem, []).append(index)
                continue
            job = em.jobs[note.job_uuid]
            when = now if note.timestamp is None else to_epoch(note.timestamp)
            job.hist().notifications.append(
                NotificationRecord(
                    stack_key=key,
                    detail=note.detail,
                    timestamp=to_datetime(when),
                    received_at=to_datetime(now),
                )
            )
    return NotificationsResult(
        errors=tuple(NotificationError(error=e, indexes=tuple(i)) for e, i in errors.items())
    )


def _check_note(em: Emulator, job_id: str, detail: str, timestamp: Any, now: float) -> str | None:
    job = em.jobs.get(job_id)
    if job is None:
        return "job_uuid: job not found"
    if not 1 <= len(detail) <= MAX_NOTIFICATION_CHARS:
        return f"detail: must be 1..{MAX_NOTIFICATION_CHARS} characters"
    if timestamp is not None:
        when = to_epoch(timestamp)
        if when > now + CLOCK_SKEW_SECONDS:
            return "timestamp: must not be in the future"
        if when < job.created_at - TIMESTAMP_RESOLUTION:
            return "timestamp: must not be before the job was created"
    history = job.history
    if history is not None:
        finished_at = history.finish.at.timestamp() if history.finish is not None else None
        if finished_at is not None and now - finished_at > (
            NOTIFY_AFTER_FINISH_SECONDS + TIMESTAMP_RESOLUTION
        ):
            return f"job_uuid: job finished more than {NOTIFY_AFTER_FINISH_SECONDS:.0f} s ago"
        if len(history.notifications) >= MAX_NOTIFICATIONS_PER_JOB:
            return f"job_uuid: at most {MAX_NOTIFICATIONS_PER_JOB} notifications per job"
    return None


def issue_tokens(em: Emulator, key: str, req: TokensRequest) -> JobAcquisitionTokens:
    """``bkjat_`` tokens for the jobs this stack holds a reservation on; others not issued."""
    uuids = _uuids("job_uuids", req.job_uuids)
    lifetime = _seconds(
        "token_lifetime_seconds", req.token_lifetime_seconds, TOKEN_LIFETIME_SECONDS
    )
    issued: list[JobAcquisitionToken] = []
    refused: list[str] = []
    with em.lock:
        now = em.tick()
        _stack(em, key, now)
        expires = now + lifetime
        for job_id in uuids:
            job = em.jobs.get(job_id)
            if job is None or job.state != "reserved" or job.reserved_by != key:
                refused.append(job_id)
                continue
            token = "bkjat_" + secrets.token_urlsafe(32)
            history = job.hist()
            em.job_tokens[token] = (job_id, expires, job.reservation_seq, len(history.tokens))
            history.tokens.append(
                TokenRecord(
                    token=mask_token(token),
                    stack_key=key,
                    issued_at=to_datetime(now),
                    expires_at=to_datetime(expires),
                )
            )
            issued.append(
                JobAcquisitionToken(
                    job_uuid=job_id,
                    job_acquisition_token=Secret(token),
                    expires_at=to_datetime(expires),
                )
            )
    return JobAcquisitionTokens(job_acquisition_tokens=tuple(issued), not_issued=tuple(refused))


def get_token(em: Emulator, token: str) -> TokenInfo:
    return TokenInfo(
        uuid=em.token_info_id(token),
        description="Emulated cluster token",
        token_type=CLUSTER_TOKEN_TYPE,
        organization_slug=em.organization_slug,
        organization_uuid=em.organization_uuid,
        cluster_uuid=em.cluster_uuid,
        cluster_name=em.cluster_name,
    )
