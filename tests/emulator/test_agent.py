"""The emulated agent as a real subprocess against a real ``EmulatorServer`` over HTTP.

Covers a successful run, a failing exit status, a cancel while running (TERM, and KILL after the
grace period), refused acquisitions (bad token, job no longer reserved, already taken, unknown job)
and that no token ever shows in what the agent prints or hands to the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from stacksapi.emulator import Emulator, EmulatorServer
from stacksapi.emulator._agent import EXIT_ACQUIRE_FAILED, EXIT_UNREACHABLE, EXIT_USAGE

STACK = "agent-tests"


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(rate_limits=False)) as running:
        yield running


def _http(server: EmulatorServer) -> httpx2.Client:
    return httpx2.Client(
        base_url=server.base_url,
        headers={"Authorization": f"Token {server.emulator.token}"},
        timeout=10,
    )


def _job_token(server: EmulatorServer, job_id: str) -> str:
    """Reserve ``job_id`` as a stack and issue a job acquisition token for it."""
    with _http(server) as http:
        body: dict[str, Any] = {
            "key": STACK,
            "type": "custom",
            "queue_key": "__default__",
            "metadata": {},
        }
        assert http.post("stacks/register", json=body).is_success
        reserved = http.put(
            f"stacks/{STACK}/scheduled-jobs/batch-reserve", json={"job_uuids": [job_id]}
        )
        assert reserved.json()["reserved"] == [job_id]
        issued = http.post(f"stacks/{STACK}/job-acquisition-tokens", json={"job_uuids": [job_id]})
        assert issued.is_success, issued.text
        token = issued.json()["job_acquisition_tokens"][0]["job_acquisition_token"]
        assert isinstance(token, str)
        assert token.startswith("bkjat_")
        return token


def _agent_env(server: EmulatorServer, token: str, job_id: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDKITE")}
    env.update(
        {
            "BUILDKITE_AGENT_TOKEN": token,
            "BUILDKITE_AGENT_ACQUIRE_JOB": job_id,
            "BUILDKITE_AGENT_ENDPOINT": server.base_url.rstrip("/"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


_AGENT = [sys.executable, "-m", "stacksapi.emulator._agent", "start"]


def _run(
    server: EmulatorServer, token: str, job_id: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_AGENT, *args],
        env=_agent_env(server, token, job_id),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _assert_no_token(text: str, *tokens: str) -> None:
    for token in tokens:
        assert token not in text
    assert "bkaa_" not in text
    assert "bkjat_" not in text
    assert "bkct_" not in text


def test_success_streams_output_and_reports_exit_status(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(
        command="echo hello-$GREETING; echo to-stderr >&2; printf 'caf\\303\\251\\n'",
        env={"GREETING": "world"},
    )
    token = _job_token(server, job_id)
    done = _run(server, token, job_id)
    assert done.returncode == 0, done.stderr
    assert "hello-world" in done.stdout
    assert "to-stderr" in done.stdout  # the command's stderr is part of the job output
    assert "café" in done.stdout
    assert done.stderr == ""
    info = server.emulator.job(job_id)
    assert info.state == "finished"
    assert info.finish is not None
    assert (info.finish.by, info.finish.exit_status) == ("agent", 0)
    assert "hello-world" in info.log
    assert "café" in info.log
    states = [t.to_state for t in info.transitions]
    assert states[-3:] == ["accepted", "running", "finished"]


def test_failing_command_exit_status(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="echo about to fail; exit 7")
    done = _run(server, _job_token(server, job_id), job_id)
    assert done.returncode == 0  # the agent did its part; the job's 7 went to the server
    info = server.emulator.job(job_id)
    assert info.state == "finished"
    assert info.finish is not None
    assert info.finish.exit_status == 7
    assert info.finish.signal_reason is None


def _start_and_cancel(server: EmulatorServer, command: str, *args: str) -> tuple[int, str]:
    job_id = server.emulator.create_job(command=command)
    token = _job_token(server, job_id)
    proc = subprocess.Popen(
        [*_AGENT, "--reflect-exit-status", *args],
        env=_agent_env(server, token, job_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        assert server.emulator.job_state(job_id) == "running"
        assert server.emulator.cancel_job(job_id) == "canceling"
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return code, job_id


def test_cancel_while_running_terminates_the_process_group(server: EmulatorServer) -> None:
    code, job_id = _start_and_cancel(server, "echo started; sleep 30")
    assert code == 128 + 15
    info = server.emulator.job(job_id)
    assert info.state == "canceled"
    assert info.finish is not None
    assert (info.finish.by, info.finish.signal_reason) == ("agent", "cancel")
    assert info.finish.exit_status == 128 + 15


def test_cancel_kills_after_grace_period(server: EmulatorServer) -> None:
    command = "trap '' TERM; echo started; sleep 30"
    code, job_id = _start_and_cancel(server, command, "--cancel-grace-period", "0.3")
    assert code == 128 + 9
    assert server.emulator.job_state(job_id) == "canceled"


def test_bad_token_fails_with_one_line_and_no_token(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="echo should not run")
    bad = "bkjat_" + "x" * 40
    done = _run(server, bad, job_id)
    assert done.returncode == EXIT_ACQUIRE_FAILED
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "401" in lines[0]
    assert job_id in lines[0]
    _assert_no_token(done.stderr, bad)
    assert server.emulator.job_state(job_id) == "scheduled"


def test_job_no_longer_reserved_is_refused(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="echo should not run")
    token = _job_token(server, job_id)
    assert server.emulator.cancel_job(job_id) == "canceled"
    done = _run(server, token, job_id)
    assert done.returncode == EXIT_ACQUIRE_FAILED
    assert len(done.stderr.strip().splitlines()) == 1
    _assert_no_token(done.stderr + done.stdout, token)
    assert server.emulator.job_state(job_id) == "canceled"


def test_job_taken_already_names_its_state(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="true")
    cluster_token = server.emulator.token
    assert _run(server, cluster_token, job_id).returncode == 0
    again = _run(server, cluster_token, job_id)
    assert again.returncode == EXIT_ACQUIRE_FAILED
    assert "422" in again.stderr
    assert "finished" in again.stderr
    _assert_no_token(again.stderr + again.stdout, cluster_token)


def test_unknown_job(server: EmulatorServer) -> None:
    missing = "0190b3a4-0000-4000-8000-000000000000"
    done = _run(server, server.emulator.token, missing)
    assert done.returncode == EXIT_ACQUIRE_FAILED
    assert "404" in done.stderr
    _assert_no_token(done.stderr, server.emulator.token)


def test_token_never_reaches_output_or_command_env(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="env; echo done")
    token = _job_token(server, job_id)
    done = _run(server, token, job_id)
    assert done.returncode == 0
    assert "BUILDKITE_JOB_ID=" + job_id in done.stdout
    _assert_no_token(done.stdout + done.stderr + server.emulator.job(job_id).log, token)


def test_missing_settings_are_usage_errors(server: EmulatorServer) -> None:
    env = _agent_env(server, "bkct_secret_value", "")
    done = subprocess.run(_AGENT, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == EXIT_USAGE
    assert "BUILDKITE_AGENT_ACQUIRE_JOB" in done.stderr
    env = _agent_env(server, "bkct_secret_value", "some-job")
    env["BUILDKITE_AGENT_ENDPOINT"] = "not a url"
    done = subprocess.run(_AGENT, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == EXIT_USAGE
    assert "BUILDKITE_AGENT_ENDPOINT" in done.stderr
    assert "bkct_secret_value" not in done.stderr


def test_unreachable_endpoint_is_a_plain_failure_not_a_refusal() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDKITE")}
    env.update(
        {
            "BUILDKITE_AGENT_TOKEN": "bkct_do_not_print",
            "BUILDKITE_AGENT_ACQUIRE_JOB": "0190b3a4-0000-4000-8000-000000000001",
            "BUILDKITE_AGENT_ENDPOINT": "http://127.0.0.1:9/v3",
        }
    )
    done = subprocess.run(_AGENT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == EXIT_UNREACHABLE  # 27 would say "refused": a stack retries that
    assert "cannot reach" in done.stderr
    assert "bkct_do_not_print" not in done.stderr


def test_large_output_reaches_the_log_intact(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="yes 'ligne numéro' | head -n 40000")
    done = _run(server, _job_token(server, job_id), job_id)
    assert done.returncode == 0
    assert done.stdout == "ligne numéro\n" * 40000
    info = server.emulator.job(job_id)
    assert info.log == done.stdout
    assert not info.log_truncated


def test_sigterm_to_the_agent_stops_the_job(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="echo started; sleep 30")
    proc = subprocess.Popen(
        [*_AGENT, "--reflect-exit-status"],
        env=_agent_env(server, _job_token(server, job_id), job_id),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        proc.terminate()
        assert proc.wait(timeout=30) == 128 + 15
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    info = server.emulator.job(job_id)
    assert info.state == "finished"
    assert info.finish is not None
    assert (info.finish.exit_status, info.finish.signal_reason) == (128 + 15, "agent_stop")


# --- exit codes: the agent's own never read as a job's -------------------------------------------


@pytest.mark.parametrize("job_exit", [1, 2, 3, 4, 27, 255])
def test_a_job_exit_is_never_read_as_a_refused_acquire(
    server: EmulatorServer, job_exit: int
) -> None:
    """By default, like ``buildkite-agent`` without ``--reflect-exit-status``, a job that ran
    exits the agent 0 (its status went to the server); only the agent's own failures are
    nonzero. So whatever the job exits with, the agent's code never says "acquire refused"."""
    job_id = server.emulator.create_job(command=f"exit {job_exit}")
    done = _run(server, _job_token(server, job_id), job_id)
    assert done.returncode == 0, done.stderr
    assert done.returncode not in (EXIT_ACQUIRE_FAILED, EXIT_USAGE)
    info = server.emulator.job(job_id)
    assert info.finish is not None
    assert info.finish.exit_status == job_exit  # the job's own status is reported, not lost


def test_refused_acquire_exit_code_is_the_agents_27(server: EmulatorServer) -> None:
    assert EXIT_ACQUIRE_FAILED == 27  # what buildkite-agent exits with for a refused acquire
    job_id = server.emulator.create_job(command="true")
    token = _job_token(server, job_id)
    server.emulator.cancel_job(job_id)
    assert _run(server, token, job_id).returncode == EXIT_ACQUIRE_FAILED


def test_reflect_exit_status_mirrors_the_job(server: EmulatorServer) -> None:
    job_id = server.emulator.create_job(command="exit 7")
    done = _run(server, _job_token(server, job_id), job_id, "--reflect-exit-status")
    assert done.returncode == 7
