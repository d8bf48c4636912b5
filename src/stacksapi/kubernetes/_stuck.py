"""``StuckPods``: acts on pods that will not run their agent (the verdict is :mod:`._podcheck`'s).

For each Job in flight it asks :func:`~._podcheck.pod_problem` whether its pod is stuck (an image
that cannot be pulled past ``image_pull_grace``, a failed init container, pending past
``pending_timeout``, or no pod at all). Before an agent took the job, the Job is deleted and the
work reported failed, quoting the pod's events (the stack then finishes the job with
``stack_error`` and them as the detail). After, a notification is posted instead, once per kind
of problem: the agent owns the job. It is handed the API and the dispatcher's actions; it owns
no table of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from stacksapi.stack import AgentExit, DispatchSink, ProvisioningSink

from ._config import KubernetesConfig
from ._kube import KubeAPI, error_reason
from ._podcheck import PodProblem, describe_events, pod_problem
from ._table import Tracked

__all__ = ["StuckPods"]

_log = logging.getLogger("stacksapi.kubernetes")


class StuckPods:
    """:meth:`check` one tracked Job; it acts in the background through ``spawn``."""

    def __init__(
        self,
        config: KubernetesConfig,
        api: KubeAPI,
        sink: DispatchSink,
        *,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        delete: Callable[[str], Coroutine[Any, Any, None]],
        report: Callable[[str, AgentExit], None],
    ) -> None:
        self._cfg, self._api, self._sink = config, api, sink
        self._spawn, self._delete, self._report = spawn, delete, report

    def check(self, tracked: Tracked) -> None:
        """Act on ``tracked``'s pod if it is stuck (and not already being handled)."""
        if tracked.handling or tracked.creating or tracked.cancel_reason is not None:
            return
        now = time.monotonic()
        cfg = self._cfg
        if tracked.pod is None:
            since = tracked.first_seen.setdefault("no-pod", now)
            if now - since < cfg.pending_timeout:
                return
            problem = PodProblem("pending", f"has no pod after {now - since:.0f}s")
            about = tracked.name
        else:
            tracked.first_seen.pop("no-pod", None)
            found = pod_problem(
                tracked.pod,
                tracked.first_seen,
                now,
                image_pull_grace=cfg.image_pull_grace,
                pending_timeout=cfg.pending_timeout,
            )
            if found is None:
                return
            problem = found
            about = str(tracked.pod.metadata.name if tracked.pod.metadata else tracked.name)
        if problem.kind in tracked.noted:
            return
        tracked.handling = True
        self._spawn(self._act(tracked, problem, about))

    async def _act(self, tracked: Tracked, problem: PodProblem, about: str) -> None:
        """Fail the work (agent not started) or notify (agent started), quoting the events."""
        uuid, kind = tracked.uuid, "pod" if about != tracked.name else "Job"
        try:
            events = describe_events(await self._api.pod_events(about), self._cfg.events_quoted)
        except Exception as exc:
            events = f"(events unavailable: {error_reason(exc)})"
        headline = f"Kubernetes {kind} {self._api.namespace}/{about} {problem.summary}"
        sink = self._sink
        if isinstance(sink, ProvisioningSink) and sink.job_started(uuid):
            tracked.noted.add(problem.kind)
            tracked.handling = False
            last = events.splitlines()[-1] if events else ""
            sink.notify(uuid, f"{headline}. {last}".strip())
            return
        _log.warning("job %s: %s; deleting the Job", uuid, headline)
        output = f"Kubernetes events:\n{events}" if events else ""
        tracked.failure = AgentExit(uuid, None, output, headline)  # what the deletion reports
        await self._delete(tracked.name)
        self._report(uuid, tracked.failure)
