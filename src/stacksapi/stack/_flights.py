"""What the runtime holds in flight: one :class:`Flight` per job, in a :class:`FlightTable`.

The table is the single owner of per-job state. Every other component (the poller, the
launcher, the watcher, the finisher) is handed the table and changes a flight only through its
fields and the table's methods, so "is this job still ours?" has one answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping

from stacksapi._models import Job, JobState, ScheduledJob

from ._dispatcher import AdoptedState, AgentExit

__all__ = [
    "AGENT_OWNED",
    "CANCELLING",
    "HELD",
    "OVER",
    "TERMINAL",
    "Flight",
    "FlightTable",
    "adopted_job",
]

TERMINAL = frozenset(s.value for s in JobState if s.is_terminal)
AGENT_OWNED = frozenset({JobState.ACCEPTED, JobState.RUNNING, JobState.FINISHED})
CANCELLING = frozenset({JobState.CANCELING, JobState.CANCELED})
HELD = frozenset({JobState.RESERVED, JobState.ASSIGNED})
OVER = TERMINAL - AGENT_OWNED - CANCELLING  # timed_out, expired, ...: no agent can run it


@dataclasses.dataclass(slots=True)
class Flight:
    """One job this stack holds: reserved, being provisioned, or run by its agent.

    Times are on the stack's monotonic clock. ``token_expires_at`` is ``None`` when no token was
    handed out or its age is unknown (adopted work: see ``token_unknown``).
    """

    job: ScheduledJob
    expires_at: float | None  # end of our reservation; None once an agent owns the job
    since: float = 0.0  # when provisioning began (first dispatch, or adoption); 0: not yet
    dispatched: bool = False  # a dispatcher holds (or is launching) work for it
    started: bool = False  # an agent accepted the job
    cancelled: bool = False  # the dispatcher was told to tear the work down
    ended: AgentExit | None = None  # the agent failed; waiting for a state check to decide
    adopted: AdoptedState | None = None  # found alive at start (None: dispatched by us)
    details: Job | None = None
    token_expires_at: float | None = None
    token_unknown: bool = False  # adopted: whatever token it holds may be stale
    refreshing: bool = False  # a fresh token is being issued / handed over
    redispatch: bool = False  # torn down to be dispatched again with a fresh token
    finishing: bool = False  # a finish is outstanding: the job stays held until it lands
    relaunches: int = 0  # dispatched again after its agent failed on a stale token


def adopted_job(uuid: str) -> ScheduledJob:
    """A placeholder listing for work adopted at start (the API lists only scheduled jobs)."""
    return ScheduledJob(id=uuid, scheduled_at=dt.datetime.now(dt.UTC))


class FlightTable(Mapping[str, Flight]):
    """The jobs in flight, by uuid. ``on_change(count)`` runs after each add and release."""

    def __init__(self, on_change: Callable[[int], None] = lambda _n: None) -> None:
        self._flights: dict[str, Flight] = {}
        self._on_change = on_change

    def __getitem__(self, uuid: str) -> Flight:
        return self._flights[uuid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._flights)

    def __len__(self) -> int:
        return len(self._flights)

    def add(self, flight: Flight) -> None:
        self._flights[flight.job.id] = flight
        self._on_change(len(self._flights))

    def release(self, uuid: str) -> bool:
        """Forget a job (its capacity is free again). False when it was not held, or when a
        finish is still outstanding (the finisher releases it once the finish lands)."""
        flight = self._flights.get(uuid)
        if flight is None or flight.finishing:
            return False
        del self._flights[uuid]
        self._on_change(len(self._flights))
        return True

    def unstarted(self) -> list[str]:
        """Jobs whose agent has not taken them and whose work is not being torn down."""
        return [u for u, f in self._flights.items() if not f.started and not f.cancelled]

    def jobs(self) -> dict[str, ScheduledJob]:
        return {u: f.job for u, f in self._flights.items()}
