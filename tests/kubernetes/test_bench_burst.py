"""The burst benchmark runs (CI size) and shows what it is for: no pod waits for its Secret.

``bench/bench_kubernetes.py`` in a real subprocess, small: 40 jobs at 400 requests/s. The full
run (1,000 jobs) is ``make bench``; its figures are in the changelog's closing note, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_kubernetes.py"


def test_the_burst_benchmark_runs_and_no_pod_waits_for_its_secret() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--jobs", "40", "--qps", "400", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    new, base = figures["dispatcher"], figures["baseline"]
    assert new["secret_wait_p99_s"] == 0.0  # every Secret existed before its pod
    assert base["secret_wait_p99_s"] > 0.0  # the old ordering: pods before their Secrets
    assert new["api_calls"] == 3 * 40  # Job, Secret, release: nothing created twice
    assert base["api_calls"] == 2 * 40
    assert 0 < new["last_object_p50_s"] <= new["last_object_p99_s"]
