"""Memory is bounded over days: every per-job record the runtime keeps has a bound (item 12).

The stack remembers jobs it finished (so it finishes each once) and jobs it filtered (so it
reports each once). Both used to grow with every job ever seen (the filtered set was cleared
wholesale at 100,000); now each keeps at most ``job_memory`` entries, oldest forgotten first.
"""

from __future__ import annotations

import pytest
from stack_helpers import config, sim, start, state

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer

pytestmark = pytest.mark.anyio


async def test_records_of_finished_and_filtered_jobs_stay_within_their_bound(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    failing = em.create_jobs(150)
    em.create_jobs(150, agent_query_rules=["os=windows"])
    cfg = config(max_in_flight=50, job_memory=100, page_size=500, breaker_threshold=0)
    run = start(async_stacks_client, cfg, sim(stacks_emulator, fail=set(failing)))
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in failing), 60)
    await run.until(lambda: run.stack.metrics.counts["jobs_filtered"] >= 100)
    memory = run.stack.job_records
    assert (await run.stop()).ok
    assert 0 < memory["finished"] <= 100
    assert 0 < memory["filtered"] <= 100
    assert run.stack.metrics.counts["jobs_finished_by_stack"] == 150
