"""A cluster queue and its ordered set of listable jobs.

The set holds only ``scheduled`` jobs (reserved ones leave it and come back when their
reservation expires), kept sorted by ``(scheduled_at, id)`` so a page is a bisect plus a slice,
whatever the queue's size. Not thread-safe: the Emulator's lock guards it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import uuid

from ._jobs import JobRecord

__all__ = ["QueueRecord", "decode_cursor", "encode_cursor"]

CONNECTED_WITHIN_SECONDS = 30.0
"""A queue polled within this many seconds shows as connected."""


def _key(job: JobRecord) -> tuple[float, str]:
    return (job.scheduled_at, job.id)


def encode_cursor(job: JobRecord) -> str:
    """An opaque cursor pointing just after ``job``."""
    raw = f"{job.scheduled_at!r}|{job.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str] | None:
    """The position a cursor points after, or ``None`` when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        when, job_id = raw.split("|", 1)
        return (float(when), job_id)
    except (ValueError, UnicodeError, binascii.Error):
        return None


class QueueRecord:
    """A queue: id, paused flag, last poll time, and the ordered scheduled jobs."""

    __slots__ = ("id", "key", "last_polled", "paused", "scheduled")

    def __init__(self, key: str, *, queue_id: str | None = None) -> None:
        self.key = key
        self.id = queue_id or str(uuid.uuid4())
        self.paused = False
        self.last_polled: float | None = None
        self.scheduled: list[JobRecord] = []

    def add(self, job: JobRecord) -> None:
        """Put a scheduled job in order (appending is the common case and O(1))."""
        jobs = self.scheduled
        if not jobs or _key(jobs[-1]) < _key(job):
            jobs.append(job)
        else:
            bisect.insort(jobs, job, key=_key)

    def discard(self, job: JobRecord) -> None:
        """Take a job out of the listable set, if it is there."""
        jobs = self.scheduled
        i = bisect.bisect_left(jobs, _key(job), key=_key)
        if i < len(jobs) and jobs[i] is job:
            del jobs[i]

    def page(self, after: tuple[float, str] | None, limit: int) -> tuple[list[JobRecord], bool]:
        """Up to ``limit`` jobs after the cursor position, and whether more follow."""
        jobs = self.scheduled
        start = 0 if after is None else bisect.bisect_right(jobs, after, key=_key)
        chunk = jobs[start : start + limit]
        return chunk, start + limit < len(jobs)

    def connected(self, now: float) -> bool:
        return self.last_polled is not None and now - self.last_polled <= CONNECTED_WITHIN_SECONDS
