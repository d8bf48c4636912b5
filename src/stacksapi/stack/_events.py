"""Events the runtime emits so a UI (the demo's live view, a test) can follow progress.

Pass ``on_event=callback`` to :class:`~stacksapi.stack.StackRunner`; the callback runs on the event
loop, must be quick and must not raise (an exception is logged and ignored).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["Emitter", "EventCallback", "EventKind", "StackEvent", "job_names"]


class EventKind(enum.StrEnum):
    """What happened. Job events carry ``job_uuid``; while the stack knows the job, their
    ``data`` also has ``pipeline`` (its slug) and ``step`` (its key), as in ``job_names``."""

    REGISTERED = "registered"
    POLLED = "polled"  # data: jobs (seen), paused
    PAUSED = "paused"  # the queue's dispatch_paused turned true
    RESUMED = "resumed"
    FILTERED = "filtered"  # job: this stack cannot serve it; data: rules
    RESERVED = "reserved"
    NOT_RESERVED = "not_reserved"
    TOKEN_NOT_ISSUED = "token_not_issued"  # noqa: S105 (an event name, not a secret)
    DISPATCHED = "dispatched"  # data: wait (seconds from scheduled_at)
    DISPATCH_FAILED = "dispatch_failed"
    DEFERRED = "deferred"  # job: the dispatcher said "not now"; released unfailed
    ADOPTED = "adopted"  # job: work found alive at start; data: state
    TOKEN_REFRESHED = "token_refreshed"  # noqa: S105 (an event name, not a secret)
    TIMED_OUT = "timed_out"  # job: its agent did not start within provisioning_timeout
    RENEWED = "renewed"
    LOST = "lost"  # job: the reservation was not renewed; work cancelled
    STARTED = "started"  # job: an agent accepted it
    CANCELLED = "cancelled"  # job: cancelled in Buildkite; dispatcher work torn down
    AGENT_ENDED = "agent_ended"  # data: exit_status
    FINISHED_BY_STACK = "finished_by_stack"  # data: exit_status, signal_reason, detail
    RATE_LIMITED = "rate_limited"
    API_ERROR = "api_error"
    STOPPING = "stopping"
    WAITING = "waiting"  # shutting down: data: agents, grace_left
    DEREGISTERED = "deregistered"
    STOPPED = "stopped"  # data: reason, ok
    ACQUIRE_LOST = "acquire_lost"  # job: another agent took it first (a shared stack key)
    HANDED_BACK = "handed_back"  # job: let go unfailed, back to the queue (breaker open)
    BREAKER_OPEN = "breaker_open"  # data: reason, retry_in; no jobs taken until a probe works
    BREAKER_CLOSED = "breaker_closed"  # a probe's agent took its job: taking jobs again


@dataclasses.dataclass(frozen=True, slots=True)
class StackEvent:
    """One event: its kind, the job it concerns (if any), a human line, and small extra data."""

    kind: EventKind
    job_uuid: str | None = None
    message: str = ""
    data: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    time: float = dataclasses.field(default_factory=time.time)


def job_names(job: Any) -> dict[str, str]:
    """``pipeline`` and ``step`` of a :class:`~stacksapi.ScheduledJob`, where it has them."""
    names = {"pipeline": job.pipeline.slug, "step": job.step.key}
    return {k: v for k, v in names.items() if v}


EventCallback = Callable[[StackEvent], None]
"""The type of ``on_event``."""


# Job milestones log at INFO (each line names the job and carries ``job_uuid`` in the record);
# routine steps at DEBUG; trouble at WARNING.
_LEVELS = {
    **dict.fromkeys(
        (EventKind.POLLED, EventKind.RESERVED, EventKind.NOT_RESERVED, EventKind.RENEWED),
        logging.DEBUG,
    ),
    **dict.fromkeys(
        (
            EventKind.DISPATCH_FAILED,
            EventKind.RATE_LIMITED,
            EventKind.API_ERROR,
            EventKind.LOST,
            EventKind.TOKEN_NOT_ISSUED,
            EventKind.TIMED_OUT,
        ),
        logging.WARNING,
    ),
}


class Emitter:
    """Logs each event at its level and hands it to ``on_event`` (whose errors are logged)."""

    def __init__(
        self,
        log: logging.Logger,
        on_event: EventCallback | None,
        names: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        self.log = log
        self._on_event = on_event
        # ``names(job_uuid)``: how people know a job (pipeline, step), added to its events' data.
        self._names = names

    def __call__(
        self, kind: EventKind, job_uuid: str | None = None, message: str = "", **data: Any
    ) -> None:
        level = _LEVELS.get(kind, logging.INFO)
        if self.log.isEnabledFor(level):
            prefix = f"job {job_uuid}: " if job_uuid else ""
            self.log.log(level, "%s%s", prefix, message or kind.value,
                         extra={"job_uuid": job_uuid, "event": kind.value})  # fmt: skip
        if self._on_event is not None:
            if job_uuid and self._names is not None:
                data = {**self._names(job_uuid), **data}
            try:
                self._on_event(StackEvent(kind, job_uuid, message, data))
            except Exception:
                self.log.exception("on_event callback raised")
