"""``/healthz``, ``/readyz`` and ``/metrics`` over real HTTP, from a stack running on the emulator.

Ready means registered and polling: not before registration succeeds, not while polls fail for
longer than ``stale_after``, not while stopping. Live means the loop answers and the stack has
not stopped for good. The server is gone once the stack has stopped.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx2
import pytest
from stack_helpers import config, sim, start, state

from stacksapi import APIConnectionError, AsyncClient
from stacksapi import Stack as StackInfo
from stacksapi.emulator import EmulatorServer

pytestmark = pytest.mark.anyio


class GatedClient:
    """The real client; registration waits for ``registered``, polls fail while ``down``."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self.register_gate = asyncio.Event()
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def register_stack(self, *args: Any, **kwargs: Any) -> StackInfo:
        await self.register_gate.wait()
        return await self._client.register_stack(*args, **kwargs)

    async def list_scheduled_jobs(self, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise APIConnectionError("connection refused", method="GET", url="http://x/jobs")
        return await self._client.list_scheduled_jobs(*args, **kwargs)


async def probe(http: httpx2.AsyncClient, port: int, path: str) -> tuple[int, str]:
    response = await http.get(f"http://127.0.0.1:{port}{path}")
    return response.status_code, response.text


async def wait_for_answer(
    http: httpx2.AsyncClient, port: int, path: str, status: int, limit: float = 20.0
) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    last: tuple[int, str] = (0, "")
    while loop.time() < deadline:
        last = await probe(http, port, path)
        if last[0] == status:
            return last[1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} answered {last} instead of {status} within {limit}s")


async def test_probes_follow_registration_polling_and_stopping(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    job = stacks_emulator.emulator.create_job()
    client = GatedClient(async_stacks_client)
    run = start(client, config(metrics_port=0), sim(stacks_emulator))  # type: ignore[arg-type]
    run.stack.health.stale_after = 1.0
    async with httpx2.AsyncClient(timeout=10) as http:
        await run.until(lambda: run.stack.status.port is not None)
        port = run.stack.status.port
        assert port is not None
        # Listening before registration: alive, not ready.
        assert await probe(http, port, "/healthz") == (200, "ok: running\n")
        assert await probe(http, port, "/readyz") == (503, "not ok: not registered yet\n")
        client.register_gate.set()
        text = await wait_for_answer(http, port, "/readyz", 200)
        assert text == "ok: registered and polling\n"
        await run.until(lambda: state(stacks_emulator, job) == "finished")
        metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'stacksapi_jobs_dispatched_total{stack="test-stack"} 1.0' in metrics
        # The API goes away: still alive (it retries), no longer ready once polls are stale.
        client.down = True
        text = await wait_for_answer(http, port, "/readyz", 503)
        assert text.startswith("not ok: no successful poll for ")
        assert (await probe(http, port, "/healthz"))[0] == 200
        client.down = False
        await wait_for_answer(http, port, "/readyz", 200)
        head = await http.head(f"http://127.0.0.1:{port}/readyz")
        assert head.status_code == 200
        result = await run.stop()
        assert result.ok
        with pytest.raises(httpx2.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/healthz")


async def test_a_permanent_error_fails_liveness_until_the_process_exits(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    run = start(async_stacks_client, config(metrics_port=0), sim(stacks_emulator))
    await run.until(lambda: run.stack.health.registered)
    assert run.stack.health.live() == (True, "running")
    run.stack.health.failed = "polling failed permanently: 401"
    port = run.stack.status.port
    assert port is not None
    async with httpx2.AsyncClient(timeout=10) as http:
        status, text = await probe(http, port, "/healthz")
        assert (status, text) == (503, "not ok: stopped: polling failed permanently: 401\n")
        assert (await probe(http, port, "/readyz"))[0] == 503
    await run.stop()


async def test_a_taken_port_is_logged_and_the_stack_runs_on(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    job = stacks_emulator.emulator.create_job()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = start(async_stacks_client, config(metrics_port=port), sim(stacks_emulator))
        await run.until(lambda: state(stacks_emulator, job) == "finished")
        assert run.stack.status.port is None
        assert (await run.stop()).ok
