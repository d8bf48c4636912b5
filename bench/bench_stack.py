"""Benchmark of the stack runtime against the emulator with the documented rate limits on.

A dispatcher that starts nothing (it reports each agent done at once) isolates the runtime's own
cost: polling, reserving, issuing tokens, notifications, bookkeeping. The emulator runs in a
child process so the CPU figures are the runtime's (plus its HTTP client). Printed:

- jobs dispatched per second, and its ratio to two baselines from the same run: the bound the
  documented limits allow (1000-job pages, 10 requests/s per scope, so 10,000 jobs/s for list,
  reserve and tokens alike, but one ``get_job`` per dispatch at 1000/s: 1,000 jobs/s per stack
  key) and a bare client loop (list, reserve, tokens, nothing else) paced by the same limiter;
- CPU seconds per 1,000 jobs; 429 responses (must be 0); time from a job's creation
  (``scheduled_at``) to its dispatch, p50 and p99.

Then many stacks on one queue: stacks of ``--capacity`` jobs in flight each (default 100, a
host's worth of agents), first one alone, then ``--stacks`` of them (distinct keys) sharing the
queue, twice: with the runtime's selection spreading, and with it off (every stack chasing the
oldest jobs, the old behaviour) as the baseline. For each: jobs/s as a fraction of the bound
(10 polls/s per key, each taking at most the stack's capacity) and of one stack's (target
>= 0.8), losing reserve attempts per job (target <= 0.5), creation-to-dispatch p50/p99, CPU
seconds per 1,000 jobs. The emulator is one Python process: with many stacks it, not the
limits, is the bottleneck, so the fraction of the bound falls as stacks are added.

Run: ``.venv/bin/python bench/bench_stack.py [--jobs 10000] [--stacks 10]``
(``--stacks 1`` skips the multi-stack part). Not run in CI.
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
from typing import Any

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
from stacksapi.stack._spreading import Spreading

_SERVER = """
import sys
from stacksapi.emulator import Emulator, EmulatorServer
token, admin = sys.argv[1], sys.argv[2]
with EmulatorServer(Emulator(tokens=[token], admin_token=admin)) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""

SHOW_JOB_LIMIT = 1000  # get_job per second per stack key: each dispatch fetches its job once


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


async def stack_run(
    emu: Emulated, jobs: int, *, stacks: int = 1, capacity: int = 20_000, spread: bool = True
) -> dict[str, float]:
    """``stacks`` stacks with distinct keys, ``capacity`` jobs in flight each, share a queue."""
    waits: list[float] = []
    times: list[float] = []
    runs: list[Stack] = []

    def on_event(event: StackEvent) -> None:
        if event.kind is EventKind.DISPATCHED:
            times.append(time.perf_counter())
            waits.append(float(event.data["wait"]))
            if len(times) >= jobs:
                for stack in runs:
                    stack.request_stop()

    config = StackConfig(
        key="bench", max_in_flight=capacity, page_size=1000, max_pages=5, poll_interval=0.2,
        shutdown_grace=0,
    )  # fmt: skip
    clients = [AsyncClient(emu.token, base_url=emu.url + "/v3/") for _ in range(stacks)]
    for i, client in enumerate(clients):
        key = "bench" if stacks == 1 else f"bench-{i}"
        stack = Stack(client, config.with_overrides(key=key), NullDispatcher(), on_event=on_event)
        if not spread:
            stack._poller.spreading = Spreading(max_width=1.0)  # the baseline: oldest-first
        runs.append(stack)
    cpu0, began = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(stack.run_async() for stack in runs))
    cpu = time.process_time() - cpu0
    for client in clients:
        await client.aclose()
    assert all(r.ok for r in results), [r.reason for r in results]
    elapsed = times[-1] - began
    waits.sort()
    lost = sum(stack.metrics.counts["jobs_not_reserved"] for stack in runs)
    return {
        "stacks": stacks,
        "dispatched": len(times),
        "jobs_per_s": len(times) / elapsed,
        "cpu_s_per_1000": cpu / len(times) * 1000,
        "wait_p50_s": statistics.median(waits),
        "wait_p99_s": waits[int(len(waits) * 0.99) - 1],
        "api_calls": sum(sum(stack.metrics.api_calls.values()) for stack in runs),
        "losing_attempts_per_job": lost / len(times),
    }


def bound(stacks: int, capacity: int) -> float:
    """Jobs/s the documented limits allow per stack key: 10 polls/s, each taking at most a
    1000-job page or the stack's capacity, and one ``get_job`` per job (1000/s)."""
    return stacks * min(10 * min(1000, capacity), SHOW_JOB_LIMIT)


def print_run(title: str, figures: dict[str, float], one: float | None) -> None:
    print(f"\n{title}")
    ratio_one = f", {figures['jobs_per_s'] / one:.2f} of one stack's" if one else ""
    print(
        f"  jobs/s:                   {figures['jobs_per_s']:.0f} "
        f"({figures['ratio_to_bound']:.2f} of the bound {figures['bound']:.0f}{ratio_one})"
    )
    print(f"  losing reserve attempts:  {figures['losing_attempts_per_job']:.2f} per job")
    print(
        f"  creation to dispatch:     p50 {figures['wait_p50_s']:.2f} s, "
        f"p99 {figures['wait_p99_s']:.2f} s (all jobs created at once)"
    )
    print(f"  CPU seconds per 1000 jobs: {figures['cpu_s_per_1000']:.3f}")
    print(f"  429 responses:            {figures['http_429']:.0f} (must be 0)")  # fmt: skip


def measured(emu: Emulated, jobs: int, **kwargs: Any) -> dict[str, float]:
    emu.reset()
    emu.create_jobs(jobs)
    figures = asyncio.run(stack_run(emu, jobs, **kwargs))
    figures["http_429"] = count_429(emu.counters())
    figures["bound"] = bound(int(figures["stacks"]), kwargs.get("capacity", 20_000))
    figures["ratio_to_bound"] = figures["jobs_per_s"] / figures["bound"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--stacks", type=int, default=10, help="stacks sharing the queue")
    parser.add_argument("--capacity", type=int, default=100, help="jobs in flight per stack")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    emu = Emulated()
    report: dict[str, Any] = {}
    try:
        emu.create_jobs(args.jobs)
        bare = asyncio.run(bare_loop(emu, args.jobs))
        report["one_stack"] = big = measured(emu, args.jobs)
        if args.stacks > 1:
            report["one_small_stack"] = measured(emu, args.jobs, capacity=args.capacity)
            for name, spread in (("spread", True), ("oldest_first", False)):
                report[f"{args.stacks}_stacks_{name}"] = measured(
                    emu, args.jobs, stacks=args.stacks, capacity=args.capacity, spread=spread
                )
    finally:
        emu.close()
    big["bare_loop_jobs_per_s"] = bare
    big["ratio_to_bare_loop"] = big["jobs_per_s"] / bare
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.jobs} jobs; bare client loop {bare:.0f} jobs/s")
    print_run("1 stack, 20000 in flight", big, None)
    print(f"  ratio to the bare loop:   {big['ratio_to_bare_loop']:.2f}")
    print(f"  API calls by the stack:   {big['api_calls']:.0f}")
    if args.stacks > 1:
        one = report["one_small_stack"]
        spread = report[f"{args.stacks}_stacks_spread"]
        oldest = report[f"{args.stacks}_stacks_oldest_first"]
        n, cap = args.stacks, args.capacity
        print_run(f"1 stack, {cap} in flight", one, None)
        print_run(f"{n} stacks of {cap}, one queue (selection spread)", spread, one["jobs_per_s"])
        print_run(f"{n} stacks of {cap}, one queue (baseline: all oldest-first)", oldest,
                  one["jobs_per_s"])  # fmt: skip
        lose, base_lose = spread["losing_attempts_per_job"], oldest["losing_attempts_per_job"]
        rate, base_rate = (
            spread["jobs_per_s"] / one["jobs_per_s"],
            oldest["jobs_per_s"] / one["jobs_per_s"],
        )
        print(f"\n{n} stacks: {lose:.2f} losing attempts per job (baseline {base_lose:.2f}; "
              f"target <= 0.5), throughput {rate:.2f} of one stack's (baseline {base_rate:.2f};"
              " target >= 0.8)")  # fmt: skip


if __name__ == "__main__":
    main()
