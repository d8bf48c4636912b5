"""A real stack dispatches a real agent process: the tokens travel in its environment only.

The stack (payload logging on, every logger at DEBUG) runs against the emulator over HTTP with
``SubprocessDispatcher`` and the emulated agent. While the job runs, the test reads the agent's
``/proc/<pid>/environ`` to learn the job acquisition token it was given, then checks that neither
that token, the agent's access token nor the cluster token appears in any process's argv on the
machine (``/proc/*/cmdline``, what ``ps`` shows), in the job command's environment, in the logs,
the stack's events, its Prometheus metrics, the agent's output and job log, or the emulator's
admin job history (which holds a masked fingerprint instead).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx2
import psutil
import pytest

from stacksapi import AsyncClient
from stacksapi.emulator import Emulator, EmulatorServer
from stacksapi.emulator._jobs import mask_token
from stacksapi.stack import (
    Stack,
    StackConfig,
    StackEvent,
    SubprocessConfig,
    SubprocessDispatcher,
)

from ._capture import capture_logs, leaks

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc"),
]

AGENT = (sys.executable, "-m", "stacksapi.emulator._agent", "start", "--acquire-job", "{job_uuid}")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _children(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _all_argv() -> str:
    """Every process's argv on this machine, as ``ps`` would show it."""
    lines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                lines.append(proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, UnicodeDecodeError):
                continue
    return "\n".join(lines)


async def _until(condition: Callable[[], bool], limit: float = 20.0) -> None:
    with anyio.fail_after(limit):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


async def test_tokens_travel_in_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    em = Emulator(rate_limits=False)
    with EmulatorServer(em) as server, capture_logs() as logs:
        cluster = server.token
        monkeypatch.setenv("BUILDKITE_CLUSTER_TOKEN", cluster)  # the stack's own environment
        job = em.create_job(command="echo job-started; sleep 30")
        sub = SubprocessConfig(
            command=AGENT,
            env={"BUILDKITE_AGENT_ENDPOINT": server.base_url.rstrip("/")},
            work_dir=str(tmp_path / "work"),
            kill_grace=2.0,
        )
        config = StackConfig(
            key="secrets-stack",
            poll_interval=0.05,
            state_check_interval=0.1,
            shutdown_grace=2.0,
            subprocess=sub,
        )
        events: list[StackEvent] = []
        async with AsyncClient(cluster, base_url=server.base_url, log_http_payloads=True) as api:
            stack = Stack(api, config, SubprocessDispatcher(sub), on_event=events.append)
            task = asyncio.create_task(stack.run_async())
            await _until(lambda: em.job_state(job) == "running")
            await _until(lambda: "job-started" in em.job(job).log)

            pid = int((tmp_path / "work" / "pids" / f"{job}.pid").read_text())
            agent_env = _environ(pid)
            job_token = agent_env["BUILDKITE_AGENT_TOKEN"]
            assert job_token.startswith("bkjat_")  # issued for this job, handed over in env
            assert agent_env["BUILDKITE_AGENT_ACQUIRE_JOB"] == job
            assert "BUILDKITE_CLUSTER_TOKEN" not in agent_env
            assert not leaks("\n".join(agent_env.values()), cluster)
            access_token = em.jobs[job].access_token
            assert access_token is not None
            secrets = (cluster, job_token, access_token)

            argv = _all_argv()
            assert f"--acquire-job {job}" in argv  # the agent is in the listing...
            assert not leaks(argv, *secrets)  # ...and no process shows a token
            commands = _children(pid)
            assert commands  # the job's command runs under the agent
            read = 0
            for child in commands:
                try:
                    child_env = _environ(child)
                except OSError:  # that part of the command already ended
                    continue
                read += 1
                assert not leaks("\n".join(child_env.values()), *secrets)
            assert read  # the running command's environment was searched

            history = httpx2.get(
                f"{server.admin_url}jobs/{job}",
                headers={"Authorization": f"Token {server.admin_token}"},
                timeout=10,
            ).text
            assert mask_token(job_token) in history  # the fingerprint, not the token
            assert not leaks(history, *secrets)

            em.cancel_job(job)
            await _until(lambda: em.job_state(job) == "canceled")
            stack.request_stop()
            with anyio.fail_after(20):
                await task
            metrics = _metrics_text(stack)

    assert logs.records > 0
    assert not leaks(logs.text, *secrets)
    assert not leaks("\n".join(f"{e.kind} {e.message}" for e in events), *secrets)
    assert not leaks(metrics, *secrets)
    assert not leaks(em.job(job).log, *secrets)  # the emulated agent's output, as the API saw it
    agent_log = (tmp_path / "work" / "logs" / f"{job}.log").read_text(errors="replace")
    assert "job-started" in agent_log
    assert not leaks(agent_log, *secrets)


def _metrics_text(stack: Stack) -> str:
    """The stack's Prometheus exposition (every label and value), or "" without the library."""
    registry = stack.metrics.registry
    if registry is None:
        return ""
    import prometheus_client

    text = prometheus_client.generate_latest(registry).decode()
    assert "stacksapi_api_calls" in text
    return text
