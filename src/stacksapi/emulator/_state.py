"""The Emulator: all state of one emulated Buildkite cluster, and the Python methods that drive it.

Buildkite's side (creating jobs, cancelling, pausing queues, inspecting history) is plain methods
here; the Stacks API side lives in ``_api.py`` and the agent side in ``_agentapi.py``, and both
run on this state under its one lock. The lock is re-entrant and guards everything: the uvicorn
thread and test threads mutate the same object.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import hmac
import random
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from stacksapi._models import DEFAULT_QUEUE_KEY, Stack

from ._clock import Clock, SystemClock, to_datetime
from ._jobs import FinishRecord, JobInfo, JobRecord, JobSpec
from ._queues import QueueRecord
from ._ratelimit import RateDecision, RateLimiter
from ._reply import EmulatorError

__all__ = ["Emulator", "QueueInfo", "StackRecord"]

TERMINAL = frozenset(
    {"finished", "canceled", "expired", "timed_out", "skipped", "broken", "waiting_failed"}
)
CANCEL_NOW = frozenset({"scheduled", "reserved", "assigned"})
CANCEL_LATER = frozenset({"accepted", "running"})


class QueueInfo(msgspec.Struct, kw_only=True, frozen=True):
    """A queue as the admin API shows it."""

    key: str
    id: str
    paused: bool
    connected: bool
    last_polled_at: _dt.datetime | None
    scheduled_jobs: int


class StackRecord:
    """A registered (active) stack."""

    __slots__ = ("id", "key", "last_seen", "metadata", "queue_key", "reserved", "type")

    def __init__(self, key: str, type_: str, queue_key: str, metadata: dict[str, str]) -> None:
        self.id = str(uuid.uuid4())
        self.key = key
        self.type = type_
        self.queue_key = queue_key
        self.metadata = metadata
        self.last_seen = 0.0
        self.reserved: set[str] = set()


class Emulator:
    """One emulated cluster: queues, jobs, stacks, tokens, rate-limit windows and counters.

    ``tokens``: accepted cluster tokens (one random ``bkct_`` token when none: see ``token``).
    ``admin_token``: protects the ``/_emulator/`` admin API (random when none).
    ``rate_limits``: ``True`` for the documented limits, a ``{scope: per_second}`` dict to change
    some, ``False`` to switch them off. ``max_active_stacks``: registering one more gives 403.
    ``seed`` makes job uuids reproducible. ``queues``: queues that exist from the start besides
    ``default_queue`` (creating a job in a new queue creates it too).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        tokens: Iterable[str] | None = None,
        admin_token: str | None = None,
        rate_limits: bool | Mapping[str, int] = True,
        max_active_stacks: int = 50,
        seed: int | None = None,
        default_queue: str = DEFAULT_QUEUE_KEY,
        queues: Iterable[str] = (),
        reservation_expiry_seconds: int = 900,
        organization_slug: str = "emulated-org",
        cluster_name: str = "emulated-cluster",
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        if isinstance(tokens, str):
            tokens = (tokens,)  # one token, not its characters
        self.tokens: tuple[str, ...] = tuple(tokens or ()) or ("bkct_" + secrets.token_hex(20),)
        if any(not t for t in self.tokens):
            raise ValueError("tokens: a token must not be empty")
        self.admin_token: str = admin_token or "bkemu_" + secrets.token_hex(16)
        self.rate_limits_enabled = rate_limits is not False
        self._limits: dict[str, int] = dict(rate_limits) if isinstance(rate_limits, Mapping) else {}
        if max_active_stacks < 1:
            raise ValueError("max_active_stacks: must be >= 1")
        self.max_active_stacks = max_active_stacks
        self.seed = seed
        self.default_queue = default_queue
        self._initial_queues = (default_queue, *queues)
        self.reservation_expiry_seconds = reservation_expiry_seconds
        self.organization_slug = organization_slug
        self.organization_uuid = str(uuid.uuid4())
        self.cluster_name = cluster_name
        self.cluster_uuid = str(uuid.uuid4())
        self._token_ids = {t: str(uuid.uuid4()) for t in self.tokens}
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._clear()

    # --- setup -------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._rng = random.Random(self.seed)
        self.jobs: dict[str, JobRecord] = {}
        self.queues: dict[str, QueueRecord] = {}
        self.stacks: dict[str, StackRecord] = {}
        self.limiter = RateLimiter(self._limits)
        self.counts: dict[str, dict[int, int]] = {}
        self.job_tokens: dict[str, tuple[str, float, int, int]] = {}
        self.access_tokens: dict[str, str] = {}
        self.reservation_heap: list[tuple[float, str, int]] = []
        self._expiry_heap: list[tuple[float, str]] = []
        self._last_scheduled = 0.0
        self._rules: dict[str, tuple[str, ...]] = {}
        for key in self._initial_queues:
            self._queue(key)

    def reset(self) -> None:
        """Forget every job, stack, reservation, token, counter and rate window.

        Tokens, clock and configuration stay; queues go back to the configured ones, unpaused.
        """
        with self.lock:
            self._clear()

    def __repr__(self) -> str:
        return (
            f"Emulator(jobs={len(self.jobs)}, queues={len(self.queues)}, "
            f"stacks={len(self.stacks)}, tokens={len(self.tokens)} hidden)"
        )

    @property
    def token(self) -> str:
        """The first cluster token (the default one when none was given)."""
        return self.tokens[0]

    def now(self) -> float:
        return self.clock.now()

    # --- auth, limits, counters (used by the app) ----------------------------------------------

    def is_cluster_token(self, token: str) -> bool:
        """True when ``token`` is one of the configured cluster tokens (constant time)."""
        found = False
        for known in self.tokens:
            found |= hmac.compare_digest(known.encode(), token.encode())
        return found

    def is_admin_token(self, token: str) -> bool:
        return hmac.compare_digest(self.admin_token.encode(), token.encode())

    def token_info_id(self, token: str) -> str:
        return self._token_ids.get(token, "")

    def rate(self, stack_key: str, scope: str, *, count: bool = True) -> RateDecision | None:
        """Count a request in its window (``None`` when rate limits are off)."""
        if not self.rate_limits_enabled:
            return None
        with self.lock:
            now = self.clock.now()
            if count:
                return self.limiter.hit(stack_key, scope, now)
            return self.limiter.peek(stack_key, scope, now)

    def record_response(self, endpoint: str, status: int) -> None:
        """Count one response for ``endpoint`` (fault injection calls this for what it answers)."""
        with self.lock:
            per = self.counts.setdefault(endpoint, {})
            per[status] = per.get(status, 0) + 1
            self._changed.notify_all()  # a request may have moved a job: wake wait_for_state

    def counters(self) -> dict[str, dict[int, int]]:
        """Responses so far: ``{endpoint name: {status: count}}`` (429s included)."""
        with self.lock:
            return {name: dict(per) for name, per in self.counts.items()}

    # --- time passing ---------------------------------------------------------------------------

    def tick(self) -> float:
        """Apply what time made happen (expired reservations and jobs); return now."""
        now = self.clock.now()
        with self.lock:
            heap = self.reservation_heap
            while heap and heap[0][0] <= now:
                _, job_id, seq = heapq.heappop(heap)
                job = self.jobs.get(job_id)
                if (
                    job is not None
                    and job.state == "reserved"
                    and job.reservation_seq == seq
                    and job.reserved_until <= now
                ):
                    self.end_reservation(job, job.reserved_until, "expired")
                    job.move("scheduled", job.reserved_until, "reservation expiry")
                    self.queues[job.queue].add(job)
            expiring = self._expiry_heap
            while expiring and expiring[0][0] <= now:
                when, job_id = heapq.heappop(expiring)
                job = self.jobs.get(job_id)
                if job is not None and job.state in ("scheduled", "reserved"):
                    self.unlist(job, when, "expired")
                    job.move("expired", when, "expiry")
            if len(self.job_tokens) > 4 * len(self.jobs) + 10_000:
                self.job_tokens = {k: v for k, v in self.job_tokens.items() if v[1] > now}
        return now

    # --- shared job moves -------------------------------------------------------------------------

    def end_reservation(self, job: JobRecord, now: float, reason: str) -> None:
        """Close the job's current reservation (its tokens stop working)."""
        if job.reserved_by is None:
            return
        stack = self.stacks.get(job.reserved_by)
        if stack is not None:
            stack.reserved.discard(job.id)
        history = job.hist()
        if history.reservations and history.reservations[-1].ended_at is None:
            history.reservations[-1].ended_at = to_datetime(now)
            history.reservations[-1].end_reason = reason
        job.reserved_by = None
        job.reservation_seq += 1

    def unlist(self, job: JobRecord, now: float, reason: str) -> None:
        """Take a job off its queue's list (when it is on it) and end any reservation."""
        if job.state == "scheduled":
            self.queues[job.queue].discard(job)
        self.end_reservation(job, now, reason)

    def _queue(self, key: str) -> QueueRecord:
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = QueueRecord(key, queue_id=self._uuid())
        return queue

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # --- driving: jobs ---------------------------------------------------------------------------

    def create_job(self, spec: JobSpec | None = None, **fields: Any) -> str:
        """Schedule one job and return its uuid. ``fields`` are :class:`JobSpec` fields."""
        return self.create_jobs([_spec(spec, fields)])[0]

    def create_jobs(
        self, specs: Iterable[JobSpec] | int, spec: JobSpec | None = None, **fields: Any
    ) -> list[str]:
        """Schedule many jobs at once: a list of specs, or a count of copies of one spec.

        Jobs without ``scheduled_at`` list in creation order.
        """
        if isinstance(specs, int):
            if specs < 0:
                raise EmulatorError(422, "count: must be >= 0")
            one = _spec(spec, fields)
            specs = (one for _ in range(specs))
        ids: list[str] = []
        with self.lock:
            now = self.tick()
            for item in specs:
                ids.append(self._add(item, now))
            self._changed.notify_all()
        return ids

    def _add(self, spec: JobSpec, now: float) -> str:
        queue_key = spec.queue or self.default_queue
        if spec.expire_after is not None and spec.expire_after <= 0:
            raise EmulatorError(422, "expire_after: must be > 0 seconds")
        if spec.id is not None:
            try:
                job_id = str(uuid.UUID(spec.id))
            except ValueError:
                raise EmulatorError(422, "id: must be a uuid") from None
            if job_id in self.jobs:
                raise EmulatorError(422, f"id: job {job_id} already exists")
        else:
            job_id = self._uuid()
        queue = self._queue(queue_key)
        rules = spec.agent_query_rules
        if rules is None:
            rules = self._rules.get(queue_key) or self._rules.setdefault(
                queue_key, (f"queue={queue_key}",)
            )
        if spec.scheduled_at is None:
            at = max(now, self._last_scheduled + 1e-6)
            self._last_scheduled = at
            job = JobRecord(spec, job_id=job_id, queue=queue_key, now=at, rules=tuple(rules))
            job.created_at = now
        else:
            job = JobRecord(spec, job_id=job_id, queue=queue_key, now=now, rules=tuple(rules))
        _check_times(job)
        self.jobs[job_id] = job
        queue.add(job)
        if job.expires_at is not None:
            heapq.heappush(self._expiry_heap, (job.expires_at, job_id))
        return job_id

    def _job(self, job_id: str) -> JobRecord:
        job = self.jobs.get(job_id)
        if job is None:
            raise EmulatorError(404, f"job {job_id!r} not found")
        return job

    def cancel_job(self, job_id: str) -> str:
        """Cancel a job as a user would in Buildkite; returns its new state.

        Not yet taken by an agent (scheduled, reserved, assigned): ``canceled`` at once. Owned by
        an agent (accepted, running): ``canceling`` until the agent finishes it.
        """
        with self.lock:
            now = self.tick()
            job = self._job(job_id)
            if job.state in CANCEL_NOW:
                self.unlist(job, now, "canceled")
                job.move("canceled", now, "cancel")
                job.hist().finish = FinishRecord(by="cancel", at=to_datetime(now), exit_status=None)
            elif job.state in CANCEL_LATER:
                job.move("canceling", now, "cancel")
            elif job.state != "canceling":
                raise EmulatorError(422, f"job {job_id} is {job.state}: it cannot be canceled")
            self._changed.notify_all()
            return job.state

    def set_job_state(self, job_id: str, state: str) -> str:
        """Force a job into any state (``waiting``, ``timed_out``, ``broken``, ...): an escape hatch
        for testing how a stack copes with states the normal flow does not produce here.

        Leaving ``scheduled``/``reserved`` takes the job off its queue and ends its reservation;
        ``scheduled`` puts it back on.
        """
        if not state:
            raise EmulatorError(422, "state: must not be empty")
        with self.lock:
            now = self.tick()
            job = self._job(job_id)
            if job.state in ("scheduled", "reserved") and state != job.state:
                self.unlist(job, now, f"set to {state}")
            was = job.state
            job.move(state, now, "admin")
            if state == "scheduled" and was != "scheduled":
                self.queues[job.queue].add(job)
            self._changed.notify_all()
            return job.state

    def job(self, job_id: str) -> JobInfo:
        """One job with its full history."""
        with self.lock:
            self.tick()
            return self._job(job_id).info()

    def job_state(self, job_id: str) -> str:
        with self.lock:
            self.tick()
            return self._job(job_id).state

    def wait_for_state(self, job_id: str, *states: str, timeout: float = 10.0) -> str:
        """Block until the job is in one of ``states`` and return it; ``TimeoutError`` otherwise.

        Woken by every request the app answers and every driving call, so it does not poll
        (except every 50 ms for changes that only the clock makes). ``timeout`` is wall time.
        From async code, run it in a thread (``anyio.to_thread.run_sync``).
        """
        if not states:
            raise ValueError("states: name at least one state to wait for")
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                state = self.job_state(job_id)
                if state in states:
                    return state
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"job {job_id} is {state}, not {' or '.join(states)}, after {timeout} s"
                    )
                self._changed.wait(min(left, 0.05))

    def list_jobs(
        self, *, queue: str | None = None, state: str | None = None, limit: int | None = None
    ) -> list[JobInfo]:
        """Jobs (optionally of one queue and/or state) with their full history, oldest first."""
        with self.lock:
            self.tick()
            out: list[JobInfo] = []
            for job in self.jobs.values():
                if (queue is None or job.queue == queue) and (state is None or job.state == state):
                    out.append(job.info())
                    if limit is not None and len(out) >= limit:
                        break
            return out

    # --- driving: queues and stacks -------------------------------------------------------------

    def create_queue(self, key: str) -> QueueInfo:
        """Make a queue exist (no-op when it does)."""
        if not key:
            raise EmulatorError(422, "key: a queue key must not be empty")
        with self.lock:
            self._queue(key)
            return self.queue(key)

    def _existing_queue(self, key: str) -> QueueRecord:
        queue = self.queues.get(key)
        if queue is None:
            raise EmulatorError(404, f"queue {key!r} not found")
        return queue

    def pause_queue(self, key: str) -> QueueInfo:
        """Pause dispatch: listings say ``dispatch_paused``/``paused`` true; reserve refuses."""
        with self.lock:
            self._existing_queue(key).paused = True
            return self.queue(key)

    def resume_queue(self, key: str) -> QueueInfo:
        with self.lock:
            self._existing_queue(key).paused = False
            return self.queue(key)

    def queue(self, key: str) -> QueueInfo:
        """A queue's state; ``connected`` means a stack listed it within the last 30 s."""
        with self.lock:
            now = self.tick()
            q = self._existing_queue(key)
            polled = None if q.last_polled is None else to_datetime(q.last_polled)
            return QueueInfo(
                key=q.key,
                id=q.id,
                paused=q.paused,
                connected=q.connected(now),
                last_polled_at=polled,
                scheduled_jobs=len(q.scheduled),
            )

    def list_queues(self) -> list[QueueInfo]:
        with self.lock:
            return [self.queue(key) for key in self.queues]

    def stack_view(self, stack: StackRecord) -> Stack:
        """A stack as the API shows it; connected when seen within the last 30 s."""
        seen = stack.last_seen
        connected = seen > 0 and self.clock.now() - seen <= 30.0
        return Stack(
            id=stack.id,
            organization_uuid=self.organization_uuid,
            key=stack.key,
            type=stack.type,
            cluster_queue_key=stack.queue_key,
            metadata=dict(stack.metadata),
            last_connected_on=to_datetime(seen) if seen else None,
            state="connected" if connected else "disconnected",
        )

    def list_stacks(self) -> list[Stack]:
        """Registered (not deregistered) stacks."""
        with self.lock:
            return [self.stack_view(s) for s in self.stacks.values()]


def _check_times(job: JobRecord) -> None:
    """Refuse a job whose times cannot be written as wire datetimes: it would break every later
    listing of its queue (and the admin views) with a 500."""
    for field, epoch in (
        ("scheduled_at", job.scheduled_at),
        ("runnable_at", job.runnable_at),
        ("expire_after", job.expires_at),
    ):
        if epoch is None:
            continue
        try:
            to_datetime(epoch)
        except (OverflowError, ValueError, OSError):
            raise EmulatorError(
                422, f"{field}: out of range (times must fall within years 1..9999 UTC)"
            ) from None


def _spec(spec: JobSpec | None, fields: Mapping[str, Any]) -> JobSpec:
    if spec is None:
        return JobSpec(**fields)
    return msgspec.structs.replace(spec, **fields) if fields else spec
