"""Benchmark: our client against Buildkite's Go client, side by side, against one fast server.

The server is bench_client's static uvicorn app (a small job, a 1000-job page) pinned to one
core; each client runs pinned to the other, one at a time, rounds alternating. Printed: rate of
``get_job`` calls (sync) and of 1000-job pages (decode included, garbage collector on, as in real
use) for both clients and their ratio; the async client's cost per call against the sync one, alone
and with 32 calls in flight. Targets: pages >= 1.5x Go's rate, ``get_job`` >= 0.5x Go's rate,
async <= 1.3x the sync cost per call.

The Go side is a small program of ours in ``bench/go/`` built against the Go client; pass its
binary with ``--go PATH`` (or ``STACKSAPI_GO_BENCH``). Without one, only the Python figures and
the async ratios are printed. Run: ``uv run python bench/bench_vs_go.py [--quick] [--go PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from stacksapi import AsyncClient, Client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_client import start_server

HERE = Path(__file__).resolve().parent
TOKEN = "bkct_benchmark0000000000"
SERVER_CORE, CLIENT_CORE = 0, 1


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def _python_round(base_url: str, calls: int, pages: int) -> dict[str, float]:
    with Client(TOKEN, base_url=base_url) as client:
        for _ in range(calls // 10 + 1):
            client.get_job("s", "j-1")
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(calls):
            client.get_job("s", "j-1")
        per_call = (time.perf_counter() - start) / calls
        per_call_cpu = (time.process_time() - cpu) / calls
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(pages):
            page = client.list_scheduled_jobs("s", queue_key="q")
            assert len(page.jobs) == 1000
        per_page = (time.perf_counter() - start) / pages
        per_page_cpu = (time.process_time() - cpu) / pages
    return {
        "get_job": per_call,
        "page": per_page,
        "get_job_cpu": per_call_cpu,
        "page_cpu": per_page_cpu,
    }


async def _async_round(base_url: str, calls: int, in_flight: int) -> float:
    """Seconds per get_job call through AsyncClient with ``in_flight`` calls at a time."""
    async with AsyncClient(TOKEN, base_url=base_url) as client:
        for _ in range(calls // 10 + 1):
            await client.get_job("s", "j-1")

        async def worker(n: int) -> None:
            for _ in range(n):
                await client.get_job("s", "j-1")

        start = time.perf_counter()
        await asyncio.gather(*(worker(calls // in_flight) for _ in range(in_flight)))
        return (time.perf_counter() - start) / (calls // in_flight * in_flight)


def _sync_threads_round(base_url: str, calls: int, threads: int) -> float:
    """Seconds per get_job call through one Client shared by ``threads`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    with Client(TOKEN, base_url=base_url) as client:
        client.get_job("s", "j-1")

        def worker(n: int) -> None:
            for _ in range(n):
                client.get_job("s", "j-1")

        start = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(worker, [calls // threads] * threads))
        return (time.perf_counter() - start) / (calls // threads * threads)


def _go_round(binary: str, base_url: str, calls: int, pages: int) -> dict[str, float]:
    out = subprocess.run(
        [binary, base_url, str(calls), str(pages)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _line(name: str, ours: float, theirs: float, target: float, higher: bool) -> float:
    ratio = ours / theirs
    ok = ratio >= target if higher else ratio <= target
    sign = ">=" if higher else "<="
    print(
        f"{name:<44} ours {ours:10.1f}  baseline {theirs:10.1f}  ratio {ratio:5.2f}x "
        f"(target {sign} {target}x: {'ok' if ok else 'MISSED'})"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--go", default=os.environ.get("STACKSAPI_GO_BENCH"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, calls, pages = (3, 500, 10) if args.quick else (7, 3000, 60)

    server, base_url = start_server(preexec_fn=lambda: _pin(SERVER_CORE))
    try:
        _pin(CLIENT_CORE)
        print(f"server {base_url} on core {SERVER_CORE}; clients on core {CLIENT_CORE}")
        print(f"rounds={rounds} calls/round={calls} pages/round={pages}\n")

        py: list[dict[str, float]] = []
        go: list[dict[str, float]] = []
        sync_alone, async_alone, sync_32, async_32 = [], [], [], []
        for _ in range(rounds):
            if args.go:
                go.append(_go_round(args.go, base_url, calls, pages))
            py.append(_python_round(base_url, calls, pages))
            sync_alone.append(py[-1]["get_job"])
            async_alone.append(asyncio.run(_async_round(base_url, calls, 1)))
            sync_32.append(_sync_threads_round(base_url, calls, 32))
            async_32.append(asyncio.run(_async_round(base_url, calls, 32)))

        def med(rows: list[dict[str, float]], key: str) -> float:
            return statistics.median(r[key] for r in rows)

        print("rates per second (median round)")
        summary: dict[str, float] = {}
        if go:
            summary["get_job_vs_go"] = _line(
                "get_job, sync Client vs Go client",
                1 / med(py, "get_job"),
                1 / med(go, "get_job"),
                0.5,
                higher=True,
            )
            summary["page_vs_go"] = _line(
                "1000-job page vs Go client",
                1 / med(py, "page"),
                1 / med(go, "page"),
                1.5,
                higher=True,
            )
            print("\nCPU time of the client process per call (median round; lower is cheaper)")
            for key, label in (("get_job_cpu", "get_job"), ("page_cpu", "1000-job page")):
                ours, theirs = med(py, key) * 1e6, med(go, key) * 1e6
                summary[f"{key}_go_over_ours"] = theirs / ours
                print(
                    f"{label:<44} ours {ours:8.1f} us  Go client {theirs:8.1f} us  "
                    f"Go/ours {theirs / ours:5.2f}x (>1: ours is cheaper)"
                )
        else:
            print("(no Go benchmark binary: pass --go PATH; see bench/go/README.md)")
            print(f"get_job, sync Client: {1 / med(py, 'get_job'):10.1f}/s")
            print(f"1000-job page:        {1 / med(py, 'page'):10.1f}/s")
        print("\ncost per call in microseconds (median round)")
        summary["async_vs_sync_alone"] = _line(
            "get_job, AsyncClient vs Client, alone",
            statistics.median(async_alone) * 1e6,
            statistics.median(sync_alone) * 1e6,
            1.3,
            higher=False,
        )
        summary["async_vs_sync_32"] = _line(
            "get_job, 32 in flight: async vs 32 threads",
            statistics.median(async_32) * 1e6,
            statistics.median(sync_32) * 1e6,
            1.3,
            higher=False,
        )
        print("\nsummary: " + ", ".join(f"{k}={v:.2f}x" for k, v in summary.items()))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
