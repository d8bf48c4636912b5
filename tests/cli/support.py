"""Helpers of the CLI tests that run commands against an emulator."""

from __future__ import annotations

from click.testing import CliRunner, Result

from stacksapi.cli import cli
from stacksapi.emulator import EmulatorServer

QUEUE = "linux"


def invoke(runner: CliRunner, server: EmulatorServer, *args: str, **env: str) -> Result:
    """Run ``stacksapi ARGS`` pointed at ``server``; the cluster token never shows in output."""
    full_env = {"BUILDKITE_CLUSTER_TOKEN": server.token, "STACKSAPI_BASE_URL": server.base_url}
    full_env.update(env)
    result = runner.invoke(cli, list(args), env=full_env)
    assert server.token not in result.output
    return result


def one_error_line(result: Result) -> str:
    """The one ``error: …`` line on stderr."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]
