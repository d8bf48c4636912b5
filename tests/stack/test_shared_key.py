"""Two processes with one stack key: never a job run twice, never a job failed because of it.

Issue 9, item 7. Both processes reserve the same job (a reserve by the same key extends the
reservation), both dispatch, one agent loses the acquire race: that is recognised as a lost race,
warned about loudly and counted, never reported as a failed job. One replica's deregistration
(a rolling update) no longer stops the other.
"""

from __future__ import annotations

import logging

import pytest
from stack_helpers import accepted_count, config, sim, start, state

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import EventKind

pytestmark = pytest.mark.anyio


async def test_an_agent_that_loses_the_acquire_race_is_not_a_failed_job(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(40)
    caplog.set_level(logging.WARNING, logger="stacksapi.stack")
    twins = [sim(stacks_emulator), sim(stacks_emulator)]
    runs = [start(async_stacks_client, config(max_in_flight=5), d) for d in twins]
    await runs[0].until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs), 60)
    for run in runs:
        assert (await run.stop()).ok
    assert all(accepted_count(stacks_emulator, j) == 1 for j in jobs)
    finishes = [em.job(j).finish for j in jobs]
    assert not [f for f in finishes if f is not None and f.by.startswith("stack ")]
    lost = sum(r.stack.metrics.counts["acquire_races_lost"] for r in runs)
    assert lost >= 1  # the twins did race (both dispatched some jobs)
    assert len(twins[0].dispatched) + len(twins[1].dispatched) >= len(jobs) + lost
    kinds = [k for r in runs for k in r.kinds()]
    assert kinds.count(EventKind.ACQUIRE_LOST) == lost
    assert EventKind.FINISHED_BY_STACK not in kinds
    assert sum(r.stack.metrics.counts["shared_key_detected"] for r in runs) >= 1
    assert any("another process" in r.getMessage() for r in caplog.records)


async def test_a_replica_stopping_does_not_stop_another_with_the_same_key(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    first = em.create_jobs(10)
    runs = [start(async_stacks_client, config(max_in_flight=3), sim(stacks_emulator))
            for _ in range(2)]  # fmt: skip
    await runs[0].until(lambda: all(state(stacks_emulator, j) == "finished" for j in first), 30)
    assert (await runs[0].stop()).ok  # a rolling update: this replica deregisters the key
    rest = em.create_jobs(20)
    await runs[1].until(lambda: all(state(stacks_emulator, j) == "finished" for j in rest), 30)
    assert runs[1].task is not None
    assert not runs[1].task.done()
    assert (await runs[1].stop()).ok
    assert all(accepted_count(stacks_emulator, j) == 1 for j in first + rest)
    assert runs[1].stack.metrics.counts["stack_reregistered"] >= 1
