"""Errors point at the fix, once: a base URL without /v3/, an unknown queue, plain http."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner

from stacksapi.emulator import EmulatorServer
from stacksapi.emulator._faults import parse_fault_spec

from .support import QUEUE, invoke, one_error_line


def test_register_on_an_unknown_queue_names_the_queue(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(runner, server, "register", "my-stack", "--queue", "nope")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "'nope'" in line
    assert "--queue" in line
    assert "stack key" not in line


def test_an_unregistered_stack_hint_is_given_once(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(runner, server, "jobs", "list", "--stack", "ghost", "--queue", QUEUE)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "ghost" in line
    assert line.lower().count("register") == 1 + line.count("stacksapi register"), line
    assert line.count("register it first") + line.count("register the stack first") <= 1


def test_a_base_url_without_v3_says_so(runner: CliRunner, server: EmulatorServer) -> None:
    root = server.base_url.removesuffix("/v3/")
    result = invoke(runner, server, "jobs", "list", "--stack", "s", "--base-url", root)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "/v3/" in line
    assert f"{root}/v3/" in line


def test_plain_http_off_loopback_suggests_the_cli_flag(
    runner: CliRunner, server: EmulatorServer
) -> None:
    # 0.0.0.0 is not a loopback address, yet connecting to it reaches this machine.
    url = server.base_url.replace("127.0.0.1", "0.0.0.0")
    result = invoke(runner, server, "register", "s", "--queue", QUEUE, "--base-url", url)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "--allow-insecure-http" in line
    assert "allow_insecure_http=True" not in line
    allowed = invoke(
        runner, server, "register", "s", "--queue", QUEUE, "--base-url", url,
        "--allow-insecure-http", "-o", "json",
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(allowed.stdout)["key"] == "s"


def test_retries_say_what_they_wait_for(runner: CliRunner) -> None:
    faults = parse_fault_spec("list_scheduled_jobs:503=1", seed=1)
    with EmulatorServer(middleware=[faults.middleware()]) as server:
        server.emulator.create_queue(QUEUE)
        invoke(runner, server, "register", "s", "--queue", QUEUE)
        result = invoke(
            runner, server, "jobs", "list", "--stack", "s", "--queue", QUEUE, "--max-attempts", "2"
        )
    assert result.exit_code == 1
    waits = [line for line in result.stderr.splitlines() if "retrying in" in line]
    assert len(waits) == 1, result.stderr
    assert "scheduled-jobs" in waits[0]
    assert "503" in waits[0]
    assert "attempt 1 of 2" in waits[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-04T05:06:07.123456Z", dt.datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)),
        ("2024-03-04T05:06:07.5+02:00", dt.datetime(2024, 3, 4, 3, 6, 7, 500000, tzinfo=dt.UTC)),
        ("2024-03-04 05:06:07", dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)),
        ("20240304T050607Z", dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)),
        # RFC 3339 (the ISO 8601 profile most tools print) allows a lower-case t and z.
        ("2024-03-04t05:06:07.25z", dt.datetime(2024, 3, 4, 5, 6, 7, 250000, tzinfo=dt.UTC)),
        # An ordinal date (the 64th day of 2024) and the basic form of one.
        ("2024-064T05:06:07Z", dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)),
        ("2024064T050607Z", dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)),
        # 24:00 is the end of a day: the next day's midnight.
        ("2024-03-03T24:00:00Z", dt.datetime(2024, 3, 4, 0, 0, 0, tzinfo=dt.UTC)),
        ("2024-03-04T05:06:07,5+01", dt.datetime(2024, 3, 4, 4, 6, 7, 500000, tzinfo=dt.UTC)),
    ],
)
def test_notify_timestamp_takes_any_iso_8601_time(
    runner: CliRunner, server: EmulatorServer, text: str, expected: dt.datetime
) -> None:
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    (job,) = server.emulator.create_jobs(1, queue=QUEUE, command="true", scheduled_at=long_ago)
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(
        runner, server, "notify", "--stack", "s", "--detail", "hello", "--timestamp", text, job
    )
    assert result.exit_code == 0, result.output
    (note,) = server.emulator.job(job).notifications
    assert note.timestamp == expected


def test_notify_timestamp_that_is_not_iso_8601_is_a_usage_error(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(
        runner, server, "notify", "--stack", "s", "--detail", "x", "--timestamp", "yesterday", "j"
    )
    assert result.exit_code == 2
    assert "ISO 8601" in one_error_line(result)


def test_a_cropped_notify_detail_says_so(runner: CliRunner, server: EmulatorServer) -> None:
    jobs = server.emulator.create_jobs(2, queue=QUEUE, command="true")
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "notify", "--stack", "s", "--detail", "x" * 300, *jobs)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "cropped" in line]
    assert len(notes) == 1, result.stderr  # once, not once per job
    assert "300" in notes[0]
    assert "256" in notes[0]
    for job in jobs:
        (note,) = server.emulator.job(job).notifications
        assert len(note.detail) == 256


def test_finish_signal_reason_takes_only_documented_values(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(
        runner, server, "finish", "--stack", "s", "--detail", "d", "--signal-reason", "oops", "j"
    )
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "stack_error" in line
    assert "oops" in line


def test_a_cropped_finish_detail_says_so(runner: CliRunner, server: EmulatorServer) -> None:
    (job,) = server.emulator.create_jobs(1, queue=QUEUE, command="true")
    invoke(runner, server, "register", "s", "--queue", QUEUE)
    result = invoke(runner, server, "finish", "--stack", "s", job, "--detail", "y" * 5000)
    assert result.exit_code == 0, result.output
    (note,) = [line for line in result.stderr.splitlines() if "cropped" in line]
    assert note.startswith("warning: ")
    assert "5000" in note
    finish = server.emulator.job(job).finish
    assert finish is not None
    assert "cropped" in (finish.detail or "")
