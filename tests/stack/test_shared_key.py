"""Two processes with one stack key: never a job run twice, never a job failed because of it.

Issue 9, item 7. Both processes reserve the same job (a reserve by the same key extends the
reservation), both dispatch, one agent loses the acquire race: that is recognised as a lost race,
warned about loudly and counted, never reported as a failed job. One replica's deregistration
(a rolling update) no longer stops the other.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import anyio
import pytest
from stack_helpers import Run, accepted_count, config, sim, start, state

from stacksapi import AsyncClient
from stacksapi._models import RegisterStackRequest, ReserveJobsRequest
from stacksapi.emulator import Emulator, EmulatorServer
from stacksapi.emulator._api import deregister_stack, register_stack, reserve_jobs
from stacksapi.stack import EventKind, SubprocessConfig, SubprocessDispatcher

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


REFUSALS = {
    "acquire rejected, exit 27": None,
    "token refused, 401 in the output": (
        1,
        "fatal: failed to register: POST http://127.0.0.1/v3/register: 401 Unauthorized",
    ),
}


@pytest.mark.parametrize("refused_as", REFUSALS.values(), ids=REFUSALS.keys())
async def test_an_agent_refused_while_its_job_is_reserved_again_is_dispatched_again(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
    refused_as: tuple[int, str] | None,
) -> None:
    """Another process with this key deregisters it, and a replacement registers the key and
    reserves the job, all before this stack has seen any sign of it: the job's tokens stopped
    working, so its agent is refused although the key still holds the job (it exits 27, as
    ``buildkite-agent`` does on a rejected acquire, or fails after a ``401 Unauthorized``, as it
    does on a dead token). That is not the job's failure: it is dispatched again, and runs once."""
    em = stacks_emulator.emulator
    [job] = em.create_jobs(1)
    caplog.set_level(logging.WARNING, logger="stacksapi.stack")
    agents = sim(stacks_emulator, hold=[job], refused_as=refused_as)
    run = start(async_stacks_client, config(max_in_flight=1), agents)
    await run.until(lambda: job in agents.dispatched)
    with em.lock:  # atomically, as the server sees it: no poll of ours in between
        _reserved_again_by_a_replacement(em, job)
    agents.release(job)
    await run.until(lambda: state(stacks_emulator, job) == "finished", 30)
    assert (await run.stop()).ok
    assert agents.refused == [job]  # the first agent was refused: its token had stopped working
    assert agents.dispatched == [job, job]
    assert accepted_count(stacks_emulator, job) == 1
    finish = em.job(job).finish
    assert finish is not None
    assert not finish.by.startswith("stack ")
    assert EventKind.FINISHED_BY_STACK not in run.kinds()
    assert run.stack.metrics.counts["acquires_refused"] == 1
    assert any("was refused job" in r.getMessage() for r in caplog.records)  # loud, once


async def test_an_agent_refused_again_and_again_fails_its_job_after_two_more_tries(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    """A refusal is not the job's failure only so far: an agent that is refused on every try (a
    wrong agent token, say) is dispatched again at most twice, then the job is finished."""
    em = stacks_emulator.emulator
    [job] = em.create_jobs(1)
    agents = sim(stacks_emulator, wrong_token=[job])
    run = start(async_stacks_client, config(max_in_flight=1), agents)
    await run.until(lambda: state(stacks_emulator, job) == "finished", 30)
    assert (await run.stop()).ok
    assert agents.dispatched == [job, job, job]
    assert agents.refused == [job, job, job]
    finish = em.job(job).finish
    assert finish is not None
    assert finish.by.startswith("stack ")
    assert run.stack.metrics.counts["acquires_refused"] == 2
    assert run.stack.metrics.counts["shared_key_detected"] == 0  # a refusal is no sign


async def test_a_real_agent_refused_while_its_job_is_reserved_again_runs_it_on_a_second_try(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, tmp_path: Path
) -> None:
    """The same, with the emulated ``buildkite-agent`` as a real process: it exits 27 when its
    acquire is refused, and the job still runs exactly once, unfailed."""
    em = stacks_emulator.emulator
    [job] = em.create_jobs(1, command="echo ran-once")
    gate = tmp_path / "gate"
    agent = tmp_path / "agent"
    agent.write_text(  # the first agent waits at the gate; the next goes straight on
        f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n"
        f'exec {sys.executable} -m stacksapi.emulator._agent start --acquire-job "$1"\n'
    )
    agent.chmod(0o755)
    sub = SubprocessConfig(
        command=(str(agent), "{job_uuid}"),
        env={"BUILDKITE_AGENT_ENDPOINT": stacks_emulator.base_url.rstrip("/")},
        work_dir=str(tmp_path / "work"),
    )
    run = Run(
        async_stacks_client, config(subprocess=sub, max_in_flight=1), SubprocessDispatcher(sub)
    )
    run.task = asyncio.create_task(run.stack.run_async())
    await run.until(lambda: EventKind.DISPATCHED in run.kinds(job))
    with em.lock:
        _reserved_again_by_a_replacement(em, job)
    gate.touch()
    await run.until(lambda: state(stacks_emulator, job) == "finished", 60)
    await run.until(lambda: run.kinds(job).count(EventKind.AGENT_ENDED) == 2)
    assert (await run.stop()).ok
    assert run.kinds(job).count(EventKind.DISPATCHED) == 2
    ended = [e.data["exit_status"] for e in run.events if e.kind is EventKind.AGENT_ENDED]
    assert ended == [27, 0]  # refused, then ran it
    assert accepted_count(stacks_emulator, job) == 1
    finish = em.job(job).finish
    assert finish is not None
    assert not finish.by.startswith("stack ")
    assert run.stack.metrics.counts["acquires_refused"] == 1


def _reserved_again_by_a_replacement(em: Emulator, job: str) -> None:
    """Another process with this key deregisters it (its reservations and tokens end), and a
    replacement registers the key and reserves ``job``. Call it holding ``em.lock``, so that the
    stack under test sees none of it happen."""
    mine = em.stacks["test-stack"]
    again = RegisterStackRequest(key=mine.key, type=mine.type, queue_key=mine.queue_key,
                                 metadata=dict(mine.metadata))  # fmt: skip
    deregister_stack(em, mine.key)
    register_stack(em, again)
    reserve_jobs(em, mine.key, ReserveJobsRequest(job_uuids=[job]))


async def test_an_agent_refused_while_the_stack_drains_lets_its_job_go_unfailed(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    """A stopping stack dispatches nothing again; a job whose agent was refused while the key
    still holds it is still not the job's failure: it is let go, for the key's next holder."""
    em = stacks_emulator.emulator
    [job] = em.create_jobs(1)
    agents = sim(stacks_emulator, hold=[job])
    run = start(async_stacks_client, config(max_in_flight=1, on_shutdown="drain"), agents)
    await run.until(lambda: job in agents.dispatched)
    with em.lock:
        _reserved_again_by_a_replacement(em, job)
    run.stack.request_stop()  # drains: waits for the agent it started (the flag is set at once)
    agents.release(job)
    assert run.task is not None
    with anyio.fail_after(15):
        await run.task
    assert agents.refused == [job]
    assert agents.dispatched == [job]  # not again: the stack was stopping
    assert em.job(job).finish is None  # not failed
    assert state(stacks_emulator, job) in {"reserved", "scheduled"}
