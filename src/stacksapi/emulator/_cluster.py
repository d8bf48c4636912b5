"""The state of one emulated Buildkite cluster: configuration, records, time, limits, counters.

:class:`Cluster` holds everything and the moves every side shares (time passing, ending a
reservation); :class:`~stacksapi.emulator.Emulator` adds the driving methods (Buildkite's side),
``_api.py`` the Stacks API and ``_agentapi.py`` the agent side. One re-entrant lock guards it all:
the uvicorn thread and test threads mutate the same object.
"""

from __future__ import annotations

import heapq
import hmac
import random
import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping

from stacksapi._models import DEFAULT_QUEUE_KEY, Stack

from ._clock import Clock, SystemClock, to_datetime
from ._jobs import JobRecord
from ._queues import QueueRecord
from ._ratelimit import RateDecision, RateLimiter

__all__ = ["TERMINAL", "Cluster", "StackRecord"]

TERMINAL = frozenset(
    {"finished", "canceled", "expired", "timed_out", "skipped", "broken", "waiting_failed"}
)


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


class Cluster:
    """The cluster's state and shared moves; its options are documented on ``Emulator``."""

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
        if isinstance(reservation_expiry_seconds, bool) or not (
            isinstance(reservation_expiry_seconds, int) and 1 <= reservation_expiry_seconds <= 3600
        ):
            # The default a reserve without the field gets: it must be a value the API accepts.
            raise ValueError("reservation_expiry_seconds: must be an int in 1..3600")
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
        self.stack_calls: dict[str, tuple[int, int]] = {}
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
        """The emulator's clock: epoch seconds."""
        return self.clock.now()

    # --- auth, limits, counters (used by the app) ----------------------------------------------

    def is_cluster_token(self, token: str) -> bool:
        """True when ``token`` is one of the configured cluster tokens (constant time)."""
        found = False
        for known in self.tokens:
            found |= hmac.compare_digest(known.encode(), token.encode())
        return found

    def is_admin_token(self, token: str) -> bool:
        """True when ``token`` is the admin API's token (constant time)."""
        return hmac.compare_digest(self.admin_token.encode(), token.encode())

    def token_info_id(self, token: str) -> str:
        """The uuid ``GET token`` reports for a cluster token (empty for others)."""
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
        """Count one response the app gave for ``endpoint`` (injected faults are counted apart, by
        ``FaultConfig.counts()``: they never reach the emulator)."""
        with self.lock:
            per = self.counts.setdefault(endpoint, {})
            per[status] = per.get(status, 0) + 1
            self._changed.notify_all()  # a request may have moved a job: wake wait_for_state

    def count_stack_call(self, stack_key: str, *, limited: bool) -> None:
        """Count one authenticated Stacks API call of a stack key, and whether it got a 429."""
        with self.lock:
            calls, refused = self.stack_calls.get(stack_key, (0, 0))
            self.stack_calls[stack_key] = (calls + 1, refused + limited)

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
