"""Chaos runs with stacks in this process: faults, clock jumps, pauses, cancellations.

Each scenario builds a :class:`~_world.World`, starts one or more :class:`~stacksapi.stack.Stack`
loops (each with its own client and :class:`~_agents.SimAgents`), disturbs them while faults are
on, stops the faults, waits for every job to end (the drain) and stops the stacks cleanly. The
result is a :class:`~_world.RunReport`; the tests assert it is clean and the benchmark prints it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio

from stacksapi import AsyncClient, RetryPolicy
from stacksapi.stack import EventKind, Stack, StackConfig, StackEvent, StackExit

from ._agents import SimAgents
from ._world import DEFAULT_FAULTS, TERMINAL, RunReport, World, verify

__all__ = [
    "FAST_RETRY",
    "Running",
    "agent_command_broken",
    "cancel_everywhere",
    "clock_jumps",
    "faults_only",
    "finish_failures",
    "pause_resume",
    "run_world",
    "shared_key",
]

FAST_RETRY = RetryPolicy(max_attempts=6, initial_delay=0.05, max_delay=0.5)
"""Quick backoff for errors without a ``Retry-After`` (the server's own waits are honoured)."""

DRAIN_LIMIT = 60.0


def stack_config(key: str, **changes: object) -> StackConfig:
    """A stack tuned for short runs: fast polls and checks, minimum reservation expiry."""
    base = StackConfig(
        key=key,
        poll_interval=0.05,
        state_check_interval=0.1,
        shutdown_grace=1.0,
        max_in_flight=10,
        reservation_expiry_seconds=10,
        tags={"os": "linux"},
    )
    return base.with_overrides(**changes)


class Running:
    """One stack running in the background of a run, with its client and agents."""

    def __init__(self, world: World, key: str, agents: SimAgents, **changes: object) -> None:
        self.client = AsyncClient(world.token, base_url=world.base_url, retry=FAST_RETRY)
        self.agents = agents
        self.on_event: Callable[[StackEvent], None] | None = None
        self.stack = Stack(self.client, stack_config(key, **changes), agents, on_event=self._event)
        self.task: asyncio.Task[StackExit] = asyncio.create_task(self.stack.run_async())

    def _event(self, event: StackEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def stop(self) -> StackExit:
        self.stack.request_stop()
        try:
            with anyio.fail_after(30):
                return await self.task
        finally:
            await self.client.aclose()


async def drain(
    world: World, jobs: Sequence[str], stacks: Sequence[Running], limit: float = DRAIN_LIMIT
) -> float:
    """Stop the faults and wait (up to ``limit``) until every job is terminal; seconds it took."""
    world.stop_faults()
    began = time.monotonic()
    with anyio.move_on_after(limit):  # jobs still not terminal then are counted as lost
        while not world.all_terminal(jobs):
            for run in stacks:
                if run.task.done():
                    raise AssertionError(f"a stack ended early: {run.task.result()}")
            await asyncio.sleep(0.05)
    return time.monotonic() - began


async def run_world(
    world: World,
    jobs: Sequence[str],
    *,
    name: str,
    stacks: int = 1,
    during: Callable[[list[Running]], Awaitable[None]],
    agents: Callable[[], SimAgents] | None = None,
    drain_limit: float = DRAIN_LIMIT,
    key: str | None = None,
    **changes: object,
) -> RunReport:
    """Run ``stacks`` stacks, call ``during`` with faults on, drain, stop cleanly, verify.

    Each stack has its own key (``chaos-<n>``), or all share ``key``."""
    make = agents or (lambda: SimAgents(world.base_url, run_for=0.02))
    keys = [f"chaos-{i}" for i in range(stacks)] if key is None else [key] * stacks
    runs = [Running(world, k, make(), **changes) for k in keys]
    exits: list[StackExit] = []
    try:
        await during(runs)
        seconds = await drain(world, jobs, runs, drain_limit)
    finally:
        for run in runs:
            exits.append(await run.stop())
    report = verify(world, jobs, name=name, drain_seconds=seconds)
    for run, result in zip(runs, exits, strict=True):
        if not result.ok:
            report.problems.append(f"{run.stack.config.key} stopped with an error: {result.reason}")
        if run.agents.overlaps:
            key = run.stack.config.key
            report.problems.append(f"{key} dispatched jobs already running: {run.agents.overlaps}")
    return report


async def until(cond: Callable[[], bool], limit: float = 20.0) -> None:
    """Wait until ``cond()`` holds (a safety limit, not a timing assertion)."""
    with anyio.fail_after(limit):
        while True:
            if cond():
                return
            await asyncio.sleep(0.02)


# --- scenarios --------------------------------------------------------------------------------


async def faults_only(
    seed: int, jobs: int, *, stacks: int = 1, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """Jobs arrive in two waves while every Stacks API endpoint fails now and then."""
    with World(seed, faults=faults) as world:
        em = world.emulator
        ids = em.create_jobs(jobs // 2)

        def ended(share: float) -> Callable[[], bool]:
            def cond() -> bool:
                states = world.states(ids).values()
                return sum(s in TERMINAL for s in states) >= share * len(ids)

            return cond

        async def during(runs: list[Running]) -> None:
            await until(ended(0.25), limit=60)
            ids.extend(em.create_jobs(jobs - len(ids)))
            await until(ended(0.9), limit=120)  # most of the work happens under faults

        name = f"faults x{stacks} seed={seed}"
        return await run_world(world, ids, name=name, stacks=stacks, during=during)


async def clock_jumps(
    seed: int, jobs: int, *, jumps: int = 4, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """The emulator's clock jumps past every reservation and token while agents are on the way.

    Agents wait a little before acquiring, so some hold a token that expired meanwhile: those
    jobs must still end (run by another dispatch, or finished by the stack with a reason).
    """
    rng = random.Random(seed)

    async def slow_start(_uuid: str) -> None:
        await asyncio.sleep(rng.uniform(0.0, 0.3))

    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs)

        async def during(runs: list[Running]) -> None:
            for _ in range(jumps):
                await asyncio.sleep(0.4)
                world.jump(3600 + 60)  # past any reservation (<= 3600 s) and token (900 s)

        return await run_world(
            world, ids, name=f"clock jumps seed={seed}", during=during,
            agents=lambda: SimAgents(world.base_url, before_acquire=slow_start, run_for=0.1),
            token_lifetime_seconds=60,
        )  # fmt: skip


async def pause_resume(
    seed: int, jobs: int, *, cycles: int = 6, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """The queue is paused and resumed again and again while two stacks take jobs."""
    rng = random.Random(seed)
    with World(seed, faults=faults) as world:
        em = world.emulator
        ids = em.create_jobs(jobs)

        async def during(runs: list[Running]) -> None:
            for _ in range(cycles):
                em.pause_queue(em.default_queue)
                await asyncio.sleep(rng.uniform(0.1, 0.4))
                em.resume_queue(em.default_queue)
                await asyncio.sleep(rng.uniform(0.1, 0.4))

        return await run_world(
            world, ids, name=f"pause/resume seed={seed}", stacks=2, during=during,
            agents=lambda: SimAgents(world.base_url, run_for=0.05),
        )  # fmt: skip


CANCEL_POINTS = (
    "scheduled",
    "reserved",
    "dispatched",
    "acquired",
    "running",
    "finished",
)
"""The points of a job's life where :func:`cancel_everywhere` cancels it."""


async def cancel_everywhere(
    seed: int, per_point: int = 3, *, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """Cancel jobs at every point of their life, from queued to already finished.

    ``scheduled``: before any stack sees it. ``reserved``: as the stack reserves it.
    ``dispatched``: the agent is on the way but has not acquired. ``acquired``/``running``: the
    agent holds it (Buildkite says ``canceling``; the agent finishes it as ``canceled``).
    ``finished``: too late (the emulator refuses; the job stays finished).
    """
    with World(seed, faults=faults) as world:
        em = world.emulator
        point: dict[str, str] = {}
        for name in CANCEL_POINTS:
            for _ in range(per_point):
                point[em.create_job()] = name
        ids = list(point)
        for uuid, name in point.items():
            if name == "scheduled":
                em.cancel_job(uuid)
        released: dict[str, asyncio.Event] = {u: asyncio.Event() for u in ids}
        cancelled: set[str] = set()

        def cancel(uuid: str) -> None:
            if uuid not in cancelled:
                cancelled.add(uuid)
                em.cancel_job(uuid)

        async def hold_at(uuid: str, where: str) -> None:
            if point.get(uuid) == where:
                cancel(uuid)
                await asyncio.sleep(0.05)

        async def before_acquire(uuid: str) -> None:
            if point.get(uuid) == "dispatched":
                await released[uuid].wait()  # cancelled meanwhile by the event hook

        def on_event(event: StackEvent) -> None:
            uuid = event.job_uuid
            if uuid is None:
                return
            if event.kind is EventKind.RESERVED and point.get(uuid) == "reserved":
                cancel(uuid)
            elif event.kind is EventKind.DISPATCHED and point.get(uuid) == "dispatched":
                cancel(uuid)
                asyncio.get_running_loop().call_later(0.3, released[uuid].set)

        async def during(runs: list[Running]) -> None:
            runs[0].on_event = on_event
            finished = [u for u, p in point.items() if p == "finished"]
            await until(lambda: all(s == "finished" for s in world.states(finished).values()))
            for uuid in finished:
                try:
                    em.cancel_job(uuid)
                except Exception:  # too late: refused, the job stays finished
                    cancelled.add(uuid)

        def agents() -> SimAgents:
            async def after_acquire(uuid: str) -> None:
                await hold_at(uuid, "acquired")

            async def after_start(uuid: str) -> None:
                await hold_at(uuid, "running")

            return SimAgents(
                world.base_url, run_for=0.2, before_acquire=before_acquire,
                after_acquire=after_acquire, after_start=after_start,
            )  # fmt: skip

        report = await run_world(
            world, ids, name=f"cancel everywhere seed={seed}", during=during, agents=agents
        )
        for uuid, where in point.items():
            state = em.job_state(uuid)
            expected = "finished" if where == "finished" else "canceled"
            if state != expected:
                report.problems.append(f"job {uuid} cancelled at {where}: {state}, not {expected}")
        return report


async def finish_failures(seed: int, jobs: int, *, faults: str = DEFAULT_FAULTS) -> RunReport:
    """Dispatches fail (a missing image) while every finish call fails too (500s).

    Once the faults stop, each such job must still be finished by the stack with the dispatch
    error as its detail: a finish that failed for a passing reason must be tried again.
    """
    failing = "finish_job:500=1,finish_job:503=0,finish_job:429=0,finish_job:drop=0"
    with World(seed, faults=f"{faults},{failing}") as world:
        ids = world.emulator.create_jobs(jobs)
        refused = set(ids[::3])
        sims: list[SimAgents] = []

        def agents() -> SimAgents:
            sims.append(SimAgents(world.base_url, run_for=0.02, refuse=refused))
            return sims[-1]

        async def during(runs: list[Running]) -> None:
            await until(lambda: all(u in sims[0].dispatched for u in refused))
            attempts = FAST_RETRY.max_attempts * len(refused)  # every finish gave up
            await until(lambda: world.faults.counts().get("finish_job", {}).get("500", 0)
                        >= attempts)  # fmt: skip
            world.stop_faults()
            world.jump(11)  # past the reservations the failed finishes left behind

        # The refused jobs fail alike and, once the others are done, one after another: just
        # what the breaker takes for a broken agent command. This run is about finishing, so
        # the breaker is off (its own scenario is ``agent_command_broken``).
        report = await run_world(
            world, ids, name=f"finish failures seed={seed}", during=during, agents=agents,
            drain_limit=20.0, breaker_threshold=0,
        )  # fmt: skip
        for uuid in refused:
            info = world.emulator.job(uuid)
            detail = info.finish.detail if info.finish is not None else None
            if detail is None or "missing:latest" not in detail:
                report.problems.append(f"job {uuid}: finished without the dispatch error")
        return report


async def shared_key(seed: int, jobs: int, *, faults: str = DEFAULT_FAULTS) -> RunReport:
    """Two stacks with one key (issue 9, item 7), under faults; midway one stops (a rolling
    update: it deregisters the key) and a replacement with the same key starts.

    Both reserve the same jobs now and then (a reserve by the same key extends the other's
    reservation) and both dispatch them: the agent that loses the acquire race must be
    recognised as such, never finish its job with ``stack_error``; the stop must not stop the
    other stack; nothing runs twice, nothing is stranded.
    """
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs)

        def done(share: float) -> Callable[[], bool]:
            return lambda: sum(s in TERMINAL for s in world.states(ids).values()) >= share * jobs

        async def during(runs: list[Running]) -> None:
            await until(done(0.3), limit=60)
            await runs[0].stop()  # deregisters the key under the other stack
            # The replacement starts at once: it may register the key before the survivor saw
            # the 404; the survivor's agents refused meanwhile (exit 27, job still held by the
            # key) must be dispatched again, never failed.
            runs[0] = Running(world, "chaos-twin", SimAgents(world.base_url, run_for=0.02))
            await until(done(0.8), limit=120)

        report = await run_world(
            world, ids, name=f"shared key seed={seed}", stacks=2, during=during, key="chaos-twin"
        )
        # One key, one rate-limit budget: two processes each pacing itself to the whole budget
        # go over it now and then, and the server's 429s are honoured. Expected here.
        report.problems = [p for p in report.problems if "beyond the rate limits" not in p]
        finished_by_stack = report.outcomes.get("finished by stack", 0)
        if finished_by_stack:
            report.problems.append(f"{finished_by_stack} jobs failed by a stack (shared key)")
        return report


BROKEN = "cannot run 'buildkite-agent': No such file or directory"


async def agent_command_broken(seed: int, jobs: int, *, faults: str = DEFAULT_FAULTS) -> RunReport:
    """The agent command cannot start (issue 9, item 8), under faults, then it is fixed.

    The breaker must open after a few failures, hand the jobs back unfailed (at most the first
    of the streak is finished with ``stack_error``), and close by itself once a probe's agent
    takes its job; then the queue drains.
    """
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs)
        sims: list[SimAgents] = []
        opened: list[StackEvent] = []

        def agents() -> SimAgents:
            sims.append(SimAgents(world.base_url, run_for=0.02))
            sims[-1].broken = BROKEN
            return sims[-1]

        async def during(runs: list[Running]) -> None:
            runs[0].on_event = lambda e: (
                opened.append(e) if e.kind is EventKind.BREAKER_OPEN else None
            )
            await until(lambda: bool(opened), limit=30)
            await asyncio.sleep(1.0)  # open: a probe or two fail too
            sims[0].broken = None  # the operator fixes the agent command
            await until(lambda: not runs[0].stack.breaker_open, limit=60)

        report = await run_world(
            world, ids, name=f"agent command broken seed={seed}", during=during, agents=agents,
            breaker_backoff_seconds=0.3,
        )  # fmt: skip
        failed = report.outcomes.get("finished by stack", 0)
        if failed > 1:
            report.problems.append(f"{failed} jobs failed for a broken agent command (at most 1)")
        return report
