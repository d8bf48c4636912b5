"""The per-endpoint commands against a real emulator over HTTP: output, exit codes, secrecy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from stacksapi.cli import cli
from stacksapi.emulator import EmulatorServer

STACK = "ops-stack"
QUEUE = "linux"


@pytest.fixture
def server(stacks_emulator: EmulatorServer) -> EmulatorServer:
    stacks_emulator.emulator.create_queue(QUEUE)
    return stacks_emulator


def invoke(
    runner: CliRunner, server: EmulatorServer, *args: str, token: str | None = None
) -> Result:
    env = {
        "BUILDKITE_CLUSTER_TOKEN": token or server.token,
        "STACKSAPI_BASE_URL": server.base_url,
    }
    result = runner.invoke(cli, list(args), env=env)
    # No command ever prints the cluster token, in any format or on any stream.
    assert server.token not in result.output
    assert server.token not in (result.stderr or "")
    return result


def as_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def register(runner: CliRunner, server: EmulatorServer) -> None:
    result = invoke(runner, server, "register", STACK, "--queue", QUEUE, "-o", "json")
    assert result.exit_code == 0, result.output


def test_register_and_deregister(runner: CliRunner, server: EmulatorServer) -> None:
    result = invoke(
        runner, server, "register", STACK, "--queue", QUEUE, "-m", "region=eu", "-o", "json"
    )
    stack = as_json(result)
    assert stack["key"] == STACK
    assert stack["cluster_queue_key"] == QUEUE
    assert stack["metadata"] == {"region": "eu"}
    assert [s.key for s in server.emulator.list_stacks()] == [STACK]

    table = invoke(runner, server, "register", STACK, "--queue", QUEUE, "-o", "table")
    assert table.exit_code == 0
    assert STACK in table.stdout

    gone = invoke(runner, server, "deregister", STACK)
    assert gone.exit_code == 0
    assert server.emulator.list_stacks() == []


def test_jobs_list_json_table_pages_and_pause(runner: CliRunner, server: EmulatorServer) -> None:
    em = server.emulator
    ids = em.create_jobs(5, queue=QUEUE, command="echo hi")
    register(runner, server)

    page = as_json(invoke(runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE))
    assert [j["id"] for j in page["jobs"]] == ids
    assert page["cluster_queue"]["dispatch_paused"] is False

    limited = as_json(
        invoke(runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE, "--limit", "2")
    )
    assert [j["id"] for j in limited["jobs"]] == ids[:2]
    assert limited["page_info"]["has_next_page"] is True

    every_args = ("jobs", "list", "--stack", STACK, "--queue", QUEUE, "--limit", "2", "--all")
    every = as_json(invoke(runner, server, *every_args))
    assert [j["id"] for j in every["jobs"]] == ids

    em.pause_queue(QUEUE)
    paused = invoke(
        runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE, "-o", "table"
    )
    assert paused.exit_code == 0
    assert "dispatch PAUSED" in paused.stdout
    assert ids[0][:8] in paused.stdout  # a short id; -o wide and JSON give the full uuid


def test_reserve_tokens_states_get_finish_notify(runner: CliRunner, server: EmulatorServer) -> None:
    em = server.emulator
    job, other = em.create_jobs(
        2, queue=QUEUE, command="make test", env={"API_SECRET": "hush-123", "CI": "true"}
    )
    register(runner, server)

    reserved = as_json(invoke(runner, server, "reserve", "--stack", STACK, job, "--expiry", "120"))
    assert reserved["reserved"] == [job]
    assert em.job_state(job) == "reserved"

    states = as_json(invoke(runner, server, "jobs", "states", "--stack", STACK, job, other))
    assert states["states"] == {job: "reserved", other: "scheduled"}

    got = as_json(invoke(runner, server, "jobs", "get", "--stack", STACK, job))
    assert got["command"] == "make test"
    assert got["env"]["CI"] == "true"
    assert got["env"]["API_SECRET"] == "**********"

    noted = invoke(runner, server, "notify", "--stack", STACK, "--detail", "VM booting", job)
    assert noted.exit_code == 0, noted.output
    assert [n.detail for n in em.job(job).notifications] == ["VM booting"]

    done = invoke(
        runner, server, "finish", "--stack", STACK, job, "--detail", "no capacity",
        "--signal-reason", "stack_error",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    info = em.job(job)
    assert info.state == "finished"
    assert info.finish is not None
    assert (info.finish.exit_status, info.finish.signal_reason) == (-1, "stack_error")


def test_tokens_are_masked_in_every_format(runner: CliRunner, server: EmulatorServer) -> None:
    em = server.emulator
    (job,) = em.create_jobs(1, queue=QUEUE)
    register(runner, server)
    as_json(invoke(runner, server, "reserve", "--stack", STACK, job))

    masked = invoke(runner, server, "tokens", "issue", "--stack", STACK, job, "-o", "json")
    data = as_json(masked)
    (issued,) = data["job_acquisition_tokens"]
    assert issued["job_uuid"] == job
    assert issued["job_acquisition_token"] == "**********"
    assert "bkjat_" not in masked.output

    table = invoke(runner, server, "tokens", "issue", "--stack", STACK, job, "-o", "table")
    assert table.exit_code == 0
    assert job in table.stdout
    assert "bkjat_" not in table.output

    shown = invoke(
        runner, server, "tokens", "issue", "--stack", STACK, job, "-o", "json", "--show-secrets"
    )
    token = as_json(shown)["job_acquisition_tokens"][0]["job_acquisition_token"]
    assert token.startswith("bkjat_")
    assert len(token) > 10


def test_token_command(runner: CliRunner, server: EmulatorServer) -> None:
    info = as_json(invoke(runner, server, "token"))
    assert info["cluster_uuid"] == server.emulator.cluster_uuid
    assert info["organization_slug"] == server.emulator.organization_slug


def test_api_error_is_one_line_exit_1_with_the_server_message(
    runner: CliRunner, server: EmulatorServer
) -> None:
    register(runner, server)
    (job,) = server.emulator.create_jobs(1, queue=QUEUE)
    args = ("finish", "--stack", STACK, job, "--detail", "x", "--exit-status", "0")
    assert invoke(runner, server, *args).exit_code == 0

    again = invoke(runner, server, *args)
    assert again.exit_code == 1
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("error: 422 from POST")
    assert "finish once per job" in line  # the server's own message
    assert "Traceback" not in again.output


def test_bad_token_exit_1_and_never_echoed(runner: CliRunner, server: EmulatorServer) -> None:
    wrong = "bkct_wrong_token_that_must_not_leak_0001"
    result = invoke(runner, server, "jobs", "list", "--stack", STACK, token=wrong)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: 401")
    assert "Check the token" in line
    assert wrong not in result.output


def test_unreachable_server_exit_1(runner: CliRunner, server: EmulatorServer) -> None:
    url = "http://127.0.0.1:9/v3/"  # the discard port: nothing listens
    result = runner.invoke(
        cli,
        ["token", "--base-url", url, "--timeout", "2", "--max-attempts", "1"],
        env={"BUILDKITE_CLUSTER_TOKEN": server.token},
    )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "could not reach http://127.0.0.1:9/v3/" in line
    assert server.token not in result.output


def test_invalid_argument_is_caught_before_sending(
    runner: CliRunner, server: EmulatorServer
) -> None:
    result = invoke(runner, server, "reserve", "--stack", STACK, "some-job", "--expiry", "99999")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "reservation_expiry_seconds" in line
    assert "nothing was sent" in line
    assert server.emulator.counters() == {}


def test_rejected_notifications_are_listed_and_exit_1(
    runner: CliRunner, server: EmulatorServer
) -> None:
    (job,) = server.emulator.create_jobs(1, queue=QUEUE)
    register(runner, server)
    # The documented limit is 100 notifications per job: the 101st is refused, the rest land.
    result = invoke(runner, server, "notify", "--stack", STACK, "--detail", "tick", *[job] * 101)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert [e["indexes"] for e in data["errors"]] == [[100]]
    (line,) = result.stderr.strip().splitlines()
    assert "1 of 101 notification(s) were rejected" in line
    assert len(server.emulator.job(job).notifications) == 100


@pytest.mark.parametrize(
    ("config", "token", "said", "expected"),
    [
        (
            f"key = '{STACK}'\nqueue_key = '{QUEUE}'",
            "bkct_wrong_token_run_0002",
            "invalid token",
            "Check the token",
        ),
        (
            f"key = '{STACK}'\nqueue_key = 'no-such-queue'",
            None,
            "queue 'no-such-queue' not found",
            "check --queue",
        ),
    ],
    ids=["bad-token", "unknown-queue"],
)
def test_run_that_cannot_start_says_why_and_what_to_do(
    runner: CliRunner,
    server: EmulatorServer,
    tmp_path: Any,
    config: str,
    token: str | None,
    said: str,
    expected: str,
) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(f"[stack]\n{config}\n")
    result = invoke(runner, server, "run", "--config", str(path), token=token)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the stack stopped: cannot register stack")
    assert said in line
    assert expected in line
    (event,) = [out for out in result.stdout.splitlines() if " stopped " in out]
    assert event.endswith(said)  # the progress line holds the whole reason: never wrapped
    assert "bkct_wrong" not in result.output
