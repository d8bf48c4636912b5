"""The Emulator: one emulated Buildkite cluster and the Python methods that drive it.

Buildkite's side (creating jobs, cancelling, pausing queues, inspecting history) is plain methods
here, over the state and shared moves of :class:`~._cluster.Cluster`; the Stacks API side lives in
``_api.py`` and the agent side in ``_agentapi.py``. Every method takes the one re-entrant lock.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from stacksapi._models import Stack

from ._clock import to_datetime
from ._cluster import Cluster
from ._jobs import FinishRecord, JobInfo, JobRecord, JobSpec
from ._queues import QueueRecord
from ._reply import EmulatorError

__all__ = ["Emulator", "QueueInfo"]

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


class Emulator(Cluster):
    """One emulated cluster: queues, jobs, stacks, tokens, rate-limit windows and counters.

    ``tokens``: accepted cluster tokens (one random ``bkct_`` token when none: see ``token``).
    ``admin_token``: protects the ``/_emulator/`` admin API (random when none).
    ``rate_limits``: ``True`` for the documented limits, a ``{scope: per_second}`` dict to change
    some, ``False`` to switch them off. ``max_active_stacks``: registering one more gives 403.
    ``seed`` makes job uuids reproducible. ``queues``: queues that exist from the start besides
    ``default_queue`` (creating a job in a new queue creates it too).
    """

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
        """A job's current state (404 ``EmulatorError`` for an unknown job)."""
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
        if limit is not None and limit < 1:
            raise EmulatorError(422, f"limit: must be >= 1 (got {limit})")
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
        """Resume dispatch: listings say not paused; reserve works again."""
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
        """Every queue, in creation order."""
        with self.lock:
            return [self.queue(key) for key in self.queues]

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
