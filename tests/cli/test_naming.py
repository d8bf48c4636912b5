"""One way to name things: ``--stack`` everywhere, ``-o json`` for the demo, ``-v`` anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from stacksapi.cli import cli
from stacksapi.emulator import EmulatorServer

from .support import QUEUE, invoke


def test_register_and_deregister_take_stack_option(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(
        runner, server, "register", "--stack", "by-flag", "--queue", QUEUE, "-o", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["key"] == "by-flag"
    result = invoke(runner, server, "register", "--queue", QUEUE, STACKSAPI_STACK_KEY="by-env")
    assert result.exit_code == 0, result.output
    assert sorted(s.key for s in server.emulator.list_stacks()) == ["by-env", "by-flag"]

    result = invoke(runner, server, "deregister", "--stack", "by-flag")
    assert result.exit_code == 0, result.output
    result = invoke(runner, server, "deregister", STACKSAPI_STACK_KEY="by-env")
    assert result.exit_code == 0, result.output
    assert server.emulator.list_stacks() == []


def test_positional_key_still_works_and_conflicts_are_usage_errors(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(runner, server, "register", "pos", "--queue", QUEUE)
    assert result.exit_code == 0, result.output
    # The positional wins over the environment variable (it is more explicit) ...
    result = invoke(runner, server, "deregister", "pos", STACKSAPI_STACK_KEY="other")
    assert result.exit_code == 0, result.output
    assert server.emulator.list_stacks() == []
    # ... but two different explicit keys are a mistake.
    result = invoke(runner, server, "register", "a", "--stack", "b", "--queue", QUEUE)
    assert result.exit_code == 2
    assert "--stack" in result.stderr
    result = invoke(runner, server, "register", "--queue", QUEUE)
    assert result.exit_code == 2
    assert "--stack" in result.stderr
    assert "STACKSAPI_STACK_KEY" in result.stderr


def test_run_accepts_stack_beside_key(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(
        '[stack]\nkey = "from-file"\nqueue_key = "linux"\n'
        "[subprocess]\ncommand = ['sh']\n"  # on PATH: --check tries the dispatcher too
    )
    for flag in ("--stack", "--key"):
        result = runner.invoke(cli, ["run", "--config", str(config), flag, "from-flag", "--check"])
        assert result.exit_code == 0, result.output
        assert "from-flag" in result.stdout
        assert "from-file" not in result.stdout


def test_verbose_after_the_subcommand_logs_one_line_per_api_call(
    runner: CliRunner, server: EmulatorServer
) -> None:
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    server.emulator.create_jobs(2, queue=QUEUE, command="true")
    for argv in (
        ["-v", "jobs", "list", "--stack", "s", "--queue", QUEUE, "-o", "json"],
        ["jobs", "list", "--stack", "s", "--queue", QUEUE, "-o", "json", "-v"],
        ["jobs", "list", "-v", "--stack", "s", "--queue", QUEUE, "-o", "json"],
        ["jobs", "-v", "list", "--stack", "s", "--queue", QUEUE, "-o", "json"],
    ):
        result = invoke(runner, server, *argv)
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)  # the log stays off stdout
        calls = [line for line in result.stderr.splitlines() if "scheduled-jobs" in line]
        assert len(calls) == 1, result.stderr
        assert "GET" in calls[0]
        assert "200" in calls[0]
        assert "cluster_queue" not in result.stderr  # bodies are -vv


def test_vv_shows_the_details_of_each_call(runner: CliRunner, server: EmulatorServer) -> None:
    result = invoke(runner, server, "register", "s", "--queue", QUEUE, "-vv", "-o", "json")
    assert result.exit_code == 0, result.output
    assert "stacks/register" in result.stderr
    # The request and response bodies, redacted.
    assert '"queue_key":"linux"' in result.stderr.replace(" ", "")
    assert "organization_uuid" in result.stderr
    assert server.token not in result.stderr


@pytest.mark.slow
def test_demo_takes_output_json_like_json() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE_", "STACKSAPI_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "stacksapi.cli", "demo", "--jobs", "4", "--pause-seconds", "0.5",
         "-o", "json"],
        capture_output=True, text=True, env=env, timeout=90, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["ok"] is True


def test_vv_bodies_mask_secret_looking_fields(runner: CliRunner, server: EmulatorServer) -> None:
    """-vv shows a job's body, but masks its secrets as `jobs get` does in its own output."""
    (job,) = server.emulator.create_jobs(
        1, queue=QUEUE, command="make", env={"API_SECRET": "hush-123", "REGION": "eu-west-1"}
    )
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "jobs", "get", "--stack", "s", job, "-vv", "-o", "json")
    assert result.exit_code == 0, result.output
    assert "response body" in result.stderr
    assert "eu-west-1" in result.stderr
    assert "hush-123" not in result.stderr
