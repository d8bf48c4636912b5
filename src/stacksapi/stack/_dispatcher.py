"""The ``Dispatcher`` protocol: how the runtime hands a job to the thing that starts its agent.

A dispatcher turns a reserved job into a running ``buildkite-agent`` (a process, a pod, a VM, a
serverless task). The runtime owns everything about the API (polling, reserving, tokens, renewals,
states, timeouts, finishing); the dispatcher only starts, stops and watches agents and reports
back through the :class:`DispatchSink` it gets in :meth:`Dispatcher.start`. ``docs/stack.md``
("Writing a dispatcher") walks through one; in short::

    class MyDispatcher:
        async def start(self, sink: DispatchSink) -> Collection[AdoptedJob]:
            self.sink = sink
            return []  # work still alive from before a restart, with what you know of it

        async def dispatch(self, request: DispatchRequest) -> None:
            ...  # launch the agent (request.command, request.env, request.plugins...)
            # no capacity now? raise DispatchDeferred: the job goes back to the queue unfailed
            # cannot ever run? raise DispatchError: the job is finished with stack_error
            # later, when the agent is gone: self.sink.agent_ended(AgentExit(request.job_uuid, 0))

        async def cancel(self, job_uuid: str, reason: str) -> None:
            ...  # tear the work down; then report agent_ended

        async def shutdown(self, grace: float) -> None:
            ...  # release resources; leave agents running (a restart adopts them)

Rules: ``dispatch`` returns once the launch is under way (not when the job ends), and is never
called twice at once for one job; every dispatched or adopted job must eventually be reported
with :meth:`DispatchSink.agent_ended` (thread-safe), exactly once per dispatch. Calls run
concurrently, ``dispatch_concurrency`` at a time.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from stacksapi._models import Job, ScheduledJob, Secret

__all__ = [
    "ACQUIRE_REFUSED",
    "AdoptedJob",
    "AdoptedState",
    "AgentExit",
    "DispatchDeferred",
    "DispatchError",
    "DispatchRequest",
    "DispatchSink",
    "Dispatcher",
    "ProvisioningSink",
    "TokenRefresher",
    "adopted_states",
]


class DispatchError(Exception):
    """The job cannot run here. The message becomes the job's finish detail (``stack_error``)."""


class DispatchDeferred(DispatchError):
    """Not now (no capacity, a quota, a daemon restarting): the job goes back to the queue unfailed.

    The runtime releases its reservation without finishing the job and starts nothing for it for
    ``retry_after`` seconds (default: the poll interval), so this stack or another takes it later.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AdoptedState(enum.StrEnum):
    """What a dispatcher knows, at :meth:`Dispatcher.start`, of work it found still alive."""

    STARTED = "started"  # the agent runs the job (a pod running, a process past acquire)
    PROVISIONING = "provisioning"  # the agent has not started yet (a pod pending)
    UNKNOWN = "unknown"  # alive, no more known: the runtime asks the API


@dataclasses.dataclass(frozen=True, slots=True)
class AdoptedJob:
    """One job whose work is still alive from before a restart."""

    job_uuid: str
    state: AdoptedState = AdoptedState.UNKNOWN


def adopted_states(found: object) -> dict[str, AdoptedState]:
    """What :meth:`Dispatcher.start` returned, as uuid -> state.

    Accepts uuids (state unknown), :class:`AdoptedJob` items, or a mapping uuid -> state.
    """
    if found is None:
        return {}
    if isinstance(found, Mapping):
        return {str(u): AdoptedState(s) for u, s in found.items()}
    out: dict[str, AdoptedState] = {}
    items: Iterable[Any] = found  # type: ignore[assignment]
    for item in items:
        if isinstance(item, AdoptedJob):
            out[item.job_uuid] = AdoptedState(item.state)
        else:
            out[str(item)] = AdoptedState.UNKNOWN
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class DispatchRequest:
    """Everything needed to start one agent for one job.

    ``job`` is the job as listed (priority, agent query rules, pipeline, build, step);
    ``details`` the job as ``get_job`` returns it (command, env), fetched once through the
    runtime's rate-limited client (``None`` when ``fetch_job_details`` is off). ``token`` is
    the job acquisition token (``None`` when tokens are turned off); put it in the agent's
    environment only. ``extra_env`` is environment the runtime wants the agent to see.
    """

    job: ScheduledJob
    stack_key: str
    queue_key: str
    token: Secret | None
    extra_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    details: Job | None = None

    @property
    def job_uuid(self) -> str:
        return self.job.id

    @property
    def command(self) -> str:
        """The job's command ("" when unknown)."""
        return self.details.command if self.details is not None else ""

    @property
    def env(self) -> Mapping[str, str]:
        """The job's environment as Buildkite sent it (read-only; empty when unknown)."""
        return MappingProxyType(self.details.env if self.details is not None else {})

    @property
    def plugins(self) -> list[dict[str, Any]]:
        """``BUILDKITE_PLUGINS`` parsed: a list of ``{name: config}`` ([] if absent or invalid)."""
        return parse_plugins(self.env.get("BUILDKITE_PLUGINS"))


def parse_plugins(raw: str | None) -> list[dict[str, Any]]:
    """A ``BUILDKITE_PLUGINS`` value as a list of one-key dicts; [] when absent or invalid."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return []
    if not isinstance(value, list):
        return []
    out: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, str):  # a plugin with no configuration
            out.append({item: None})
    return out


ACQUIRE_REFUSED = 27
"""The exit status of ``buildkite-agent start --acquire-job`` when the server refused the acquire.

A dispatcher whose agent reports a refusal some other way says so with this status."""

_UNAUTHORIZED = re.compile(r"\b401 Unauthorized\b")  # how buildkite-agent words a refused token


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

    @property
    def acquire_refused(self) -> bool:
        """The agent was refused its job, so it never ran it: it exited with
        :data:`ACQUIRE_REFUSED`, or failed after the agent API answered ``401 Unauthorized``
        (its token no longer works; ``buildkite-agent`` then exits with a plain failure).

        While the job is still reserved by this stack's key, that is never the job's own
        failure (the key's reservation ended and the token with it), so the runtime
        dispatches the job again."""
        if self.error is not None or self.exit_status in (None, 0):
            return False
        return self.exit_status == ACQUIRE_REFUSED or bool(_UNAUTHORIZED.search(self.output))


@runtime_checkable
class DispatchSink(Protocol):
    """What a dispatcher calls to report back.

    :meth:`agent_ended` is thread-safe: call it from the event loop or from any other thread
    (a watch thread, a callback of a blocking SDK); off the loop it hands the result over with
    ``call_soon_threadsafe``. The other sink methods are for the event loop only.
    """

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
class TokenRefresher(Protocol):
    """An optional method of a dispatcher whose provisioning work can take a new token.

    When a job's agent has not started and its acquisition token nears expiry (or its age is
    unknown, after a restart), the runtime issues a fresh token and calls ``refresh_token``. A
    dispatcher without it, or one that returns False, has its work torn down (``cancel``) and
    the job dispatched again with the fresh token once the old work reported its end.
    """

    async def refresh_token(self, job_uuid: str, token: Secret) -> bool:
        """Hand ``token`` to the work for ``job_uuid``; True when the agent will use it."""


@runtime_checkable
class Dispatcher(Protocol):
    """Starts agents for jobs. See the module docstring for the rules."""

    async def start(
        self, sink: DispatchSink
    ) -> Collection[str] | Collection[AdoptedJob] | Mapping[str, AdoptedState]:
        """Prepare, and report work still alive from before a restart (see :class:`AdoptedJob`;
        plain uuids mean state unknown). The runtime watches it like its own."""

    async def dispatch(self, request: DispatchRequest) -> None:
        """Start an agent for ``request.job``; raise :class:`DispatchError` when impossible."""

    async def cancel(self, job_uuid: str, reason: str) -> None:
        """Stop the work for a job (cancelled, reservation lost, shutdown grace over)."""

    async def shutdown(self, grace: float) -> None:
        """Release resources at the end of the run."""
