"""The CLI as real processes: ``demo``, ``emulator serve`` and ``run`` with signals."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stacksapi import Client
from stacksapi.emulator import EmulatorServer

CLI = [sys.executable, "-m", "stacksapi.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE_", "STACKSAPI_"))}
    env.update(extra)
    return env


@pytest.mark.slow
def test_demo_json_proves_itself() -> None:
    proc = subprocess.run(
        [*CLI, "demo", "--jobs", "8", "--pause-seconds", "1", "--json"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ok"] is True
    assert {c["name"]: c["ok"] for c in summary["checks"]} == {
        "every job ended as expected": True,
        "no job ran twice": True,
        "nothing left reserved": True,
        "pause honoured": True,
    }
    by_expect: dict[str, list[dict[str, object]]] = {}
    for job in summary["jobs"]:
        by_expect.setdefault(str(job["expected"]), []).append(job)
    assert len(summary["jobs"]) == 8
    assert [j["state"] for j in by_expect["cancel"]] == ["canceled"]
    assert [j["state"] for j in by_expect["unserved"]] == ["scheduled"]
    assert all(j["exit_status"] == 0 for j in by_expect["succeed"])
    assert all(j["exit_status"] not in (0, None) for j in by_expect["fail"])
    assert all(j["runs"] <= 1 and j["dispatches"] <= 1 for j in summary["jobs"])
    assert summary["api_calls"]["batch_reserve_jobs"] >= 1
    assert sum(summary["api_429s"].values()) == 0


@pytest.mark.slow
def test_demo_prints_progress_and_summary_without_a_tty() -> None:
    proc = subprocess.run(
        [*CLI, "demo", "--jobs", "5", "--pause-seconds", "0.5", "--concurrency", "2"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for expected in ("dispatched", "filtered", "paused", "API calls", "checks", "demo OK"):
        assert expected in out
    assert "bkct_" not in out
    assert "bkjat_" not in out
    assert proc.stderr == ""


@pytest.fixture
def served() -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``stacksapi emulator serve`` as a process; yields it, its base URL and its token."""
    proc = subprocess.Popen(
        [*CLI, "emulator", "serve", "--jobs", "3", "--queue", "linux", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("export "):
                break
        words = dict(w.split("=", 1) for w in shlex.split(lines[-1])[1:])
        url, token = words["STACKSAPI_BASE_URL"], words["BUILDKITE_CLUSTER_TOKEN"]
        assert lines[0].strip() == f"stacksapi emulator listening on {url}"
        yield proc, url, token
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_emulator_serve_serves_then_exits_cleanly_on_signal(
    served: tuple[subprocess.Popen[str], str, str], sig: signal.Signals
) -> None:
    proc, url, token = served
    with Client(token, base_url=url) as client:
        client.register_stack("probe", queue_key="linux")
        page = client.list_scheduled_jobs("probe", queue_key="linux")
    assert len(page.jobs) == 3
    proc.send_signal(sig)
    assert proc.wait(timeout=15) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "stopped" in err
    assert "Traceback" not in err


def test_run_serves_jobs_and_deregisters_on_sigterm(tmp_path: Path) -> None:
    with EmulatorServer() as server:
        em = server.emulator
        em.create_queue("linux")
        ids = em.create_jobs(2, queue="linux", command="echo hello from the job")
        config = tmp_path / "stack.toml"
        config.write_text(
            "[stack]\n"
            'key = "cli-run"\n'
            'queue_key = "linux"\n'
            "poll_interval = 0.1\n"
            "state_check_interval = 0.1\n"
            "[subprocess]\n"
            f"command = {json.dumps([sys.executable, '-m', 'stacksapi.emulator._agent'])}\n"
            f'env = {{ BUILDKITE_AGENT_ENDPOINT = "{server.base_url}" }}\n'
            f'work_dir = "{tmp_path / "work"}"\n'
        )
        argv = [*CLI, "run", "--config", str(config), "--base-url", server.base_url]
        proc = subprocess.Popen(
            [*argv, "--log-format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(BUILDKITE_CLUSTER_TOKEN=server.token),
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if all(em.job_state(i) == "finished" for i in ids):
                    break
                time.sleep(0.1)
            assert [em.job(i).finish.exit_status for i in ids] == [0, 0]  # type: ignore[union-attr]
            assert [s.key for s in em.list_stacks()] == ["cli-run"]
            pids = tmp_path / "work" / "pids"  # the agents exited (a stop leaves running ones)
            while time.monotonic() < deadline and any(pids.glob("*.pid")):
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert em.list_stacks() == []
        assert "dispatched" in out
        assert "deregistered" in out
        assert server.token not in out + err
        logged = [json.loads(line) for line in err.splitlines()]  # every stderr line is JSON
        for job in ids:
            events = {r.get("event") for r in logged if r.get("job_uuid") == job}
            assert {"dispatched", "agent_ended"} <= events


def test_emulator_serve_on_a_busy_port_is_one_line_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [*CLI, "emulator", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
            check=False,
        )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port"
    ]
