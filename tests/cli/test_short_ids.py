"""``jobs list`` at 80 columns with short ids, and short ids accepted wherever a job uuid is."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from stacksapi import Build, Pipeline, Step
from stacksapi.emulator import EmulatorServer, JobSpec

from .support import QUEUE, invoke

STACK = "short-ids"


def long_jobs(server: EmulatorServer, n: int = 3) -> list[str]:
    spec = JobSpec(
        queue=QUEUE,
        priority=5,
        agent_query_rules=("queue=linux", "os=linux", "arch=amd64", "docker=true", "gpu=false"),
        pipeline=Pipeline(slug="a-very-long-pipeline-name-for-the-payments-platform"),
        build=Build(number=123456, branch="feature/a-branch-name-nobody-would-ever-type-twice"),
        step=Step(key="integration-tests-against-the-staging-database"),
        command="true",
    )
    ids = server.emulator.create_jobs([spec] * n)
    result = invoke(CliRunner(), server, "register", STACK, "--queue", QUEUE)
    assert result.exit_code == 0, result.output
    return ids


def test_jobs_list_fits_80_columns_with_short_ids(
    runner: CliRunner, server: EmulatorServer
) -> None:
    ids = long_jobs(server)
    result = invoke(
        runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE, "-o", "table",
        COLUMNS="80",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    for uuid in ids:
        assert uuid not in result.stdout  # short ids, not full uuids
        rows = [line for line in lines if uuid[:8] in line]
        assert len(rows) == 1, result.stdout  # one line per job: truncated, not wrapped
        assert "…" in rows[0]


def test_jobs_list_wide_shows_everything(runner: CliRunner, server: EmulatorServer) -> None:
    ids = long_jobs(server)
    result = invoke(
        runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE, "-o", "wide"
    )
    assert result.exit_code == 0, result.output
    for uuid in ids:
        (row,) = [line for line in result.stdout.splitlines() if uuid in line]
        assert "a-very-long-pipeline-name-for-the-payments-platform" in row
        assert "integration-tests-against-the-staging-database" in row
        assert "feature/a-branch-name-nobody-would-ever-type-twice" in row
        assert "gpu=false" in row


def test_short_ids_work_through_reserve_tokens_and_finish(
    runner: CliRunner, server: EmulatorServer
) -> None:
    ids = long_jobs(server, 2)
    listed = invoke(runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE)
    assert listed.exit_code == 0
    short = ids[0][:8]

    got = invoke(runner, server, "jobs", "get", "--stack", STACK, short, "-o", "json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["id"] == ids[0]

    reserved = invoke(runner, server, "reserve", "--stack", STACK, short, "-o", "json")
    assert reserved.exit_code == 0, reserved.output
    assert json.loads(reserved.stdout)["reserved"] == [ids[0]]
    # No longer scheduled: found among the jobs this CLI has listed and used.
    tokens = invoke(runner, server, "tokens", "issue", "--stack", STACK, short, "-o", "json")
    assert tokens.exit_code == 0, tokens.output
    assert [t["job_uuid"] for t in json.loads(tokens.stdout)["job_acquisition_tokens"]] == [ids[0]]
    states = invoke(runner, server, "jobs", "states", "--stack", STACK, short, ids[1][:8])
    assert states.exit_code == 0, states.output
    assert json.loads(states.stdout)["states"] == {ids[0]: "reserved", ids[1]: "scheduled"}
    finished = invoke(runner, server, "finish", "--stack", STACK, short, "--detail", "done")
    assert finished.exit_code == 0, finished.output
    assert server.emulator.job_state(ids[0]) == "finished"


def test_a_short_id_of_a_scheduled_job_resolves_without_listing_first(
    runner: CliRunner, server: EmulatorServer
) -> None:
    (job,) = long_jobs(server, 1)
    result = invoke(
        runner, server, "jobs", "get", "--stack", STACK, "--queue", QUEUE, job[:10], "-o", "json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == job


def test_an_ambiguous_short_id_is_an_error_naming_the_candidates(
    runner: CliRunner, server: EmulatorServer
) -> None:
    a = "0190f7d2-1111-7000-8000-000000000001"
    b = "0190f7d2-2222-7000-8000-000000000002"
    server.emulator.create_jobs([JobSpec(queue=QUEUE, id=a), JobSpec(queue=QUEUE, id=b)])
    invoke(runner, server, "register", STACK, "--queue", QUEUE)
    listed = invoke(
        runner, server, "jobs", "list", "--stack", STACK, "--queue", QUEUE, "-o", "table"
    )
    # Eight characters would not tell them apart: the list shows as many as it takes.
    assert "0190f7d2-1" in listed.stdout
    assert "0190f7d2-2" in listed.stdout
    result = invoke(runner, server, "jobs", "states", "--stack", STACK, "0190f7d2")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "ambiguous" in line
    assert "0190f7d2-1" in line
    assert "0190f7d2-2" in line
    ok = invoke(runner, server, "jobs", "states", "--stack", STACK, "0190f7d2-2", "-o", "json")
    assert json.loads(ok.stdout)["states"] == {b: "scheduled"}
    # Without the dashes, in capitals: the same job.
    ok = invoke(runner, server, "jobs", "states", "--stack", STACK, "0190F7D22", "-o", "json")
    assert json.loads(ok.stdout)["states"] == {b: "scheduled"}


def test_an_unknown_short_id_says_where_it_looked(
    runner: CliRunner, server: EmulatorServer
) -> None:
    invoke(runner, server, "register", STACK, "--queue", QUEUE)
    result = invoke(runner, server, "finish", "--stack", STACK, "--queue", QUEUE, "deadbeef",
                    "--detail", "x")  # fmt: skip
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert "deadbeef" in line
    assert "linux" in line
    assert "full uuid" in line


def test_a_damaged_or_unwritable_cache_costs_only_the_cache(
    runner: CliRunner, server: EmulatorServer, tmp_path: Path
) -> None:
    (job,) = long_jobs(server, 1)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "job-ids.json").write_text("{not json")
    got = invoke(runner, server, "jobs", "get", "--stack", STACK, "--queue", QUEUE, job[:8],
                 "-o", "json", STACKSAPI_CACHE_DIR=str(cache))  # fmt: skip
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["id"] == job
    blocked = tmp_path / "a-file-not-a-directory"
    blocked.write_text("")
    got = invoke(runner, server, "jobs", "get", "--stack", STACK, "--queue", QUEUE, job[:8],
                 "-o", "json", STACKSAPI_CACHE_DIR=str(blocked))  # fmt: skip
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["id"] == job
