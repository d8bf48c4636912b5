"""The runtime against a server stricter than the documented limits: it backs off and goes on."""

from __future__ import annotations

from typing import Any

import pytest
from stack_helpers import config, sim, start, state

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def stacks_emulator_options() -> dict[str, Any]:
    return {"rate_limits": {"list-scheduled-jobs": 3}}


async def test_backs_off_when_the_server_rate_limits(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    # The server allows 3 list calls per second, the runtime budgets for the documented 10.
    em = stacks_emulator.emulator
    jobs = em.create_jobs(10)  # one poll per job at least: more than 3 in the first second
    cfg = config(poll_interval=0.01, max_in_flight=1)
    run = start(async_stacks_client, cfg, sim(stacks_emulator))
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    result = await run.stop()
    assert result.ok
    counts = stacks_emulator.emulator.counters()["list_scheduled_jobs"]
    assert counts.get(429, 0) >= 1  # the stricter server did push back
