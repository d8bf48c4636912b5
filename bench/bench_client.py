"""Benchmark: what the client costs on top of bare httpx2 and raw msgspec, measured in one run.

One local server (uvicorn in a subprocess, 127.0.0.1) serves a small job and a 1000-job page.
Printed: per-call time of ``get_job`` through Client and AsyncClient against bare httpx2 calls of
the same URL, and the 1000-job page through ``list_scheduled_jobs`` against bare httpx2 plus
``msgspec.json.decode`` of the same bytes, plus the decode step alone. Targets: <= 1.3x per call,
<= 1.2x per page. Rounds alternate between client and baseline; the median round is reported.

Run: ``uv run python bench/bench_client.py`` (``--quick`` for a short run).
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import msgspec

from stacksapi import AsyncClient, Client, ScheduledJobsPage
from stacksapi import _core as core

TOKEN = "bkct_benchmark0000000000"
HEADERS = {
    "Authorization": f"Token {TOKEN}",
    "Accept": "application/json",
    "User-Agent": "bench",
}


def _page_bytes(n: int = 1000) -> bytes:
    jobs = [
        {
            "id": f"01890000-0000-7000-8000-{i:012d}",
            "priority": i % 5,
            "agent_query_rules": ["queue=default", "os=linux"],
            "scheduled_at": "2026-01-02T03:04:05.123Z",
            "runnable_at": None,
            "pipeline": {"slug": "app", "uuid": "0189-pipeline"},
            "build": {"uuid": "0189-build", "number": i, "branch": "main"},
            "step": {"key": f"step-{i % 7}"},
        }
        for i in range(n)
    ]
    body = {
        "jobs": jobs,
        "page_info": {"has_next_page": True, "end_cursor": "cursor-1000"},
        "cluster_queue": {"id": "q-1", "dispatch_paused": False},
    }
    return msgspec.json.encode(body)


PAGE = _page_bytes()
JOB = msgspec.json.encode(
    {"id": "j-1", "env": {f"VAR_{i}": "x" * 20 for i in range(20)}, "command": "make test"}
)


# --- the server (subprocess) -------------------------------------------------------------------


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = PAGE if scope["path"].endswith("scheduled-jobs") else JOB
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve() -> None:
    import socket

    import uvicorn

    sock = socket.socket()
    # No Nagle: uvicorn writes head and body apart, and a delayed ACK would add ~40 ms per call.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    config = uvicorn.Config(
        _app, log_level="warning", lifespan="off", access_log=False, interface="asgi3"
    )
    uvicorn.Server(config).run(sockets=[sock])


# --- measuring ---------------------------------------------------------------------------------


def _per_call(fn: Callable[[], object], n: int) -> float:
    gc.collect()
    gc.disable()  # as timeit does: a collection landing in one side's loop is noise
    try:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n
    finally:
        gc.enable()


async def _aper_call(fn: Callable[[], Awaitable[object]], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        return (time.perf_counter() - start) / n
    finally:
        gc.enable()


def _report(name: str, ours: list[float], base: list[float], target: float) -> float:
    """Print the medians over rounds, their ratio and the best-round ratio; return the first."""
    o, b = statistics.median(ours), statistics.median(base)
    ratio = o / b
    best = min(ours) / min(base)
    verdict = "ok" if ratio <= target else "OVER TARGET"
    print(
        f"{name:<46} client {o * 1e6:8.1f} us  baseline {b * 1e6:8.1f} us  "
        f"ratio {ratio:4.2f}x (best rounds {best:4.2f}x; target <= {target}x: {verdict})"
    )
    return ratio


def run(base_url: str, rounds: int, calls: int, pages: int) -> None:
    job_url = base_url + "stacks/s/jobs/j-1"
    page_url = base_url + "stacks/s/scheduled-jobs"
    print(f"server {base_url}  rounds={rounds} calls/round={calls} pages/round={pages}")
    print(f"page: {len(PAGE)} bytes, 1000 jobs; job: {len(JOB)} bytes\n")

    # sync get_job
    ours: list[float] = []
    base: list[float] = []
    with Client(TOKEN, base_url=base_url) as client, httpx2.Client(headers=HEADERS) as http:
        for _ in range(calls // 10):  # warm both connections
            client.get_job("s", "j-1")
            http.get(job_url).read()
        for _ in range(rounds):
            ours.append(_per_call(lambda: client.get_job("s", "j-1"), calls))
            base.append(_per_call(lambda: msgspec.json.decode(http.get(job_url).content), calls))
        r1 = _report("get_job, Client vs httpx2.Client", ours, base, 1.3)

        # the 1000-job page, end to end
        ours, base = [], []
        for _ in range(rounds):
            ours.append(_per_call(lambda: client.list_scheduled_jobs("s", queue_key="q"), pages))
            base.append(
                _per_call(
                    lambda: msgspec.json.decode(
                        http.get(page_url, params={"queue_key": "q"}).content,
                        type=ScheduledJobsPage,
                    ),
                    pages,
                )
            )
        r3 = _report("1000-job page, list_scheduled_jobs vs httpx2", ours, base, 1.2)

    # async get_job
    async def arun() -> float:
        ours: list[float] = []
        base: list[float] = []
        async with (
            AsyncClient(TOKEN, base_url=base_url) as client,
            httpx2.AsyncClient(headers=HEADERS) as http,
        ):
            for _ in range(calls // 10):
                await client.get_job("s", "j-1")
                await (await http.get(job_url)).aread()

            async def bare() -> object:
                return msgspec.json.decode((await http.get(job_url)).content)

            for _ in range(rounds):
                ours.append(await _aper_call(lambda: client.get_job("s", "j-1"), calls))
                base.append(await _aper_call(bare, calls))
        return _report("get_job, AsyncClient vs httpx2.AsyncClient", ours, base, 1.3)

    r2 = asyncio.run(arun())

    # the decode step alone: what list_scheduled_jobs runs on the bytes vs raw msgspec
    call = core.list_scheduled_jobs("s", queue_key="q", limit=None, after=None).calls[0]
    ours, base, untyped = [], [], []
    for _ in range(rounds):
        ours.append(_per_call(lambda: core.decode(call, PAGE), pages))
        base.append(_per_call(lambda: msgspec.json.decode(PAGE, type=ScheduledJobsPage), pages))
        untyped.append(_per_call(lambda: msgspec.json.decode(PAGE), pages))
    r4 = _report("page decode, client vs msgspec (same type)", ours, base, 1.2)
    r5 = _report("page decode, client vs msgspec (untyped dicts)", ours, untyped, 1.2)
    print(
        "\nsummary: "
        + ", ".join(
            f"{k}={v:.2f}x"
            for k, v in {
                "sync_call": r1,
                "async_call": r2,
                "page_e2e": r3,
                "decode_typed": r4,
                "decode_untyped": r5,
            }.items()
        )
    )


def start_server(
    preexec_fn: Callable[[], None] | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """This file's server in a subprocess, answering; its process and base URL."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,  # noqa: PLW1509 - the caller's (CPU affinity), nothing else
    )
    assert proc.stdout is not None
    base_url = f"http://127.0.0.1:{int(proc.stdout.readline())}/v3/"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx2.get(base_url + "stacks/s/jobs/j-1").raise_for_status()
            return proc, base_url
        except httpx2.HTTPError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise
            time.sleep(0.05)


def main() -> None:
    if "--serve" in sys.argv:
        serve()
        return
    quick = "--quick" in sys.argv
    proc, base_url = start_server()
    try:
        if quick:
            run(base_url, rounds=3, calls=200, pages=10)
        else:
            run(base_url, rounds=9, calls=1000, pages=40)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
