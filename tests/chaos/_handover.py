"""Chaos where work changes hands or outlives its token: restarts, kills while provisioning.

- ``killed_while_provisioning`` (processes): a stack is SIGKILLed while every agent it started is
  still provisioning (the agent command sleeps before it acquires), the clock jumps past the
  reservations, and the stack is started again: it must adopt the work, retake the jobs and hand
  them fresh tokens, so no agent is refused and no job fails or runs twice.
- ``sigterm_restarts`` (processes): a stack is stopped with SIGTERM (a rolling update) while jobs
  run and provision, then started again, twice: nothing may fail, everything finishes once.
- ``slow_provisioning`` (in process): agents take longer to start than their token lives; with a
  dispatcher that takes fresh tokens and with one that does not (re-dispatched): no job fails.

Each adds its own invariants to :func:`~_world.verify`'s: every job finished with exit status 0
by its agent (none failed, none finished by a stack).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from stacksapi import Secret

from ._agents import SimAgents
from ._inproc import Running, run_world
from ._procs import AGENT, EXPIRY, StackProcess, finish_run, wait
from ._world import DEFAULT_FAULTS, RunReport, World

__all__ = ["killed_while_provisioning", "sigterm_restarts", "slow_provisioning"]

_REFUSED = "no longer valid"  # what the emulated agent prints when its token was refused


def _all_succeeded(world: World, jobs: list[str], report: RunReport) -> None:
    for uuid in jobs:
        finish = world.emulator.job(uuid).finish
        if finish is None or finish.by.startswith("stack ") or finish.exit_status != 0:
            by = finish.by if finish is not None else "nobody"
            status = finish.exit_status if finish is not None else None
            report.problems.append(f"job {uuid}: finished by {by} with exit status {status}")


def _refusals(stack: StackProcess) -> int:
    logs = stack.root / f"{stack.key}-work" / "logs"
    return sum(_REFUSED in p.read_text(errors="replace") for p in logs.glob("*.log"))


def killed_while_provisioning(
    seed: int, jobs: int, root: Path, *, provisioning: float = 6.0, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """SIGKILL while every agent is still provisioning, jump past the reservations, restart."""
    slow_agent = ["sh", "-c", f'sleep {provisioning}; exec "$0" "$@"', *AGENT]
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs, command="true")
        stack = StackProcess(world, "chaos-provisioning", root, max_in_flight=jobs,
                             command=slow_agent)  # fmt: skip
        pids = root / f"{stack.key}-work" / "pids"
        problems: list[str] = []
        stack.start()
        try:
            wait(lambda: len(list(pids.glob("*.pid"))) == jobs, [stack], 60)
            stack.kill()  # every agent is still sleeping before its acquire
            world.jump(EXPIRY + 1)  # the reservations lapse: the old tokens are dead
            stack.start()
            report = finish_run(world, ids, [stack], name=f"SIGKILL while provisioning "
                                f"seed={seed}", problems=problems)  # fmt: skip
        finally:
            if stack.alive:
                stack.kill()
        _all_succeeded(world, ids, report)
        if refused := _refusals(stack):
            report.problems.append(f"{refused} agents were refused for a stale token")
        return report


def sigterm_restarts(
    seed: int, jobs: int, root: Path, *, restarts: int = 2, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """SIGTERM (the default, leave) while jobs run and provision, then start again."""
    slow_agent = ["sh", "-c", 'sleep 1; exec "$0" "$@"', *AGENT]
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs, command="sleep 8")  # outlasts shutdown_grace
        stack = StackProcess(world, "chaos-rolling", root, max_in_flight=4, command=slow_agent)
        problems: list[str] = []
        stack.start()
        try:
            for round_ in range(restarts):
                target = (round_ + 1) * jobs // (restarts + 2)

                def busy(target: int = target) -> bool:
                    states = world.states(ids).values()
                    done = sum(s == "finished" for s in states)
                    return done >= target and any(s in ("running", "reserved") for s in states)

                wait(busy, [stack], 90)
                if (code := stack.stop()) != 0:
                    problems.append(f"SIGTERM exit code {code}, not 0")
                stack.start()
            report = finish_run(world, ids, [stack], name=f"SIGTERM x{restarts} seed={seed}",
                                problems=problems)  # fmt: skip
        finally:
            if stack.alive:
                stack.kill()
        _all_succeeded(world, ids, report)
        return report


class RefreshingAgents(SimAgents):
    """SimAgents whose agents, still provisioning, take a fresh token."""

    async def refresh_token(self, job_uuid: str, token: Secret) -> bool:
        self.tokens[job_uuid] = token.get_secret_value()
        return True


async def slow_provisioning(
    seed: int, jobs: int, *, refresh: bool, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """Each job's first agent takes longer to start than its token lives (3 s)."""
    lifetime = 3
    slow_once: set[str] = set()

    async def pulls_an_image(uuid: str) -> None:
        if uuid not in slow_once:  # the first start is slow (an image pull); later ones not
            slow_once.add(uuid)
            await asyncio.sleep(lifetime + 1.5)

    kind = RefreshingAgents if refresh else SimAgents
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs)

        async def during(_runs: list[Running]) -> None:
            await asyncio.sleep(lifetime + 2)

        make: Callable[[], SimAgents] = lambda: kind(  # noqa: E731
            world.base_url, before_acquire=pulls_an_image, run_for=0.05
        )
        name = f"slow provisioning, {'fresh token' if refresh else 're-dispatch'} seed={seed}"
        report = await run_world(
            world, ids, name=name, during=during, agents=make, max_in_flight=jobs,
            token_lifetime_seconds=lifetime,
        )  # fmt: skip
        _all_succeeded(world, ids, report)
        return report
