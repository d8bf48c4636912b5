"""``KubeMetrics``: the Kubernetes side of the stack's Prometheus metrics.

Registered in the stack's own registry (:attr:`stacksapi.stack.Stack.metrics`), so one
``/metrics`` endpoint serves the runtime's and the dispatcher's figures together. Without
``prometheus-client`` (or without a registry) only the plain counters below are kept, for
summaries and tests. Names:

- ``stacksapi_kubernetes_api_calls_total{stack,verb,resource}``: requests sent (each retry counts);
- ``stacksapi_kubernetes_api_errors_total{stack,verb,resource,code}``: those that failed;
- ``stacksapi_kubernetes_watch_restarts_total{stack,resource,reason}``: watches started again
  (``expired``: 410 Gone, a full list follows; ``error``; ``closed``: the server ended it);
- ``stacksapi_kubernetes_pods_pending{stack,reason}``: this stack's pods not yet running, by why;
- ``stacksapi_kubernetes_reservation_to_pod_running_seconds{stack}``: from the dispatch of a
  reserved job to its pod running.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

__all__ = ["KubeMetrics"]

_log = logging.getLogger("stacksapi.kubernetes")
_P = "stacksapi_kubernetes"


class KubeMetrics:
    """Counters of one dispatcher; exported when given a prometheus-client registry."""

    def __init__(self, *, stack_key: str, registry: Any = None) -> None:
        self.stack_key = stack_key
        self.calls: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[tuple[str, str, str]] = Counter()
        self.watch_restarts: Counter[tuple[str, str]] = Counter()
        self.pending: dict[str, int] = {}
        self.running_after: list[float] = []  # the last few observations (tests, summaries)
        self._prom: dict[str, Any] = {}
        if registry is not None:
            self._register(registry)

    def _register(self, registry: Any) -> None:
        try:
            import prometheus_client as prom
        except ImportError:  # pragma: no cover - a registry implies the library
            return
        s = ["stack"]
        try:
            self._prom = {
                "calls": prom.Counter(f"{_P}_api_calls", "Kubernetes API requests sent",
                                      [*s, "verb", "resource"], registry=registry),
                "errors": prom.Counter(f"{_P}_api_errors", "Kubernetes API requests that failed",
                                       [*s, "verb", "resource", "code"], registry=registry),
                "restarts": prom.Counter(f"{_P}_watch_restarts", "Watches started again",
                                         [*s, "resource", "reason"], registry=registry),
                "pending": prom.Gauge(f"{_P}_pods_pending", "Pods of this stack not yet running",
                                      [*s, "reason"], registry=registry),
                "running": prom.Histogram(
                    f"{_P}_reservation_to_pod_running_seconds",
                    "Time from the dispatch of a reserved job to its pod running", s,
                    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
                    registry=registry),
            }  # fmt: skip
        except ValueError as exc:  # already registered (a second dispatcher on one stack)
            _log.warning("Kubernetes metrics not exported: %s", exc)
            self._prom = {}

    def api_call(self, verb: str, resource: str, error: str | None = None) -> None:
        """One request sent; ``error`` is its HTTP status (or error kind) when it failed."""
        self.calls[(verb, resource)] += 1
        if (m := self._prom.get("calls")) is not None:
            m.labels(self.stack_key, verb, resource).inc()
        if error is None:
            return
        self.errors[(verb, resource, error)] += 1
        if (m := self._prom.get("errors")) is not None:
            m.labels(self.stack_key, verb, resource, error).inc()

    def watch_restart(self, resource: str, reason: str) -> None:
        self.watch_restarts[(resource, reason)] += 1
        if (m := self._prom.get("restarts")) is not None:
            m.labels(self.stack_key, resource, reason).inc()

    def set_pending(self, by_reason: Mapping[str, int]) -> None:
        """The current count of pending pods per reason (reasons gone since are set to 0)."""
        current = {**dict.fromkeys(self.pending, 0), **by_reason}
        self.pending = {k: v for k, v in current.items() if v}
        if (m := self._prom.get("pending")) is not None:
            for reason, count in current.items():
                m.labels(self.stack_key, reason).set(count)

    def pod_running(self, seconds: float) -> None:
        self.running_after = [*self.running_after[-99:], seconds]
        if (m := self._prom.get("running")) is not None:
            m.labels(self.stack_key).observe(max(0.0, seconds))
