"""A stack the server no longer knows (404 on poll or reserve) registers again and keeps going.

Issue 9, item 4: the process used to exit 1 ("polling failed permanently: 404") and abandon the
work it held; a replica's deregistration (two processes with one key, item 7) did the same.
"""

from __future__ import annotations

import logging

import pytest
from stack_helpers import config, sim, start, state

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import EventKind

pytestmark = pytest.mark.anyio


async def test_a_stack_the_server_forgot_registers_again_and_keeps_its_work(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    em = stacks_emulator.emulator
    held = em.create_job()
    dispatcher = sim(stacks_emulator, hold={held})
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: held in dispatcher.dispatched)
    caplog.set_level(logging.WARNING, logger="stacksapi.stack")
    await async_stacks_client.deregister_stack("test-stack")  # the server forgets the stack
    later = em.create_job()
    await run.until(lambda: state(stacks_emulator, later) == "finished")
    assert [s.key for s in em.list_stacks()] == ["test-stack"]  # registered again
    assert run.task is not None
    assert not run.task.done()
    dispatcher.release(held)  # the work held across the gap is still watched and ends
    await run.until(lambda: held not in run.stack.in_flight)
    result = await run.stop()
    assert result.ok, result.reason
    assert run.stack.metrics.counts["stack_reregistered"] >= 1
    assert run.kinds().count(EventKind.REGISTERED) >= 2
    assert any("registering again" in r.getMessage() for r in caplog.records)
