"""Dashboard cost and update rate as the emulator fills up, against a 100-job baseline.

1. One update (snapshot under the emulator's lock + the HTML fragments) with 100 jobs (the
   baseline), 10,000 and 100,000 jobs: best-round milliseconds, the part spent holding the
   lock, and the ratio to the baseline.
2. The live stream with 10,000 jobs while a writer keeps changing the state (a job created every
   20 ms): the gaps between updates a logged-in client receives, against the stream's interval.

Target: with 10,000 jobs an update costs well under its 0.5 s interval and the stream keeps its
rate (median gap within 20% of the interval, p95 within 2x).

    python bench/bench_dashboard.py [--rounds 20] [--seconds 10]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import threading
import time

import httpx2

from stacksapi.emulator import Emulator, EmulatorServer, sample_jobs
from stacksapi.emulator.dashboard import Dashboard
from stacksapi.emulator.dashboard._auth import Session
from stacksapi.emulator.dashboard._snapshot import JobFilter, take_snapshot


def _emulator(jobs: int) -> Emulator:
    em = Emulator(queues=["linux", "macos"], seed=1)
    em.create_jobs(sample_jobs(jobs, ["linux", "macos"], seed=1))
    return em


def _update_cost(jobs: int, rounds: int) -> tuple[float, float]:
    """Best-round ms of one full update and of its snapshot part (the lock is held for that)."""
    em = _emulator(jobs)
    dashboard = Dashboard(em)
    session = Session(csrf="x", started=0.0)
    wanted = JobFilter()
    full, locked = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        take_snapshot(em, wanted)
        locked.append(time.perf_counter() - started)
        started = time.perf_counter()
        dashboard._fragments(wanted, session)
        full.append(time.perf_counter() - started)
    return min(full) * 1000, min(locked) * 1000


def _stream_gaps(jobs: int, seconds: float) -> tuple[float, list[float]]:
    em = _emulator(jobs)
    stop = threading.Event()

    def writer() -> None:
        while not stop.wait(0.02):
            em.create_job(queue="linux")

    with EmulatorServer(em) as server, httpx2.Client(base_url=server.url, timeout=30) as client:
        interval = server.app.state.dashboard.interval
        client.get(server.dashboard_login_url())
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        arrivals: list[float] = []
        deadline = time.monotonic() + seconds
        with client.stream("GET", "/dashboard/events") as response:
            for line in response.iter_lines():
                if line.startswith("event: update"):
                    arrivals.append(time.monotonic())
                if time.monotonic() > deadline:
                    break
        stop.set()
        thread.join()
    gaps = [b - a for a, b in itertools.pairwise(arrivals[1:])]  # the first one waits for nothing
    return interval, gaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    base_full, base_locked = _update_cost(100, args.rounds)
    print(f"update with     100 jobs: {base_full:7.2f} ms (lock held {base_locked:6.2f} ms)  1.0x")
    for jobs in (10_000, 100_000):
        full, locked = _update_cost(
            jobs, args.rounds if jobs <= 10_000 else max(5, args.rounds // 4)
        )
        print(
            f"update with {jobs:7,} jobs: {full:7.2f} ms (lock held {locked:6.2f} ms)  "
            f"{full / base_full:.1f}x the baseline"
        )
    interval, gaps = _stream_gaps(10_000, args.seconds)
    median = statistics.median(gaps)
    p95 = sorted(gaps)[int(0.95 * (len(gaps) - 1))]
    print(
        f"stream with 10,000 jobs and a writer: {len(gaps) + 2} updates in {args.seconds:g} s, "
        f"gap median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
        f"(interval {interval * 1000:.0f} ms: {median / interval:.2f}x, p95 {p95 / interval:.2f}x)"
    )
    ok = median <= interval * 1.2 and p95 <= interval * 2
    print("target met" if ok else "target NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
