"""The chaos world: an emulator with seeded fault injection and a clock that can jump, and the
invariants every chaos run must satisfy, checked from the emulator's job histories.

``World`` serves one :class:`~stacksapi.emulator.Emulator` over real HTTP with a
:class:`~stacksapi.emulator.FaultConfig` middleware in front of the Stacks API routes (the agent
and admin routes pass untouched). ``verify`` turns the histories into a :class:`RunReport`: the
figures for the summary table and the list of broken invariants (empty when the run was sound).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from types import TracebackType

import httpx2

from stacksapi.emulator import (
    Emulator,
    EmulatorServer,
    FaultConfig,
    FaultRates,
    JobInfo,
    ManualClock,
    parse_fault_spec,
)

__all__ = [
    "DEFAULT_FAULTS",
    "TERMINAL",
    "FollowingClock",
    "RunReport",
    "World",
    "verify",
]

DEFAULT_FAULTS = "500=0.08,503=0.05,429=0.05,drop=0.06,latency=0-15ms"
"""Faults on every Stacks API endpoint: about one request in four fails, each is a bit late."""

TERMINAL = frozenset(
    {"finished", "canceled", "expired", "timed_out", "skipped", "broken", "waiting_failed"}
)


class FollowingClock(ManualClock):
    """Wall time plus an offset that only grows: time flows as usual and jumps when told.

    A plain :class:`ManualClock` stands still, which would put every request of a live stack in
    one rate-limit second; this one keeps the windows real. It is a ``ManualClock``, so the admin
    API's ``POST /_emulator/clock/advance`` moves it too.
    """

    __slots__ = ("_offset",)

    def __init__(self) -> None:
        super().__init__()
        self._offset = 0.0

    def now(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` ahead (never back) and return the new time."""
        if seconds < 0:
            raise ValueError(f"seconds: must be >= 0 (got {seconds})")
        with self._lock:
            self._offset += seconds
            return time.time() + self._offset

    def set(self, when: float | object) -> None:
        raise NotImplementedError("FollowingClock only moves with advance()")


class World:
    """An emulator behind seeded faults, served on 127.0.0.1 (use as a context manager)."""

    def __init__(
        self,
        seed: int,
        *,
        faults: str = DEFAULT_FAULTS,
        reservation_expiry_seconds: int = 900,
    ) -> None:
        self.seed = seed
        self.clock = FollowingClock()
        self.faults: FaultConfig = parse_fault_spec(faults, seed=seed)
        self.emulator = Emulator(
            clock=self.clock,
            seed=seed,
            reservation_expiry_seconds=reservation_expiry_seconds,
        )
        self.server = EmulatorServer(self.emulator, middleware=[self.faults.middleware()])
        self.faults_stopped_at: float | None = None
        self.started_at = time.monotonic()

    def __enter__(self) -> World:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def token(self) -> str:
        return self.server.token

    def stop_faults(self) -> None:
        """No more faults from now on (the counters of those injected so far stay)."""
        self.faults.default = FaultRates()
        self.faults.per_endpoint = {}
        self.faults_stopped_at = time.monotonic()

    def jump(self, seconds: float) -> None:
        """Move the emulator's clock ahead through the admin API (``POST clock/advance``), as an
        operator would: reservations and tokens may expire under a stack."""
        reply = httpx2.post(
            f"{self.server.admin_url}clock/advance",
            json={"seconds": seconds},
            headers={"Authorization": f"Token {self.server.admin_token}"},
            timeout=10,
        )
        if reply.status_code != 200:
            raise AssertionError(f"clock/advance answered {reply.status_code}: {reply.text}")

    def states(self, jobs: Iterable[str]) -> dict[str, str]:
        """Current state of each job (cheap: no history is copied)."""
        em = self.emulator
        with em.lock:
            em.tick()
            return {j: em.jobs[j].state for j in jobs}

    def all_terminal(self, jobs: Iterable[str]) -> bool:
        return all(s in TERMINAL for s in self.states(jobs).values())

    def reserved_by(self, stack_key: str) -> list[str]:
        """Jobs the emulator (after applying expiries) still counts as reserved by a stack."""
        em = self.emulator
        with em.lock:
            em.tick()
            jobs = em.jobs.values()
            return [j.id for j in jobs if j.state == "reserved" and j.reserved_by == stack_key]


@dataclasses.dataclass
class RunReport:
    """One chaos run: its figures and the invariants it broke (``problems``; empty is good)."""

    name: str
    jobs: int
    faults: dict[str, int]
    restarts: int
    duplicates: int
    lost: int
    drain_seconds: float
    outcomes: dict[str, int]
    problems: list[str]
    wall_seconds: float = 0.0
    stack_details: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def explain(self) -> str:
        """The problems, one per line, for an assertion message."""
        return f"{self.name}: " + "\n".join(self.problems[:20])


def _count(info: JobInfo, state: str) -> int:
    return sum(1 for t in info.transitions if t.to_state == state)


def _job_problems(info: JobInfo, now: float) -> list[str]:
    """Every per-job invariant this job breaks."""
    problems = []
    if _count(info, "accepted") > 1 or _count(info, "running") > 1:
        problems.append(f"job {info.id}: started more than once")
    if info.state not in TERMINAL:
        problems.append(f"job {info.id}: left {info.state}, not terminal")
    finish = info.finish
    if finish is not None and finish.by.startswith("stack ") and not (finish.detail or "").strip():
        problems.append(f"job {info.id}: finished by a stack without a detail")
    records = info.reservations
    for record in records[:-1]:
        if record.ended_at is None:
            problems.append(f"job {info.id}: an earlier reservation never ended")
    if records:
        last = records[-1]
        if info.state == "reserved":
            if last.expires_at.timestamp() <= now:
                problems.append(f"job {info.id}: still reserved after its reservation expired")
        elif last.ended_at is None:
            problems.append(f"job {info.id}: {info.state} with an open reservation")
    for record in records:
        if record.end_reason == "expired" and record.ended_at != record.expires_at:
            problems.append(f"job {info.id}: a reservation expired late ({record.ended_at})")
    return problems


def verify(
    world: World,
    jobs: Iterable[str],
    *,
    name: str,
    restarts: int = 0,
    drain_seconds: float = 0.0,
    stacks_left: int = 0,
) -> RunReport:
    """Check the invariants of a finished run and gather its figures.

    Per job (from its history): accepted and running at most once; terminal; a job a stack
    finished has a detail; no reservation left open or outliving its expiry. Per run: the
    emulator's own rate limiter refused nothing (injected 429s are counted apart, by the fault
    middleware) and ``stacks_left`` stacks remain registered (0 after clean shutdowns).
    """
    em = world.emulator
    infos = [em.job(j) for j in jobs]
    now = em.now()
    problems: list[str] = []
    outcomes: dict[str, int] = {}
    duplicates = lost = 0
    details: list[str] = []
    for info in infos:
        found = _job_problems(info, now)
        problems.extend(found)
        duplicates += _count(info, "accepted") > 1
        lost += info.state not in TERMINAL
        kind = info.state
        if info.finish is not None and info.finish.by.startswith("stack "):
            kind = "finished by stack"
            lines = (info.finish.detail or "").strip().splitlines() or [""]
            if len(details) < 5:  # the head says what failed, the last line of output why
                head, last = lines[0][:120], lines[-1][:120]
                details.append(head if head == last else f"{head} ... {last}")
        outcomes[kind] = outcomes.get(kind, 0) + 1
    refused = {endpoint: per[429] for endpoint, per in em.counters().items() if per.get(429, 0) > 0}
    if refused:
        problems.append(f"requests beyond the rate limits (429 from the emulator): {refused}")
    registered = [s.key for s in em.list_stacks()]
    if len(registered) != stacks_left:
        problems.append(f"stacks still registered: {registered} (expected {stacks_left})")
    return RunReport(
        wall_seconds=time.monotonic() - world.started_at,
        name=name,
        jobs=len(infos),
        faults=world.faults.totals(),
        restarts=restarts,
        duplicates=duplicates,
        lost=lost,
        drain_seconds=drain_seconds,
        outcomes=outcomes,
        problems=problems,
        stack_details=details,
    )
