"""The larger chaos run: every scenario of ``tests/chaos`` over many seeds and more jobs.

Scenarios (see ``tests/chaos/_inproc.py`` and ``_procs.py``): seeded faults with one and three
stacks, clock jumps past every reservation and token, the queue paused and resumed, jobs
cancelled at every point of their life, failed dispatches while finish calls fail, and (unless
``--no-processes``) real stack processes SIGKILLed and restarted, alone and sharing a queue.
Each run's invariants are checked from the emulator's job histories; the table shows runs, jobs,
faults by kind, restarts, duplicates, lost jobs and time to drain. The baseline, measured in the
same run, is the fault-free throughput of the same stacks: the ratio says what the faults cost.

Run: ``.venv/bin/python bench/bench_chaos.py --runs 5 --jobs 200``. Exit status 1 when any
invariant broke (the problems are listed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from chaos._inproc import (
    cancel_everywhere,
    clock_jumps,
    faults_only,
    finish_failures,
    pause_resume,
)
from chaos._procs import kill_and_restart, shared_queue
from chaos._table import render_table, totals
from chaos._world import DEFAULT_FAULTS, RunReport


def _rate(report: RunReport) -> float:
    return report.jobs / report.wall_seconds if report.wall_seconds else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="seeds per scenario (default 3)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs per in-process run")
    parser.add_argument("--process-jobs", type=int, default=40, help="jobs per process run")
    parser.add_argument("--seed", type=int, default=100, help="first seed")
    parser.add_argument("--faults", default=DEFAULT_FAULTS, help="fault spec (parse_fault_spec)")
    parser.add_argument("--no-processes", action="store_true", help="skip the process runs")
    args = parser.parse_args()
    if args.runs < 1 or args.jobs < 10 or args.process_jobs < 4:
        parser.error("--runs >= 1, --jobs >= 10, --process-jobs >= 4")

    logging.basicConfig(level=logging.ERROR)  # retries and lost reservations are expected
    reports: list[RunReport] = []

    def keep(report: RunReport) -> None:
        reports.append(report)
        status = "ok" if report.ok else f"{len(report.problems)} PROBLEMS"
        print(f"  {report.name}: {report.jobs} jobs in {report.wall_seconds:.1f} s, {status}",
              flush=True)  # fmt: skip

    started = time.perf_counter()
    baseline = asyncio.run(faults_only(args.seed, args.jobs, stacks=3, faults=""))
    print(f"baseline (no faults, 3 stacks): {_rate(baseline):.1f} jobs/s", flush=True)
    for i in range(args.runs):
        seed = args.seed + i
        spec = args.faults
        keep(asyncio.run(faults_only(seed, args.jobs, faults=spec)))
        keep(asyncio.run(faults_only(seed, args.jobs, stacks=3, faults=spec)))
        keep(asyncio.run(clock_jumps(seed, args.jobs // 2, faults=spec)))
        keep(asyncio.run(pause_resume(seed, args.jobs, faults=spec)))
        keep(asyncio.run(cancel_everywhere(seed, max(2, args.jobs // 40), faults=spec)))
        keep(asyncio.run(finish_failures(seed, max(6, args.jobs // 10), faults=spec)))
        if not args.no_processes:
            with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
                root = Path(tmp)
                n = args.process_jobs
                keep(kill_and_restart(seed, n, root / "kill", kills=3, faults=spec))
                keep(shared_queue(seed, n, root / "two", stacks=2, faults=spec))
                keep(shared_queue(seed, n, root / "three", stacks=3, faults=spec))

    print()
    for line in render_table(reports):
        print(line)
    total = totals(reports)
    faulted = [r for r in reports if r.name.startswith("faults x3")]
    rate = sum(_rate(r) for r in faulted) / len(faulted)
    base = _rate(baseline)
    print(f"\nthroughput, 3 stacks under faults: {rate:.1f} jobs/s; "
          f"{rate / base:.2f}x the fault-free baseline ({base:.1f} jobs/s)")  # fmt: skip
    print(f"faults injected: {sum(total.faults.values())} "
          f"({', '.join(f'{k} {n}' for k, n in total.faults.items())}); "
          f"duplicates {total.duplicates}, lost {total.lost}; "
          f"wall {time.perf_counter() - started:.0f} s")  # fmt: skip
    if total.problems:
        print("\nPROBLEMS:")
        for problem in total.problems:
            print(f"  {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
