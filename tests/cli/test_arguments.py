"""Argument handling without a server: help, version, usage errors and exit code 2."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from stacksapi import __version__
from stacksapi.cli import cli

FAKE_TOKEN = "bkct_cli_test_secret_0123456789"

COMMANDS = [
    ["register"],
    ["deregister"],
    ["jobs", "list"],
    ["jobs", "get"],
    ["jobs", "states"],
    ["reserve"],
    ["tokens", "issue"],
    ["finish"],
    ["notify"],
    ["token"],
]


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example_and_no_token(
    runner: CliRunner, command: list[str]
) -> None:
    result = runner.invoke(cli, [*command, "--help"], env={"BUILDKITE_CLUSTER_TOKEN": FAKE_TOKEN})
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert "stacksapi " + " ".join(command) in result.output
    assert "BUILDKITE_CLUSTER_TOKEN" in result.output
    assert FAKE_TOKEN not in result.output


@pytest.mark.parametrize(
    "command", [["run"], ["demo"], ["emulator"], ["emulator", "serve"]], ids=" ".join
)
def test_other_commands_have_help_with_examples(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"], env={"BUILDKITE_CLUSTER_TOKEN": FAKE_TOKEN})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert FAKE_TOKEN not in result.output


def test_root_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in (
        "register",
        "deregister",
        "jobs",
        "reserve",
        "tokens",
        "finish",
        "notify",
        "token",
        "run",
        "demo",
        "emulator",
    ):
        assert f"  {name} " in result.output


def test_emulator_agent_forwards_to_the_emulated_agent(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["emulator", "agent", "--acquire-job", "x"])
    assert result.exit_code == 2  # the agent's own usage error: no token, no endpoint
    assert "no token" in result.output


def test_unknown_flag_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["jobs", "list", "--stack", "s", "--bogus"])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: No such option")
    assert "--bogus" in line
    assert "jobs list --help" in line


def test_missing_token_is_a_usage_error_in_one_line(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["token", "--base-url", "http://127.0.0.1:9/v3/"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no token")
    assert "BUILDKITE_CLUSTER_TOKEN" in lines[0]


def test_bad_metadata_pair_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["register", "s", "-m", "novalue", "--token", FAKE_TOKEN])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output
    assert FAKE_TOKEN not in result.output


def test_output_choice_is_checked(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["token", "--output", "yaml"])
    assert result.exit_code == 2
    assert "'yaml' is not one of" in result.output


@pytest.mark.parametrize("command", [[], ["jobs"], ["tokens"], ["emulator"]], ids=repr)
def test_a_group_without_a_command_shows_its_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, command)
    assert result.exit_code == 2
    assert result.stdout.startswith("Usage: ")
    assert "Commands:" in result.stdout
    assert "error:" not in result.output


def test_bad_fault_spec_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["emulator", "serve", "--faults", "bogus=1"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --faults: ")
    assert "bogus" in line


def test_redact_masks_token_shapes_only() -> None:
    from stacksapi.cli._common import redact

    text = "cluster bkct_abc123 job bkjat_x-y_z admin bkemu_ff00 pipeline bkapp_frontend"
    assert redact(text, "s3cr3t-value") == (
        "cluster bkct_********** job bkjat_********** admin bkemu_********** "
        "pipeline bkapp_frontend"
    )
    assert redact("token is s3cr3t-value.", "s3cr3t-value") == "token is **********."


def test_vv_leaves_the_http_library_trace_off(runner: CliRunner) -> None:
    """-vv logs every HTTP call, redacted; httpcore2's raw trace (headers as sent) stays off."""
    trace = logging.getLogger("httpcore2")
    saved = trace.level
    try:
        trace.setLevel(logging.NOTSET)
        runner.invoke(cli, ["-vv", "token", "--help"])
        assert trace.level == logging.INFO  # whatever level -vv gives the root logger
    finally:
        trace.setLevel(saved)
