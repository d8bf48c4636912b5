"""What the dashboard shows, read straight from the emulator's own state under its lock.

No second copy of anything: each call walks the live records (queues, jobs, stacks, rate-limit
windows) and returns small frozen views. The cost is one pass over the jobs for the counts and
one bounded page of rows, so a snapshot stays cheap with 10,000 jobs and more.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlencode

from stacksapi._endpoints import ENDPOINTS
from stacksapi.emulator._jobs import JobRecord
from stacksapi.emulator._queues import CONNECTED_WITHIN_SECONDS
from stacksapi.emulator._state import CANCEL_LATER, CANCEL_NOW, Emulator

__all__ = [
    "PAGE_SIZE",
    "STATE_ORDER",
    "Budget",
    "JobFilter",
    "JobRow",
    "JobsPage",
    "QueueView",
    "Snapshot",
    "StackView",
    "take_snapshot",
]

PAGE_SIZE = 50
STATE_ORDER = (
    "scheduled",
    "reserved",
    "accepted",
    "running",
    "canceling",
    "finished",
    "canceled",
    "expired",
)
SCOPES = tuple(dict.fromkeys(e.scope for e in ENDPOINTS.values()))
CANCELLABLE = CANCEL_NOW | CANCEL_LATER


@dataclass(frozen=True, slots=True)
class JobFilter:
    """The jobs table's filters (empty: any) and page (1-based)."""

    state: str = ""
    pipeline: str = ""
    stack: str = ""
    queue: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, query: dict[str, str]) -> JobFilter:
        """From query parameters; nonsense (a page of ``abc``) falls back to the default."""
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1

        def text(name: str) -> str:
            return query.get(name, "").strip()[:200]

        return cls(text("state"), text("pipeline"), text("stack"), text("queue"), page)

    def matches(self, job: JobRecord) -> bool:
        """Whether ``job`` passes every filter that is set."""
        return (
            (not self.state or job.state == self.state)
            and (not self.queue or job.queue == self.queue)
            and (not self.pipeline or job.pipeline.slug == self.pipeline)
            and (not self.stack or stack_of(job) == self.stack)
        )

    def query(self, page: int) -> str:
        """The query string of this filter at another page."""
        fields = {"state": self.state, "pipeline": self.pipeline, "stack": self.stack}
        fields |= {"queue": self.queue, "page": str(page)}
        return urlencode({k: v for k, v in fields.items() if v})

    @property
    def active(self) -> bool:
        """Whether any filter is set (the page then says "matching, of N")."""
        return bool(self.state or self.pipeline or self.stack or self.queue)


@dataclass(frozen=True, slots=True)
class Budget:
    """One scope's rate-limit window for one stack: requests in the last second, of ``limit``."""

    scope: str
    used: int
    limit: int

    @property
    def percent_left(self) -> int:
        """What is left of the window, 0..100 (the meter's value)."""
        return max(0, round(100 * (self.limit - self.used) / self.limit))


@dataclass(frozen=True, slots=True)
class QueueView:
    """A queue's card: jobs by state (in ``STATE_ORDER``), and each polling stack's budgets."""

    key: str
    paused: bool
    connected: bool
    last_polled: float | None
    counts: tuple[tuple[str, int], ...]
    total: int
    stacks: tuple[tuple[str, tuple[Budget, ...]], ...]


@dataclass(frozen=True, slots=True)
class StackView:
    """A row of the stacks table; ``held`` is jobs reserved now, ``limited`` its 429s."""

    key: str
    type: str
    queue: str
    state: str
    last_seen: float | None
    held: int
    calls: int
    limited: int


@dataclass(frozen=True, slots=True)
class JobRow:
    """A row of the jobs table, copied out under the lock (no live record leaves it)."""

    id: str
    queue: str
    state: str
    priority: int
    pipeline: str
    build: str
    step: str
    stack: str | None
    scheduled_at: float
    updated_at: _dt.datetime | None
    exit_status: int | None
    cancellable: bool


@dataclass(frozen=True, slots=True)
class JobsPage:
    """One page of the filtered jobs, newest first, and how many match in all."""

    rows: tuple[JobRow, ...]
    matching: int
    page: int
    pages: int
    filter: JobFilter


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one render of the dashboard shows, taken in one pass under the lock."""

    now: float
    total_jobs: int
    queues: tuple[QueueView, ...]
    stacks: tuple[StackView, ...]
    jobs: JobsPage
    pipelines: tuple[str, ...]
    rate_limits: bool


def stack_of(job: JobRecord) -> str | None:
    """The stack that holds or last held the job (reservation, or a stack's finish)."""
    if job.reserved_by:
        return job.reserved_by
    history = job.history
    if history is None:
        return None
    if history.reservations:
        return history.reservations[-1].stack_key
    if history.finish is not None and history.finish.by.startswith("stack "):
        return history.finish.by.removeprefix("stack ")
    return None


def _row(job: JobRecord) -> JobRow:
    history = job.history
    finish = history.finish if history is not None else None
    updated = history.transitions[-1].at if history is not None and history.transitions else None
    build = f"#{job.build.number}" if job.build.number else ""
    if job.build.branch:
        build = f"{build} {job.build.branch}".strip()
    return JobRow(
        id=job.id,
        queue=job.queue,
        state=job.state,
        priority=job.priority,
        pipeline=job.pipeline.slug or "",
        build=build,
        step=job.step.key or "",
        stack=stack_of(job),
        scheduled_at=job.scheduled_at,
        updated_at=updated,
        exit_status=finish.exit_status if finish is not None else None,
        cancellable=job.state in CANCELLABLE,
    )


def _ordered(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    known = [(s, counts[s]) for s in STATE_ORDER if counts[s]]
    other = sorted((s, n) for s, n in counts.items() if s not in STATE_ORDER and n)
    return tuple(known + other)


def _jobs_page(em: Emulator, wanted: JobFilter) -> JobsPage:
    newest_first = reversed(em.jobs.values())
    if wanted.active:
        matching_jobs = [job for job in newest_first if wanted.matches(job)]
        matching = len(matching_jobs)
        pages = max(1, math.ceil(matching / PAGE_SIZE))
        page = min(wanted.page, pages)
        chosen = matching_jobs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    else:
        matching = len(em.jobs)
        pages = max(1, math.ceil(matching / PAGE_SIZE))
        page = min(wanted.page, pages)
        start = (page - 1) * PAGE_SIZE
        chosen = list(itertools.islice(newest_first, start, start + PAGE_SIZE))
    rows = tuple(_row(job) for job in chosen)
    return JobsPage(rows=rows, matching=matching, page=page, pages=pages, filter=wanted)


def take_snapshot(em: Emulator, wanted: JobFilter) -> Snapshot:
    """Everything the main page shows, read under the emulator's lock."""
    with em.lock:
        now = em.tick()
        jobs = em.jobs.values()
        per_queue: dict[str, Counter[str]] = {key: Counter() for key in em.queues}
        for (queue, state), n in Counter([(job.queue, job.state) for job in jobs]).items():
            per_queue.setdefault(queue, Counter())[state] = n
        pipelines = {job.pipeline.slug or "" for job in jobs} - {""}
        usage = em.limiter.usage(now) if em.rate_limits_enabled else {}
        budgets: dict[str, list[tuple[str, tuple[Budget, ...]]]] = {}
        stacks: list[StackView] = []
        for stack in em.stacks.values():
            connected = stack.last_seen > 0 and now - stack.last_seen <= CONNECTED_WITHIN_SECONDS
            calls, limited = em.stack_calls.get(stack.key, (0, 0))
            stacks.append(
                StackView(
                    key=stack.key,
                    type=stack.type,
                    queue=stack.queue_key,
                    state="connected" if connected else "disconnected",
                    last_seen=stack.last_seen or None,
                    held=len(stack.reserved),
                    calls=calls,
                    limited=limited,
                )
            )
            if em.rate_limits_enabled:
                scopes = tuple(
                    Budget(s, *usage.get((stack.key, s), (0, em.limiter.limit_for(s))))
                    for s in SCOPES
                )
                budgets.setdefault(stack.queue_key, []).append((stack.key, scopes))
        for key, (calls, limited) in em.stack_calls.items():
            if key not in em.stacks:
                stacks.append(StackView(key, "", "", "not registered", None, 0, calls, limited))
        queues = tuple(
            QueueView(
                key=q.key,
                paused=q.paused,
                connected=q.connected(now),
                last_polled=q.last_polled,
                counts=_ordered(per_queue[q.key]),
                total=sum(per_queue[q.key].values()),
                stacks=tuple(budgets.get(q.key, ())),
            )
            for q in em.queues.values()
        )
        return Snapshot(
            now=now,
            total_jobs=len(em.jobs),
            queues=queues,
            stacks=tuple(stacks),
            jobs=_jobs_page(em, wanted),
            pipelines=tuple(sorted(pipelines)),
            rate_limits=em.rate_limits_enabled,
        )
