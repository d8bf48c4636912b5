"""The ``Dispatcher`` protocol: how the runtime hands a job to the thing that starts its agent.

A dispatcher turns a reserved job into a running ``buildkite-agent`` (a process, a pod, a VM, a
serverless task). The runtime owns everything about the API (polling, reserving, tokens, renewals,
states, finishing); the dispatcher only starts, stops and watches agents and reports back through
the :class:`DispatchSink` it gets in :meth:`Dispatcher.start`. Writing one is a single file::

    class MyDispatcher:
        async def start(self, sink: DispatchSink) -> Collection[str]:
            self.sink = sink
            return set()  # job uuids already running from before a restart

        async def dispatch(self, request: DispatchRequest) -> None:
            ...  # launch the agent; raise DispatchError with a useful message if you cannot
            # later, when the agent is gone: self.sink.agent_ended(AgentExit(request.job_uuid, 0))

        async def cancel(self, job_uuid: str, reason: str) -> None:
            ...  # tear the work down; then report agent_ended

        async def shutdown(self, grace: float) -> None:
            ...  # release resources; running agents may keep running

Rules: ``dispatch`` returns once the launch is under way (not when the job ends), and is never
called twice for one job by one runtime; every dispatched or adopted job must eventually be
reported with :meth:`DispatchSink.agent_ended`, exactly once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Protocol, runtime_checkable

from stacksapi._models import ScheduledJob, Secret

__all__ = [
    "AgentExit",
    "DispatchError",
    "DispatchRequest",
    "DispatchSink",
    "Dispatcher",
    "ProvisioningSink",
]


class DispatchError(Exception):
    """The dispatcher could not start an agent. The message becomes the job's finish detail."""


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchRequest:
    """Everything needed to start one agent for one job.

    ``token`` is the job acquisition token (``None`` when tokens are turned off); put it in the
    agent's environment only. ``env`` is extra environment the runtime wants the agent to see.
    """

    job: ScheduledJob
    stack_key: str
    queue_key: str
    token: Secret | None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def job_uuid(self) -> str:
        return self.job.id


@dataclasses.dataclass(frozen=True, slots=True)
class AgentExit:
    """How the work for one job ended.

    ``exit_status`` is the agent's exit status (``None`` when unknown, e.g. killed or lost).
    ``output`` is the last lines of its output, used as the finish detail when the agent failed
    before accepting the job. ``error`` is a dispatcher-side failure description.
    """

    job_uuid: str
    exit_status: int | None = 0
    output: str = ""
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_status == 0 and self.error is None


@runtime_checkable
class DispatchSink(Protocol):
    """What a dispatcher calls to report back. Safe to call from the event loop thread only."""

    def agent_ended(self, result: AgentExit) -> None:
        """The agent (or the work provisioning it) for ``result.job_uuid`` is gone."""


@runtime_checkable
class ProvisioningSink(DispatchSink, Protocol):
    """A sink that also answers "has an agent taken this job?" and posts notifications.

    :class:`~stacksapi.stack.StackRunner` is one. A dispatcher that watches provisioning (a pod
    stuck pulling its image) uses it to choose: before an agent took the job, tear the work down and
    report :meth:`agent_ended` with the reason (the stack then finishes the job with
    ``stack_error``); after, only :meth:`notify`, since the agent owns the job.
    """

    def job_started(self, job_uuid: str) -> bool:
        """True once the stack saw an agent take the job (as of its last state check)."""

    def notify(self, job_uuid: str, detail: str) -> None:
        """Post ``detail`` as a notification on a job in flight (batched, cropped to 256)."""


@runtime_checkable
class Dispatcher(Protocol):
    """Starts agents for jobs. See the module docstring for the rules."""

    async def start(self, sink: DispatchSink) -> Collection[str]:
        """Prepare, and return the uuids of jobs whose agents are already running (restart)."""

    async def dispatch(self, request: DispatchRequest) -> None:
        """Start an agent for ``request.job``; raise :class:`DispatchError` when impossible."""

    async def cancel(self, job_uuid: str, reason: str) -> None:
        """Stop the work for a job (cancelled, reservation lost, shutdown grace over)."""

    async def shutdown(self, grace: float) -> None:
        """Release resources at the end of the run."""
