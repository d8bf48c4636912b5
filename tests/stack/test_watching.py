"""Work in flight is watched whatever its origin or pace, over real HTTP against the emulator.

Adopted work is renewed, state-checked and given fresh tokens like the stack's own; work whose
agent never starts is torn down after ``provisioning_timeout``; an acquisition token never
expires under a slow provisioning; slow dispatcher calls never starve renewals. Time is skipped
on the emulator's clock and the stack's together (``SkipClock``), so minutes take seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
from stack_helpers import (
    RefreshingSim,
    SimDispatcher,
    SkipClock,
    accepted_count,
    config,
    sim,
    start,
    state,
)

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer, ManualClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def stacks_emulator_options() -> dict[str, Any]:
    return {"clock": ManualClock(), "rate_limits": False}  # a standing clock has no windows


@pytest.fixture
def skip(stacks_emulator: EmulatorServer) -> SkipClock:
    return SkipClock(stacks_emulator.emulator.clock)


def lapsed(server: EmulatorServer, uuid: str) -> bool:
    """True when a reservation of the job ever expired."""
    return any(r.end_reason == "expired" for r in server.emulator.job(uuid).reservations)


async def left_provisioning(client: AsyncClient, jobs: list[str], lifetime: int) -> dict[str, str]:
    """What a controller that died leaves: jobs reserved by its key, agents holding tokens."""
    await client.register_stack("test-stack", queue_key="__default__")
    await client.batch_reserve_jobs("test-stack", jobs, reservation_expiry_seconds=30)
    issued = await client.issue_job_acquisition_tokens(
        "test-stack", jobs, token_lifetime_seconds=lifetime
    )
    return {
        t.job_uuid: t.job_acquisition_token.get_secret_value()
        for t in issued.job_acquisition_tokens
    }


async def test_adopted_provisioning_work_is_renewed_and_its_agents_get_fresh_tokens(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, skip: SkipClock
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(10)
    dispatcher = RefreshingSim(stacks_emulator.base_url, hold_all=True)
    dispatcher.tokens = await left_provisioning(async_stacks_client, jobs, lifetime=60)
    dispatcher.adopt = list(jobs)  # reported as uuids only: state unknown
    run = start(async_stacks_client, config(reservation_expiry_seconds=30), dispatcher, skip)
    await run.until(lambda: set(dispatcher.refreshed) == set(jobs))
    await skip.advance_slowly(90, step=3, pause=0.2)  # past the old reservation and tokens
    for job in jobs:
        dispatcher.release(job)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    await run.stop()
    assert dispatcher.refused == []  # no agent was refused for a stale token
    assert dispatcher.dispatched == []  # no job was started a second time
    assert all(accepted_count(stacks_emulator, j) == 1 for j in jobs)
    assert not any(lapsed(stacks_emulator, j) for j in jobs)
    assert all(em.job(j).finish.exit_status == 0 for j in jobs)  # type: ignore[union-attr]


async def test_work_whose_agent_does_not_start_in_time_is_torn_down_and_finished(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, skip: SkipClock
) -> None:
    em = stacks_emulator.emulator
    stuck, fine = em.create_job(), em.create_job()
    dispatcher = sim(stacks_emulator, hold={stuck})
    run = start(async_stacks_client, config(provisioning_timeout=60), dispatcher, skip)
    await run.until(lambda: state(stacks_emulator, fine) == "finished")
    await skip.advance_slowly(70, step=5)
    await run.until(lambda: state(stacks_emulator, stuck) == "finished")
    await run.stop()
    finish = em.job(stuck).finish
    assert finish is not None
    assert (finish.exit_status, finish.signal_reason) == (-1, "stack_error")
    assert "did not start within 60" in (finish.detail or "")
    assert "did not start" in dispatcher.cancelled[stuck]  # its work was torn down
    assert em.job(fine).finish.exit_status == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("refreshes", [True, False], ids=["fresh-token", "re-dispatched"])
async def test_a_slow_provisioning_never_fails_for_an_expired_token(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    skip: SkipClock,
    refreshes: bool,
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    url = stacks_emulator.base_url
    dispatcher = RefreshingSim(url, hold={job}) if refreshes else SimDispatcher(url, hold={job})
    run = start(async_stacks_client, config(token_lifetime_seconds=30), dispatcher, skip)
    await run.until(lambda: job in dispatcher.dispatched)
    await skip.advance_slowly(60, step=2)  # twice the token's lifetime
    dispatcher.release(job)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    assert dispatcher.refused == []
    assert accepted_count(stacks_emulator, job) == 1
    finish = em.job(job).finish
    assert finish is not None
    assert finish.exit_status == 0
    if not refreshes:  # the old work was torn down and the job started again with a new token
        assert len(dispatcher.dispatched) >= 2
        assert job in dispatcher.cancelled


async def test_slow_cancels_never_starve_renewals() -> None:
    """150 cancels taking 100 ms each while 50 other jobs are held with a 10 s expiry."""
    from stacksapi.emulator import Emulator

    with EmulatorServer(Emulator()) as server:  # real time: the cancels really take 15 s
        em = server.emulator
        doomed, kept = em.create_jobs(150), em.create_jobs(50)
        dispatcher = sim(server, hold_all=True, cancel_delay=0.1)
        cfg = config(max_in_flight=200, page_size=200, reservation_expiry_seconds=10)
        async with AsyncClient(server.token, base_url=server.base_url) as client:
            run = start(client, cfg, dispatcher)
            await run.until(lambda: len(dispatcher.dispatched) == 200, limit=30)
            for job in doomed:
                em.cancel_job(job)
            await run.until(lambda: len(dispatcher.cancelled) == 150, limit=60)
            # two renewals each: ~13 s of holding, across the cancels and after them
            await run.until(
                lambda: all(em.job(j).reservations[-1].extended >= 2 for j in kept), limit=40
            )
            for job in kept:
                dispatcher.release(job)
            await run.until(lambda: all(state(server, j) == "finished" for j in kept), limit=30)
            await run.stop()
        assert not any(lapsed(server, j) for j in kept)
        assert all(len(em.job(j).reservations) == 1 for j in kept)
        assert all(state(server, j) == "canceled" for j in doomed)
