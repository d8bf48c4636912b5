"""Benchmark of the stack runtime against the emulator with the documented rate limits on.

A dispatcher that starts nothing (it reports each agent done at once) isolates the runtime's own
cost: polling, reserving, issuing tokens, notifications, bookkeeping. The emulator runs in a
child process so the CPU figures are the runtime's (plus its HTTP client). Printed:

- jobs dispatched per second, and its ratio to two baselines from the same run: the bound the
  documented limits allow (1000-job pages, 10 requests/s per scope, so 10,000 jobs/s for list,
  reserve and tokens alike) and a bare client loop (list, reserve, tokens, nothing else) paced
  by the same limiter;
- CPU seconds per 1,000 jobs; 429 responses (must be 0); time from a job's creation
  (``scheduled_at``) to its dispatch, p50 and p99.

Run: ``.venv/bin/python bench/bench_stack.py [--jobs 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Collection

import httpx2

from stacksapi import AsyncClient
from stacksapi.stack import (
    AgentExit,
    DispatchRequest,
    DispatchSink,
    EventKind,
    Stack,
    StackConfig,
    StackEvent,
)
from stacksapi.stack._ratelimit import RateLimiter

_SERVER = """
import sys
from stacksapi.emulator import Emulator, EmulatorServer
token, admin = sys.argv[1], sys.argv[2]
with EmulatorServer(Emulator(tokens=[token], admin_token=admin)) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""

DOCUMENTED_BOUND = 10 * 1000  # jobs/s: 1000-job pages at 10 requests/s per scope


class NullDispatcher:
    """Starts nothing: every agent is reported done the moment it is dispatched."""

    def __init__(self) -> None:
        self.sink: DispatchSink | None = None

    async def start(self, sink: DispatchSink) -> Collection[str]:
        self.sink = sink
        return ()

    async def dispatch(self, request: DispatchRequest) -> None:
        assert self.sink is not None
        self.sink.agent_ended(AgentExit(request.job_uuid, 0))

    async def cancel(self, job_uuid: str, reason: str) -> None:
        assert self.sink is not None
        self.sink.agent_ended(AgentExit(job_uuid, None))

    async def shutdown(self, grace: float) -> None:
        return None


class Emulated:
    """The emulator in a child process, driven over its admin API."""

    def __init__(self) -> None:
        self.token = "bkct_" + secrets.token_hex(16)
        self.admin = "bkemu_" + secrets.token_hex(16)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, self.token, self.admin],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        self.http = httpx2.Client(
            base_url=self.url + "/_emulator/",
            headers={"Authorization": f"Token {self.admin}"},
            timeout=120,
        )

    def create_jobs(self, count: int) -> None:
        for start in range(0, count, 5000):
            n = min(5000, count - start)
            r = self.http.post("jobs/bulk", json={"count": n, "spec": {"command": "true"}})
            r.raise_for_status()

    def counters(self) -> dict[str, dict[str, int]]:
        data: dict[str, dict[str, int]] = self.http.get("counters").json()
        return data

    def reset(self) -> None:
        self.http.post("reset").raise_for_status()

    def close(self) -> None:
        self.http.close()
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def count_429(counters: dict[str, dict[str, int]]) -> int:
    return sum(per.get("429", 0) for per in counters.values())


async def bare_loop(emu: Emulated, jobs: int) -> float:
    """Baseline: list 1000, reserve, issue tokens, as fast as the same limiter allows."""
    limiter = RateLimiter(0.9)
    done = 0
    async with AsyncClient(emu.token, base_url=emu.url + "/v3/") as client:
        await client.register_stack("bare", queue_key="__default__")
        began = time.perf_counter()
        while done < jobs:
            await limiter.acquire("list_scheduled_jobs")
            page = await client.list_scheduled_jobs("bare", queue_key="__default__", limit=1000)
            if not page.jobs:
                break
            await limiter.acquire("batch_reserve_jobs")
            ids = [j.id for j in page.jobs]
            res = await client.batch_reserve_jobs("bare", ids, reservation_expiry_seconds=900)
            await limiter.acquire("issue_job_acquisition_tokens")
            await client.issue_job_acquisition_tokens("bare", list(res.reserved))
            done += len(res.reserved)
        elapsed = time.perf_counter() - began
        await client.deregister_stack("bare")
    return done / elapsed


async def stack_run(emu: Emulated, jobs: int) -> dict[str, float]:
    waits: list[float] = []
    times: list[float] = []

    def on_event(event: StackEvent) -> None:
        if event.kind is EventKind.DISPATCHED:
            times.append(time.perf_counter())
            waits.append(float(event.data["wait"]))
            if len(times) >= jobs:
                stack.request_stop()

    config = StackConfig(
        key="bench",
        max_in_flight=20_000,
        page_size=1000,
        max_pages=5,
        poll_interval=0.2,
        shutdown_grace=0,
    )
    async with AsyncClient(emu.token, base_url=emu.url + "/v3/") as client:
        stack = Stack(client, config, NullDispatcher(), on_event=on_event)
        cpu0, began = time.process_time(), time.perf_counter()
        result = await stack.run_async()
        cpu = time.process_time() - cpu0
    assert result.ok, result.reason
    elapsed = times[-1] - began
    waits.sort()
    return {
        "dispatched": len(times),
        "jobs_per_s": len(times) / elapsed,
        "cpu_s_per_1000": cpu / len(times) * 1000,
        "wait_p50_s": statistics.median(waits),
        "wait_p99_s": waits[int(len(waits) * 0.99) - 1],
        "api_calls": sum(stack.metrics.api_calls.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    emu = Emulated()
    try:
        emu.create_jobs(args.jobs)
        bare = asyncio.run(bare_loop(emu, args.jobs))
        emu.reset()
        emu.create_jobs(args.jobs)
        figures = asyncio.run(stack_run(emu, args.jobs))
        figures["http_429"] = count_429(emu.counters())
    finally:
        emu.close()
    figures["bare_loop_jobs_per_s"] = bare
    figures["ratio_to_documented_bound"] = figures["jobs_per_s"] / DOCUMENTED_BOUND
    figures["ratio_to_bare_loop"] = figures["jobs_per_s"] / bare
    if args.json:
        print(json.dumps(figures))
        return
    print(f"jobs dispatched:            {figures['dispatched']:.0f}")
    print(f"jobs dispatched per second: {figures['jobs_per_s']:.0f}")
    print(f"  documented bound:         {DOCUMENTED_BOUND} jobs/s "
          f"-> ratio {figures['ratio_to_documented_bound']:.2f} (target >= 0.20)")  # fmt: skip
    print(f"  bare client loop:         {bare:.0f} jobs/s "
          f"-> ratio {figures['ratio_to_bare_loop']:.2f}")  # fmt: skip
    print(f"CPU seconds per 1000 jobs:  {figures['cpu_s_per_1000']:.3f}")
    print(f"429 responses:              {figures['http_429']:.0f} (must be 0)")
    print(f"creation to dispatch:       p50 {figures['wait_p50_s']:.2f} s, "
          f"p99 {figures['wait_p99_s']:.2f} s (all jobs created at once)")  # fmt: skip
    print(f"API calls by the stack:     {figures['api_calls']:.0f}")


if __name__ == "__main__":
    main()
