"""The Stack loop against an emulator whose Stacks API fails on purpose (fault injection).

Regression found by the chaos suite: a finish that failed for a passing reason (a 500, a dropped
connection) was remembered as done, so when the job came back after its reservation lapsed and
its dispatch failed again, the stack never finished it: the job cycled through the queue forever.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stack_helpers import config, sim, start, state

from stacksapi import AsyncClient, RetryPolicy
from stacksapi.emulator import Emulator, EmulatorServer, FaultConfig, FaultRates, ManualClock
from stacksapi.stack import EventKind

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def faults() -> FaultConfig:
    return FaultConfig(seed=1, per_endpoint={"finish_job": FaultRates(error_500=1.0)})


@pytest.fixture
def server(clock: ManualClock, faults: FaultConfig) -> Iterator[EmulatorServer]:
    emulator = Emulator(clock=clock, rate_limits=False)  # the clock stands still: no windows
    with EmulatorServer(emulator, middleware=[faults.middleware()]) as running:
        yield running


async def test_a_finish_that_failed_for_a_passing_reason_is_tried_again(
    server: EmulatorServer, clock: ManualClock, faults: FaultConfig
) -> None:
    em = server.emulator
    job = em.create_job()
    dispatcher = sim(server, fail={job})
    async with AsyncClient(
        server.token, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)
    ) as client:
        run = start(client, config(reservation_expiry_seconds=10), dispatcher)
        await run.until(lambda: faults.counts().get("finish_job", {}).get("500", 0) >= 1)
        assert state(server, job) == "reserved"  # the finish failed: the job is still held
        faults.per_endpoint = {}  # the API recovers
        clock.advance(11)  # the reservation lapses, the job lists again, its dispatch fails again
        await run.until(lambda: state(server, job) == "finished")
        await run.stop()
    finish = em.job(job).finish
    assert finish is not None
    assert finish.by == "stack test-stack"
    assert finish.detail is not None
    assert "image 'missing:latest' not found" in finish.detail
    assert dispatcher.dispatched == [job]  # the finish was retried: the job never came back
    assert run.kinds(job).count(EventKind.FINISHED_BY_STACK) == 1


async def test_a_failed_finish_is_retried_until_it_lands_and_the_job_is_held_meanwhile(
    server: EmulatorServer, faults: FaultConfig
) -> None:
    em = server.emulator
    job = em.create_job()
    dispatcher = sim(server, fail={job})
    async with AsyncClient(
        server.token, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)
    ) as client:
        run = start(client, config(), dispatcher)
        await run.until(lambda: faults.counts().get("finish_job", {}).get("500", 0) >= 2)
        assert job in run.stack.in_flight  # held (not released) while its finish is due
        assert state(server, job) == "reserved"
        faults.per_endpoint = {}  # the API recovers; no time passes: no reservation lapses
        await run.until(lambda: state(server, job) == "finished")
        await run.until(lambda: job not in run.stack.in_flight)
        await run.stop()
    finish = em.job(job).finish
    assert finish is not None
    assert finish.signal_reason == "stack_error"
    assert dispatcher.dispatched == [job]  # finished from the first failure: never re-dispatched
