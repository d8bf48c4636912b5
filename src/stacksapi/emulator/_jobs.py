"""Jobs inside the emulator: what a test asks for (``JobSpec``), how a job is stored
(``JobRecord``, compact, ``__slots__``), and what the admin API shows of it (``JobInfo``).

Records keep times as epoch floats and create their history lazily, so 100,000 queued jobs fit
in a modest amount of memory. The JSON a job lists as is encoded once and cached: a scheduled
job's listing never changes.
"""

from __future__ import annotations

import datetime as _dt
import hashlib

import msgspec

from stacksapi._models import Build, Pipeline, ScheduledJob, Step

from ._clock import to_datetime, to_epoch

__all__ = [
    "FinishRecord",
    "JobInfo",
    "JobRecord",
    "JobSpec",
    "NotificationRecord",
    "ReservationRecord",
    "TokenRecord",
    "Transition",
    "mask_token",
]

LOG_CAP_BYTES = 1024 * 1024
"""An agent's log is kept up to this many bytes per job; the rest is dropped and flagged."""


def mask_token(token: str) -> str:
    """A token's prefix and a short fingerprint, never the token: ``bkjat_…#1a2b3c4d``.

    The fingerprint is the start of the token's SHA-256, so a test holding a token can match it
    against the history without the history ever holding the secret.
    """
    prefix = token.split("_", 1)[0] + "_" if "_" in token else ""
    digest = hashlib.sha256(token.encode()).hexdigest()[:8]
    return f"{prefix}…#{digest}"


class JobSpec(msgspec.Struct, kw_only=True, frozen=True):
    """A job for the emulator to schedule, as a test (or the admin API) describes it.

    Every field is optional. ``queue`` ``None`` means the emulator's default queue;
    ``agent_query_rules`` ``None`` means ``["queue=<queue>"]``. ``scheduled_at`` defaults to
    now; ``runnable_at`` is served as is (stacks must not start the job before it).
    ``expire_after`` (seconds) moves a job nobody accepted to ``expired``.
    ``id`` fixes the job's uuid (must be unused); it is random (or seeded) otherwise.
    """

    queue: str | None = None
    priority: int = 0
    agent_query_rules: tuple[str, ...] | None = None
    pipeline: Pipeline | None = None
    build: Build | None = None
    step: Step | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    command: str = "true"
    scheduled_at: _dt.datetime | None = None
    runnable_at: _dt.datetime | None = None
    expire_after: float | None = None
    id: str | None = None


class Transition(msgspec.Struct, kw_only=True, frozen=True):
    """A job changed state: when, from what, to what, and who did it."""

    at: _dt.datetime
    from_state: str
    to_state: str
    by: str


class ReservationRecord(msgspec.Struct, kw_only=True):
    """One reservation of a job by a stack; ``extended`` counts renewals."""

    stack_key: str
    reserved_at: _dt.datetime
    expires_at: _dt.datetime
    extended: int = 0
    ended_at: _dt.datetime | None = None
    end_reason: str | None = None


class TokenRecord(msgspec.Struct, kw_only=True):
    """A job acquisition token issued for a job; ``token`` is masked (see :func:`mask_token`)."""

    token: str
    stack_key: str
    issued_at: _dt.datetime
    expires_at: _dt.datetime
    used_at: _dt.datetime | None = None


class NotificationRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A notification a stack posted on a job."""

    stack_key: str
    detail: str
    timestamp: _dt.datetime
    received_at: _dt.datetime


class FinishRecord(msgspec.Struct, kw_only=True, frozen=True):
    """How a job finished: by a stack (finish endpoint), an agent, or a cancellation."""

    by: str
    at: _dt.datetime
    exit_status: int | None
    detail: str | None = None
    signal_reason: str | None = None


class JobInfo(msgspec.Struct, kw_only=True, frozen=True):
    """Everything the emulator knows about a job, with its full history (admin view)."""

    id: str
    queue: str
    state: str
    priority: int
    agent_query_rules: tuple[str, ...]
    pipeline: Pipeline
    build: Build
    step: Step
    env: dict[str, str]
    command: str
    created_at: _dt.datetime
    scheduled_at: _dt.datetime
    runnable_at: _dt.datetime | None
    expires_at: _dt.datetime | None
    reserved_by: str | None
    reserved_until: _dt.datetime | None
    transitions: tuple[Transition, ...]
    reservations: tuple[ReservationRecord, ...]
    tokens: tuple[TokenRecord, ...]
    notifications: tuple[NotificationRecord, ...]
    finish: FinishRecord | None
    finished_by: str | None
    exit_status: int | None
    log: str
    log_truncated: bool


class JobHistory:
    """What happened to a job; created on its first event."""

    __slots__ = (
        "finish",
        "log",
        "log_truncated",
        "notifications",
        "reservations",
        "tokens",
        "transitions",
    )

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self.reservations: list[ReservationRecord] = []
        self.tokens: list[TokenRecord] = []
        self.notifications: list[NotificationRecord] = []
        self.finish: FinishRecord | None = None
        self.log = bytearray()
        self.log_truncated = False


_EMPTY_PIPELINE = Pipeline()
_EMPTY_BUILD = Build()
_EMPTY_STEP = Step()


class JobRecord:
    """One job as the emulator stores it. Mutated only under the Emulator's lock."""

    __slots__ = (
        "access_token",
        "build",
        "command",
        "created_at",
        "env",
        "expires_at",
        "history",
        "id",
        "listing",
        "pipeline",
        "priority",
        "queue",
        "reservation_seq",
        "reserved_by",
        "reserved_until",
        "rules",
        "runnable_at",
        "scheduled_at",
        "state",
        "step",
    )

    def __init__(
        self,
        spec: JobSpec,
        *,
        job_id: str,
        queue: str,
        now: float,
        rules: tuple[str, ...],
    ) -> None:
        self.id = job_id
        self.queue = queue
        self.priority = spec.priority
        self.rules = rules
        self.pipeline = spec.pipeline or _EMPTY_PIPELINE
        self.build = spec.build or _EMPTY_BUILD
        self.step = spec.step or _EMPTY_STEP
        self.env = spec.env
        self.command = spec.command
        self.scheduled_at = now if spec.scheduled_at is None else to_epoch(spec.scheduled_at)
        self.created_at = min(now, self.scheduled_at)
        self.runnable_at = None if spec.runnable_at is None else to_epoch(spec.runnable_at)
        self.expires_at = None if spec.expire_after is None else now + spec.expire_after
        self.state = "scheduled"
        self.reserved_by: str | None = None
        self.reserved_until = 0.0
        self.reservation_seq = 0
        self.access_token: str | None = None
        self.listing: bytes | None = None
        self.history: JobHistory | None = None

    def hist(self) -> JobHistory:
        if self.history is None:
            self.history = JobHistory()
        return self.history

    def move(self, to_state: str, now: float, by: str) -> None:
        """Change state and record the transition."""
        self.hist().transitions.append(
            Transition(at=to_datetime(now), from_state=self.state, to_state=to_state, by=by)
        )
        self.state = to_state

    def scheduled_job(self) -> ScheduledJob:
        return ScheduledJob(
            id=self.id,
            priority=self.priority,
            agent_query_rules=self.rules,
            scheduled_at=to_datetime(self.scheduled_at),
            runnable_at=None if self.runnable_at is None else to_datetime(self.runnable_at),
            pipeline=self.pipeline,
            build=self.build,
            step=self.step,
        )

    def append_log(self, text: str) -> None:
        history = self.hist()
        data = text.encode()
        room = LOG_CAP_BYTES - len(history.log)
        if len(data) > room:
            history.log_truncated = True
            data = data[: max(0, room)]
        history.log += data

    def info(self) -> JobInfo:
        h = self.history or JobHistory()
        return JobInfo(
            id=self.id,
            queue=self.queue,
            state=self.state,
            priority=self.priority,
            agent_query_rules=self.rules,
            pipeline=self.pipeline,
            build=self.build,
            step=self.step,
            env=dict(self.env),
            command=self.command,
            created_at=to_datetime(self.created_at),
            scheduled_at=to_datetime(self.scheduled_at),
            runnable_at=None if self.runnable_at is None else to_datetime(self.runnable_at),
            expires_at=None if self.expires_at is None else to_datetime(self.expires_at),
            reserved_by=self.reserved_by,
            reserved_until=to_datetime(self.reserved_until) if self.reserved_by else None,
            transitions=tuple(h.transitions),
            reservations=tuple(msgspec.structs.replace(r) for r in h.reservations),
            tokens=tuple(msgspec.structs.replace(t) for t in h.tokens),
            notifications=tuple(h.notifications),
            finish=h.finish,
            finished_by=None if h.finish is None else h.finish.by,
            exit_status=None if h.finish is None else h.finish.exit_status,
            log=h.log.decode(errors="replace"),
            log_truncated=h.log_truncated,
        )

    def __repr__(self) -> str:
        return f"JobRecord(id={self.id!r}, queue={self.queue!r}, state={self.state!r})"
