"""An agent command that cannot start does not fail the queue (issue 9, item 8).

The same error across consecutive jobs is about the infrastructure, not the jobs: the breaker
trips, the stack stops taking jobs and lets what it holds go back to the queue unfailed, backs
off, says so (an event, a metric, a log line), and resumes once a probe dispatch succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest
from stack_helpers import Run, config, state

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import EventKind, SubprocessConfig, SubprocessDispatcher

pytestmark = pytest.mark.anyio


async def test_a_missing_agent_command_trips_the_breaker_instead_of_failing_the_queue(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(20)
    agent = tmp_path / "bin" / "agent"  # does not exist yet: "No such file or directory"
    sub = SubprocessConfig(
        command=(str(agent), "{job_uuid}"),
        env={"BUILDKITE_AGENT_ENDPOINT": stacks_emulator.base_url.rstrip("/")},
        work_dir=str(tmp_path / "work"),
        kill_grace=2.0,
    )
    caplog.set_level(logging.WARNING, logger="stacksapi.stack")
    cfg = config(subprocess=sub, reservation_expiry_seconds=10, breaker_backoff_seconds=0.5)
    run = Run(async_stacks_client, cfg, SubprocessDispatcher(sub))
    run.task = asyncio.create_task(run.stack.run_async())
    await run.until(lambda: EventKind.BREAKER_OPEN in run.kinds())
    await asyncio.sleep(1.0)  # several backoffs and failed probes
    failed = [j for j in jobs if state(stacks_emulator, j) == "finished"]
    assert len(failed) <= 1  # at most the first failure of the streak, before it was a streak
    assert run.stack.metrics.counts["breaker_trips"] == 1
    assert run.stack.breaker_open
    assert any("breaker open" in r.getMessage() for r in caplog.records)
    # the operator installs the agent: the next probe succeeds and the queue drains
    agent.parent.mkdir(parents=True, exist_ok=True)
    agent.write_text(f"#!/bin/sh\nexec {sys.executable} -m stacksapi.emulator._agent start "
                     '--acquire-job "$1"\n')  # fmt: skip
    agent.chmod(0o755)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs), 90)
    assert EventKind.BREAKER_CLOSED in run.kinds()
    assert not run.stack.breaker_open
    assert (await run.stop()).ok
    finishes = [em.job(j).finish for j in jobs]
    ok = [f for f in finishes if f is not None and f.exit_status == 0]
    assert len(ok) >= len(jobs) - 1
