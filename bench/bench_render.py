"""How much CPU a job's pod costs to build: plugin steps against a step without the plugin.

The Kubernetes dispatcher renders one Job per reserved job on the controller's event loop, so
rendering must stay cheap next to the API calls around it. This renders each step of the test
catalogue (``tests/kubernetes/catalogue.py``: podSpec, podSpecPatch over pod-spec-patch,
sidecars, resource classes, git credentials…) and prints microseconds per job and the ratio to
the baseline measured in the same run: a step without the plugin under a bare configuration.

    python bench/bench_render.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from kubernetes.catalogue import STEPS, Step_, config_for, request_for
from stacksapi.kubernetes import render_job


def per_call(fn: Callable[[], object], rounds: int, repeats: int = 5) -> float:
    """Median seconds per call over ``repeats`` runs of ``rounds`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(rounds):
            fn()
        times.append((time.perf_counter() - started) / rounds)
    return statistics.median(times)


def renderer(step: Step_) -> Callable[[], object]:
    config = config_for(step)
    request, details = request_for(step)
    return lambda: render_job(config, request, "ci", details)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    baseline = per_call(renderer(Step_()), args.rounds)
    print(f"baseline (no plugin, bare config): {baseline * 1e6:8.1f} us per job")
    for name in sorted(STEPS):
        took = per_call(renderer(STEPS[name]), args.rounds)
        print(f"{name:32s} {took * 1e6:8.1f} us per job  x{took / baseline:5.2f} baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
