"""Soak: a stack process under steady job arrival with faults on, for a long time (default 30 min).

Not run in CI. The emulator runs in this process (faults from a seed, the chaos world of
``tests/chaos``), the stack as ``python -m stacksapi.stack`` with the ``SubprocessDispatcher``
and one emulated-agent process per job. Every ``--sample`` seconds the script records the resident
memory and open file descriptors of the stack process and of this process (the emulator), and the
jobs done so far. At the end arrivals and faults stop, the queue drains, the stack gets SIGTERM,
and the chaos invariants are checked from the emulator's job histories.

Printed: the samples; for each process the memory at the end of the warm-up (the first fifth) as
the baseline, the last sample's ratio to it and the least-squares slope after the warm-up (MB per
hour; ~0 means no growth beyond noise); the same for file descriptors; then the invariants.
Beside the jobs it runs, the stack is shown jobs it cannot serve (``--filtered-rate`` a second,
agent query rule ``os=windows``), and each sample reads its per-job records from its metrics
(``stacksapi_job_records``): they must stay within ``job_memory`` (``--job-memory``, small here
so a short soak reaches the bound) however many jobs go by.
The emulator keeps every job's history by design, so its memory grows with jobs served: its
figure is also given per 1,000 jobs.

Run: ``.venv/bin/python bench/bench_soak.py`` (30 minutes) or ``--minutes 1`` for a smoke run.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import httpx2

from chaos._procs import StackProcess, wait
from chaos._world import DEFAULT_FAULTS, World, verify


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the start
    stack_rss_mb: float
    stack_fds: int
    emulator_rss_mb: float
    emulator_fds: int
    jobs_created: int
    jobs_done: int
    records: dict[str, int]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def job_records(port: int) -> dict[str, int]:
    """The stack's ``stacksapi_job_records{record=...}`` gauges, from its /metrics."""
    try:
        text = httpx2.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx2.HTTPError:
        return {}
    found = re.findall(r'^stacksapi_job_records\{[^}]*record="(\w+)"[^}]*\} (\S+)$', text, re.M)
    return {name: int(float(value)) for name, value in found}


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    if den == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / den * 3600


def growth(name: str, unit: str, samples: list[tuple[float, float]]) -> str:
    warm = samples[len(samples) // 5][1] if samples else 0.0
    last = samples[-1][1] if samples else 0.0
    after = samples[len(samples) // 5 :]
    ratio = last / warm if warm else 0.0
    return (f"{name:<22} warm-up {warm:8.1f} {unit}  last {last:8.1f} {unit}  "
            f"ratio {ratio:5.2f}x  slope {slope_per_hour(after):+8.2f} {unit}/h")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak")
    parser.add_argument("--rate", type=float, default=1.0, help="jobs created per second")
    parser.add_argument("--sample", type=float, default=None, help="seconds between samples")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help="fault spec (parse_fault_spec)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--filtered-rate", type=float, default=1.0,
                        help="jobs per second this stack cannot serve")  # fmt: skip
    parser.add_argument("--job-memory", type=int, default=200, help="stack.job_memory")
    args = parser.parse_args()
    if args.minutes <= 0 or not 0 < args.rate <= 20:
        parser.error("--minutes > 0 and 0 < --rate <= 20")
    duration = args.minutes * 60
    every = args.sample or max(5.0, duration / 30)
    logging.basicConfig(level=logging.ERROR)

    with (
        tempfile.TemporaryDirectory(prefix="soak-") as tmp,
        World(args.seed, faults=args.faults) as world,
    ):
        port = free_port()
        extra = f"job_memory = {args.job_memory}\nmetrics_port = {port}"
        stack = StackProcess(world, "soak", Path(tmp), max_in_flight=10, extra=extra)
        stack.start()
        assert stack.proc is not None
        me = os.getpid()
        ids: list[str] = []
        unservable = 0
        samples: list[Sample] = []
        started = time.monotonic()
        next_sample = started + min(every, 5.0)  # the first once the stack is up
        try:
            while (now := time.monotonic()) - started < duration:
                due = int((now - started) * args.rate) + 1
                if due > len(ids):
                    ids.extend(world.emulator.create_jobs(due - len(ids), command="true"))
                due = int((now - started) * args.filtered_rate)
                if due > unservable:
                    world.emulator.create_jobs(due - unservable, agent_query_rules=["os=windows"])
                    unservable = due
                if now >= next_sample:
                    states = world.states(ids)
                    done = sum(s in ("finished", "canceled") for s in states.values())
                    samples.append(Sample(
                        now - started, rss_mb(stack.proc.pid), fds(stack.proc.pid),
                        rss_mb(me), fds(me), len(ids), done, job_records(port),
                    ))  # fmt: skip
                    s = samples[-1]
                    print(f"{s.at:7.0f} s  stack {s.stack_rss_mb:6.1f} MB {s.stack_fds:3d} fds  "
                          f"emulator {s.emulator_rss_mb:6.1f} MB {s.emulator_fds:3d} fds  "
                          f"jobs {s.jobs_done}/{s.jobs_created}  unservable {unservable}  "
                          f"records {s.records}", flush=True)  # fmt: skip
                    next_sample += every
                if not stack.alive:
                    print("the stack exited during the soak", file=sys.stderr)
                    return 1
                time.sleep(min(0.1, 1 / args.rate))
            world.stop_faults()
            began = time.monotonic()
            wait(lambda: world.all_terminal(ids), [stack], 120)
            drained = time.monotonic() - began
        finally:
            code = stack.stop()
        report = verify(world, ids, name="soak", drain_seconds=drained)

    print()
    print(growth("stack memory", "MB", [(s.at, s.stack_rss_mb) for s in samples]))
    print(growth("stack fds", "fd", [(s.at, float(s.stack_fds)) for s in samples]))
    print(growth("emulator memory", "MB", [(s.at, s.emulator_rss_mb) for s in samples]))
    print(growth("emulator fds", "fd", [(s.at, float(s.emulator_fds)) for s in samples]))
    if len(samples) >= 2 and samples[-1].jobs_created > samples[0].jobs_created:
        per_k = (samples[-1].emulator_rss_mb - samples[0].emulator_rss_mb) / (
            (samples[-1].jobs_created - samples[0].jobs_created) / 1000
        )
        print(f"emulator memory per 1,000 jobs kept: {per_k:.2f} MB")
    most = {k: max(s.records.get(k, 0) for s in samples) for k in ("finished", "filtered")}
    print(f"stack job records: at most {most} over {unservable} unservable jobs seen "
          f"(bound job_memory = {args.job_memory})")  # fmt: skip
    if any(v > args.job_memory for v in most.values()):
        print(f"PROBLEM: a per-job record outgrew job_memory: {most}")
    print(f"\njobs {report.jobs}, faults {report.faults}, duplicates {report.duplicates}, "
          f"lost {report.lost}, drain {drained:.1f} s, outcomes {report.outcomes}, "
          f"stack exit code {code}")  # fmt: skip
    for detail in report.stack_details:
        print(f"finished by the stack: {detail}")
    problems = report.problems + ([f"exit code {code} after SIGTERM"] if code != 0 else [])
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
