"""Prometheus metrics of the runtime. Optional: without ``prometheus-client`` they are no-ops.

Install the ``metrics`` extra and set ``metrics_port`` to serve them on ``/metrics`` (with the
probes, by :class:`~stacksapi.stack._status.StatusServer`). Each
:class:`StackMetrics` has its own registry, so several stacks (or tests) in one process do not
collide. Plain counters are also kept in :attr:`StackMetrics.counts` for summaries and tests.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

__all__ = ["StackMetrics"]

_log = logging.getLogger("stacksapi.stack")

_COUNTERS = {
    "jobs_seen": "Scheduled jobs seen in polls",
    "jobs_filtered": "Jobs skipped because the stack's tags do not match their agent query rules",
    "jobs_reserved": "Jobs reserved",
    "jobs_not_reserved": "Jobs asked for but not reserved",
    "jobs_dispatched": "Jobs handed to the dispatcher",
    "dispatch_failures": "Dispatches that failed",
    "jobs_finished_by_stack": "Jobs the stack finished itself (failures before an agent took them)",
    "jobs_cancelled": "Jobs cancelled while in flight",
    "reservations_renewed": "Reservation renewals",
    "finish_retries": "Finishes tried again after a passing failure",
    "dispatches_deferred": "Dispatches the dispatcher deferred (job released unfailed)",
    "jobs_adopted": "Jobs whose work was found alive at start and adopted",
    "tokens_refreshed": "Fresh acquisition tokens issued for work still provisioning",
    "jobs_redispatched": "Jobs torn down and dispatched again for a fresh token",
    "provisioning_timeouts": "Jobs whose agent did not start within provisioning_timeout",
    "stack_reregistered": "Registrations again after the server forgot the stack (404)",
    "acquire_races_lost": "Agents that lost the acquire race to another agent (a shared key)",
    "shared_key_detected": "Signs that another process uses this stack key",
    "acquires_refused": "Agents refused a job this key still held (its tokens had stopped working)",
    "breaker_trips": "Times the breaker opened on the same failure across consecutive jobs",
    "jobs_handed_back": "Jobs let go unfailed, back to the queue (breaker open)",
}


class StackMetrics:
    """Counters, gauges and histograms of one stack; a no-op when prometheus-client is absent."""

    def __init__(self, *, stack_key: str, enabled: bool = True) -> None:
        self.counts: Counter[str] = Counter()
        self.api_calls: Counter[tuple[str, str]] = Counter()
        self._stack_key = stack_key
        self.breaker_open = False
        self._prom: dict[str, Any] = {}
        self.port: int | None = None  # set by the status server once it listens
        self.registry: Any = None
        if not enabled:
            return
        try:
            import prometheus_client as prom
        except ImportError:
            _log.info("prometheus-client is not installed; metrics are not exported")
            return
        self.registry = prom.CollectorRegistry(auto_describe=True)
        labels = ["stack"]
        for name, doc in _COUNTERS.items():
            self._prom[name] = prom.Counter(
                f"stacksapi_{name}", doc, labels, registry=self.registry
            )
        self._prom["in_flight"] = prom.Gauge(
            "stacksapi_jobs_in_flight", "Jobs in flight", labels, registry=self.registry
        )
        self._prom["breaker_open"] = prom.Gauge(
            "stacksapi_breaker_open", "1 while the breaker is open (no jobs taken)", labels,
            registry=self.registry,
        )  # fmt: skip
        self._prom["job_records"] = prom.Gauge(
            "stacksapi_job_records", "Jobs remembered after they were let go, by record",
            [*labels, "record"], registry=self.registry,
        )  # fmt: skip
        self._prom["api_calls"] = prom.Counter(
            "stacksapi_api_calls",
            "Stacks API calls by endpoint and status",
            [*labels, "endpoint", "status"],
            registry=self.registry,
        )
        self._prom["poll_seconds"] = prom.Histogram(
            "stacksapi_poll_duration_seconds", "Time of one poll", labels, registry=self.registry
        )
        self._prom["dispatch_wait"] = prom.Histogram(
            "stacksapi_scheduled_to_dispatch_seconds",
            "Time from a job's scheduled_at to its dispatch",
            labels,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900),
            registry=self.registry,
        )

    def exposition(self) -> tuple[bytes, str] | None:
        """The text exposition of this stack's metrics and its content type (``/metrics``).

        ``None`` when prometheus-client is not installed or metrics are disabled."""
        if self.registry is None:
            return None
        import prometheus_client as prom

        return prom.generate_latest(self.registry), prom.CONTENT_TYPE_LATEST

    def inc(self, name: str, amount: int = 1) -> None:
        if amount <= 0:
            return
        self.counts[name] += amount
        metric = self._prom.get(name)
        if metric is not None:
            metric.labels(self._stack_key).inc(amount)

    def api_call(self, endpoint: str, status: str) -> None:
        self.api_calls[(endpoint, status)] += 1
        metric = self._prom.get("api_calls")
        if metric is not None:
            metric.labels(self._stack_key, endpoint, status).inc()

    def set_in_flight(self, value: int) -> None:
        metric = self._prom.get("in_flight")
        if metric is not None:
            metric.labels(self._stack_key).set(value)

    def set_breaker_open(self, is_open: bool) -> None:
        self.breaker_open = is_open
        metric = self._prom.get("breaker_open")
        if metric is not None:
            metric.labels(self._stack_key).set(1 if is_open else 0)

    def set_job_records(self, record: str, count: int) -> None:
        metric = self._prom.get("job_records")
        if metric is not None:
            metric.labels(self._stack_key, record).set(count)

    def observe_poll(self, seconds: float) -> None:
        metric = self._prom.get("poll_seconds")
        if metric is not None:
            metric.labels(self._stack_key).observe(seconds)

    def observe_dispatch_wait(self, seconds: float) -> None:
        metric = self._prom.get("dispatch_wait")
        if metric is not None:
            metric.labels(self._stack_key).observe(max(0.0, seconds))
