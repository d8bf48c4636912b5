"""Run every benchmark in ``bench/`` one after the other and stop on the first failure.

Each benchmark prints its own figures and its ratios against a baseline measured in the same run;
this script only sequences them (``make bench``). Pass ``--quick`` for shorter runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    # name: (default arguments, --quick arguments)
    "bench_client.py": ([], ["--quick"]),
    "bench_emulator.py": ([], ["--seconds", "1", "--rounds", "1", "--memory-jobs", "20000"]),
    "bench_stack.py": ([], ["--jobs", "2000", "--stacks", "10"]),
    "bench_dashboard.py": ([], ["--rounds", "5", "--seconds", "3"]),
    "bench_kubernetes.py": ([], ["--jobs", "200", "--qps", "200"]),
    "bench_vs_go.py": ([], ["--quick"]),
    "bench_render.py": ([], ["--rounds", "200"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, noisier figures")
    parser.add_argument("only", nargs="*", help="benchmark file names to run (default: all)")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    for name in names:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        default, quick = BENCHMARKS[name]
        argv = [sys.executable, str(HERE / name), *(quick if args.quick else default)]
        print(f"\n=== {name} {' '.join(argv[2:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(argv)
        print(f"=== {name}: exit {code} in {time.perf_counter() - started:.1f} s", flush=True)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
