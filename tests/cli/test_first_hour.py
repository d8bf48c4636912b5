"""A new user's first hour, replayed: each wrong input a user makes is one line and the
documented exit code; every command that takes a stack or a job id takes them the same way."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from stacksapi.cli import cli
from stacksapi.emulator import EmulatorServer, JobSpec

from .support import QUEUE, invoke, one_error_line


def _scheduled(server: EmulatorServer, count: int = 1) -> list[str]:
    server.emulator.create_queue(QUEUE)
    return server.emulator.create_jobs([JobSpec(queue=QUEUE, command="true")] * count)


def test_an_empty_notify_detail_is_a_usage_error_caught_before_sending(
    runner: CliRunner, server: EmulatorServer
) -> None:
    (uuid,) = _scheduled(server)
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "notify", "--stack", "s", "--detail", "", uuid)
    assert result.exit_code == 2, result.output  # docs/cli.md: caught before anything is sent
    line = one_error_line(result)
    assert "--detail" in line
    assert "nothing was sent" in line
    assert server.emulator.counters().get("create_stack_notifications", {}) == {}


def test_a_cropped_finish_detail_is_named_as_the_user_typed_it(
    runner: CliRunner, server: EmulatorServer
) -> None:
    (uuid,) = _scheduled(server)
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "finish", "--stack", "s", uuid, "--detail", "é" * 3000)
    assert result.exit_code == 0, result.output
    (note,) = [line for line in result.stderr.splitlines() if "cropped" in line]
    assert note.startswith("warning: --detail was 6000 UTF-8 bytes"), note  # as notify says it
    assert "finish_job" not in note  # a Python method's name means nothing on a shell


def test_an_empty_finish_detail_names_the_option(runner: CliRunner, server: EmulatorServer) -> None:
    (uuid,) = _scheduled(server)
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "finish", "--stack", "s", uuid, "--detail", "")
    assert result.exit_code == 2, result.output
    assert one_error_line(result).startswith("error: --detail: must not be empty"), result.stderr


@pytest.mark.parametrize(
    ("path", "fixed"),
    [
        ("/v2/", "/v3/"),  # another API version: replaced, not nested (/v2/v3/)
        ("/v3/stacks/", "/v3/"),  # a path under /v3/: the base URL stops at /v3/
        ("/v3/v3/", "/v3/"),  # /v3/ twice: was "check the stack key, the job uuid …"
        ("", "/v3/"),
    ],
)
def test_a_base_url_off_v3_suggests_the_url_that_works(
    runner: CliRunner, server: EmulatorServer, path: str, fixed: str
) -> None:
    root = server.base_url.removesuffix("/v3/")
    result = invoke(runner, server, "token", "--base-url", root + path)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"try --base-url {root}{fixed} " in line, line
    assert "stack key" not in line
    works = invoke(runner, server, "token", "--base-url", root + fixed, "-o", "json")
    assert works.exit_code == 0, works.output


@pytest.mark.parametrize("text", ["2024-03-04T24:00:01Z", "2023-366T00:00Z", "2024-000"])
def test_notify_timestamp_out_of_range_is_one_usage_line(
    runner: CliRunner, server: EmulatorServer, text: str
) -> None:
    result = invoke(runner, server, "notify", "--stack", "s", "--detail", "x", "--timestamp",
                    text, "0190f7d2")  # fmt: skip
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--timestamp" in line
    assert repr(text) in line


def test_an_unknown_queue_on_jobs_list_points_at_the_queue_not_the_stack(
    runner: CliRunner, server: EmulatorServer
) -> None:
    _scheduled(server)
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "jobs", "list", "--stack", "s", "--queue", "nope")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "'nope'" in line
    assert "check --queue" in line.lower(), line
    assert "register" not in line, line  # the stack is registered: that is not the fix


def test_demo_json_and_a_table_output_together_are_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["demo", "--json", "-o", "table"])
    assert result.exit_code == 2, result.output  # was: JSON, silently ignoring -o table
    line = one_error_line(result)
    assert "--json" in line
    assert "-o table" in line or "--output table" in line
