"""The runtime's decisions as pure functions: which jobs to reserve, when to renew, how to crop.

Nothing here performs I/O or reads a clock; callers pass ``now``. That keeps every rule of the
loop testable directly and the loop itself a thin shell.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from stacksapi import _redact
from stacksapi._core import BATCH_SIZE
from stacksapi._models import ScheduledJob, StackNotification
from stacksapi._validate import FINISH_DETAIL_MAX_BYTES, NOTIFICATION_DETAIL_MAX_CHARS

from ._rules import unmatched_rules

__all__ = [
    "FINISH_DETAIL_MAX_BYTES",
    "MAX_BATCH",
    "NOTIFICATIONS_PER_JOB",
    "NOTIFICATION_DETAIL_MAX_CHARS",
    "NotificationBatcher",
    "Selection",
    "aware",
    "chunks",
    "crop_detail",
    "crop_notification",
    "redact_tokens",
    "renewals_due",
    "select_candidates",
    "start_order",
]

MAX_BATCH = BATCH_SIZE
"""Most uuids (or notifications) one request may carry."""
NOTIFICATIONS_PER_JOB = 100
_CROP_MARKER = " [... cropped]"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """Result of :func:`select_candidates`.

    ``candidates``: jobs to reserve, best first. ``filtered``: jobs this stack cannot serve, with
    the rules it fails. ``next_runnable_at``: the earliest ``runnable_at`` still in the future.
    """

    candidates: tuple[ScheduledJob, ...]
    filtered: tuple[tuple[ScheduledJob, tuple[str, ...]], ...]
    next_runnable_at: dt.datetime | None


def select_candidates(
    jobs: Iterable[ScheduledJob],
    *,
    in_flight: Container[str],
    tags: Mapping[str, str],
    queue_key: str,
    now: dt.datetime,
    limit: int,
) -> Selection:
    """Choose up to ``limit`` jobs to reserve, in the order they should start.

    Drops jobs already in flight, jobs whose agent query rules the stack fails, and jobs whose
    ``runnable_at`` is in the future; orders the rest by priority (higher first), then by
    ``scheduled_at`` (older first), then uuid for determinism.
    """
    eligible: list[ScheduledJob] = []
    filtered: list[tuple[ScheduledJob, tuple[str, ...]]] = []
    soonest: dt.datetime | None = None
    seen: set[str] = set()
    for job in jobs:
        if job.id in in_flight or job.id in seen:
            continue
        seen.add(job.id)
        failed = unmatched_rules(job.agent_query_rules, tags, queue_key)
        if failed:
            filtered.append((job, tuple(failed)))
            continue
        if job.runnable_at is not None and aware(job.runnable_at) > now:
            runnable = aware(job.runnable_at)
            soonest = runnable if soonest is None else min(soonest, runnable)
            continue
        eligible.append(job)
    eligible.sort(key=start_order)
    return Selection(tuple(eligible[: max(limit, 0)]), tuple(filtered), soonest)


def start_order(job: ScheduledJob) -> tuple[int, dt.datetime, str]:
    """Sort key: priority (higher first), then ``scheduled_at`` (older first), then uuid."""
    return (-job.priority, aware(job.scheduled_at), job.id)


def aware(value: dt.datetime) -> dt.datetime:
    """Timestamps without a zone are UTC (the API sends UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def renewals_due(expiries: Mapping[str, float], *, now: float, margin: float) -> list[str]:
    """Jobs whose reservation ends within ``margin`` seconds of ``now`` (monotonic seconds)."""
    return sorted(uuid for uuid, expires in expiries.items() if expires - now <= margin)


def chunks(items: Sequence[T], size: int = MAX_BATCH) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def redact_tokens(text: str, *secrets: str | None) -> str:
    """``text`` with each given secret and every token-shaped word masked: what leaves the stack
    (a finish detail, a notification, a log line) quotes agent output and dispatcher errors,
    which may hold one."""
    return _redact.redact_tokens(text, *secrets, mask="[REDACTED]")


def crop_detail(text: str, max_bytes: int = FINISH_DETAIL_MAX_BYTES) -> str:
    """Crop to ``max_bytes`` of UTF-8 on a character boundary, marking that it was cropped.

    Keeps the end of the text, since the last lines of an agent's output say why it failed.
    """
    text = text if text.strip() else "(no detail)"
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    marker = "[cropped ...] "
    keep = max_bytes - len(marker.encode())
    tail = raw[len(raw) - keep :].decode("utf-8", errors="ignore")
    return marker + tail


def crop_notification(text: str, max_chars: int = NOTIFICATION_DETAIL_MAX_CHARS) -> str:
    """One line of 1..``max_chars`` characters."""
    line = " ".join(text.split()) or "-"
    if len(line) <= max_chars:
        return line
    return line[: max_chars - len(_CROP_MARKER)] + _CROP_MARKER


class NotificationBatcher:
    """Collects notifications and hands them out in requests that respect the documented limits.

    At most ``NOTIFICATIONS_PER_JOB`` are ever queued per job (later ones are dropped and
    counted), details are cropped to 256 characters and a batch holds at most 1000.
    """

    def __init__(self, per_job: int = NOTIFICATIONS_PER_JOB) -> None:
        self._per_job = per_job
        self._pending: list[StackNotification] = []
        self._count: Counter[str] = Counter()
        self.dropped = 0

    def add(self, job_uuid: str, detail: str, timestamp: dt.datetime) -> bool:
        """Queue one notification; False when the job already used its allowance."""
        if self._count[job_uuid] >= self._per_job:
            self.dropped += 1
            return False
        self._count[job_uuid] += 1
        line = crop_notification(redact_tokens(detail))
        self._pending.append(StackNotification(job_uuid, line, timestamp))
        return True

    def forget(self, job_uuid: str) -> None:
        """Stop counting a job that is over (keeps memory bounded)."""
        self._count.pop(job_uuid, None)

    def take(self, limit: int = MAX_BATCH) -> list[StackNotification]:
        """Remove and return the oldest ``limit`` queued notifications."""
        batch, self._pending = self._pending[:limit], self._pending[limit:]
        return batch

    def __len__(self) -> int:
        return len(self._pending)
