"""``serve()``: preloaded realistic jobs, faults wired in, and a clean exit on SIGTERM/SIGINT.

The signal tests run ``serve`` in a real subprocess (signals need a main thread of their own).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from typing import Any

import httpx2
import pytest

from stacksapi.emulator._serve import ServeInfo, sample_jobs, serve

_SCRIPT = """
import sys
from stacksapi.emulator._serve import serve

def ready(info):
    print(info.base_url, info.cluster_token.get_secret_value(), flush=True)

serve(jobs=25, queues=["linux", "macos"], seed=5, rate_limits=False,
      faults="get_job:503=1", on_ready=ready)
print("stopped cleanly", flush=True)
"""


def _register_and_list(base_url: str, token: str) -> tuple[int, httpx2.Response]:
    total = 0
    with httpx2.Client(
        base_url=base_url, headers={"Authorization": f"Token {token}"}, timeout=10
    ) as http:
        body: dict[str, Any] = {"key": "serve-test", "type": "custom", "queue_key": "linux"}
        assert http.post("stacks/register", json={**body, "metadata": {}}).is_success
        first_id = ""
        for queue in ("linux", "macos"):
            page = http.get(
                "stacks/serve-test/scheduled-jobs", params={"queue_key": queue, "limit": 1000}
            )
            assert page.status_code == 200, page.text
            jobs = page.json()["jobs"]
            total += len(jobs)
            first_id = first_id or jobs[0]["id"]
        return total, http.get(f"stacks/serve-test/jobs/{first_id}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_subprocess_exits_cleanly_on_signal(sig: signal.Signals) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url, token = proc.stdout.readline().split()
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/v3/")
        total, get_job = _register_and_list(base_url, token)
        assert total == 25
        assert get_job.status_code == 503  # the fault spec reached the server
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped cleanly" in out
    assert "Traceback" not in err
    assert token not in err


def test_serve_in_a_thread_stops_on_event() -> None:
    stop = threading.Event()
    ready: list[ServeInfo] = []

    def on_ready(info: ServeInfo) -> None:
        ready.append(info)
        with httpx2.Client(
            base_url=info.base_url,
            headers={"Authorization": f"Token {info.cluster_token.get_secret_value()}"},
        ) as http:
            assert http.get("token").status_code == 200
        stop.set()

    thread = threading.Thread(
        target=serve,
        kwargs={"jobs": 10, "tokens": ["bkct_serve_thread"], "on_ready": on_ready, "stop": stop},
    )
    thread.start()
    thread.join(15)
    assert not thread.is_alive()
    (info,) = ready
    assert len(info.emulator.list_jobs()) == 10
    assert "bkct_serve_thread" not in repr(info)
    assert info.admin_url.endswith("/_emulator/")
    assert "/v3/" not in info.admin_url
    assert info.export_line() == (
        f"export BUILDKITE_CLUSTER_TOKEN=bkct_serve_thread STACKSAPI_BASE_URL={info.base_url}"
    )


def test_sample_jobs_are_reproducible_and_realistic() -> None:
    first = sample_jobs(200, ["a", "b"], seed=11)
    assert first == sample_jobs(200, ["a", "b"], seed=11)
    assert first != sample_jobs(200, ["a", "b"], seed=12)
    assert {spec.queue for spec in first} == {"a", "b"}
    for spec in first:
        assert spec.agent_query_rules is not None
        assert f"queue={spec.queue}" in spec.agent_query_rules
        assert spec.pipeline is not None
        assert spec.pipeline.slug
        assert spec.build is not None
        assert spec.build.number is not None
        assert spec.build.number >= 1
        assert spec.env["BUILDKITE_PIPELINE_SLUG"] == spec.pipeline.slug
    assert any("exit 1" in spec.command for spec in first)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"count": -1, "queues": ["a"]}, "jobs"),
        ({"count": 1, "queues": []}, "queues"),
    ],
)
def test_sample_jobs_rejects_bad_input(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        sample_jobs(**kwargs)


def test_serve_rejects_bad_port_and_fault_spec() -> None:
    with pytest.raises(ValueError, match="port"):
        serve(port=70000)
    with pytest.raises(ValueError, match="unknown kind"):
        serve(faults="418=0.5")
