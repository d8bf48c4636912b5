"""``stacksapi run`` for a first-time operator: token keys in files, where the work is, events."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from stacksapi import Build, Pipeline, Step
from stacksapi.cli import cli
from stacksapi.emulator import EmulatorServer, JobSpec

CLI = [sys.executable, "-m", "stacksapi.cli"]
SECRET = "bkct_in_a_file_0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f'[stack]\nkey = "x"\ntoken = "{SECRET}"\n', "stack.token"),
        (f'token = "{SECRET}"\n[stack]\nkey = "x"\n', "token"),
        (f'[stack]\nkey = "x"\ncluster_token = "{SECRET}"\n', "stack.cluster_token"),
        (f'[stack]\nkey = "x"\n[subprocess]\nagent_token = "{SECRET}"\n', "subprocess.agent_token"),
    ],
)
def test_a_token_key_in_the_config_says_where_tokens_go(
    runner: CliRunner, tmp_path: Path, text: str, key: str
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(text)
    result = runner.invoke(cli, ["run", "--config", str(config), "--check"])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"{key}: " in line
    assert "never" in line
    assert "BUILDKITE_CLUSTER_TOKEN" in line
    assert "agent_token_env" in line
    assert "did you mean" not in line
    assert SECRET not in result.output


AGENT = [sys.executable, "-m", "stacksapi.emulator._agent"]


def _config(
    tmp_path: Path,
    server: EmulatorServer,
    *,
    work_dir: Path | None = None,
    command: list[str] = AGENT,
    on_shutdown: str = "drain",  # a final stop: the agents' ends are seen, not left behind
) -> Path:
    config = tmp_path / "stack.toml"
    config.write_text(
        "[stack]\n"
        'key = "run-out"\n'
        'queue_key = "linux"\n'
        "poll_interval = 0.1\n"
        "state_check_interval = 0.1\n"
        f'on_shutdown = "{on_shutdown}"\n'
        "[subprocess]\n"
        f"command = {json.dumps(command)}\n"
        f'env = {{ BUILDKITE_AGENT_ENDPOINT = "{server.base_url}" }}\n'
        + (f'work_dir = "{work_dir}"\n' if work_dir else "")
    )
    return config


def _run_until_done(
    server: EmulatorServer, config: Path, ids: list[str], *args: str, until: str | None = None
) -> tuple[int, str, str]:
    """Run the stack until the jobs finished (and, with ``until``, that text was printed: the
    stack sees an agent end a little after its job finished), then SIGTERM; its exit code and
    output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE_", "STACKSAPI_"))}
    env["BUILDKITE_CLUSTER_TOKEN"] = server.token
    proc = subprocess.Popen(
        [*CLI, "run", "--config", str(config), "--base-url", server.base_url, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None
    assert stderr is not None
    lines: list[str] = []
    errors: list[str] = []
    readers = [
        threading.Thread(target=lambda: lines.extend(iter(stdout.readline, ""))),
        threading.Thread(target=lambda: errors.extend(iter(stderr.readline, ""))),
    ]
    for reader in readers:
        reader.start()
    em = server.emulator

    def done() -> bool:
        finished = all(em.job_state(i) == "finished" for i in ids)
        return finished and (until is None or until in "".join(lines))

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not done():
            time.sleep(0.1)
        assert done(), "".join(lines + errors)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=30)
    return proc.returncode, "".join(lines), "".join(errors)


def test_run_says_where_its_work_is_and_removes_a_directory_it_made(tmp_path: Path) -> None:
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        ids = server.emulator.create_jobs(1, queue="linux", command="echo hi")
        code, out, err = _run_until_done(server, _config(tmp_path, server), ids)
    assert code == 0, err
    (work_line,) = [line for line in out.splitlines() if line.startswith("work directory ")]
    work = Path(re.search(r"work directory (\S+)", work_line).group(1))  # type: ignore[union-attr]
    assert "removed" in work_line
    (logs_line,) = [line for line in out.splitlines() if line.startswith("agent logs ")]
    assert str(work / "logs") in logs_line
    assert not work.exists()  # made for this run, removed at its end


def test_a_stop_that_leaves_agents_running_keeps_the_work_directory_it_made(
    tmp_path: Path,
) -> None:
    # The default stop leaves running agents to the next stack: their directory must survive.
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        ids = server.emulator.create_jobs(1, queue="linux", command="echo hi")
        config = _config(tmp_path, server, on_shutdown="leave")
        code, out, err = _run_until_done(server, config, ids)
    assert code == 0, err
    (work_line,) = [line for line in out.splitlines() if line.startswith("work directory ")]
    work = Path(re.search(r"work directory (\S+)", work_line).group(1))  # type: ignore[union-attr]
    assert "kept" in work_line
    assert work.exists()
    shutil.rmtree(work)


def test_run_keeps_a_configured_work_directory(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        ids = server.emulator.create_jobs(1, queue="linux", command="echo hi")
        code, out, err = _run_until_done(server, _config(tmp_path, server, work_dir=work), ids)
    assert code == 0, err
    assert f"work directory {work}" in out
    assert (work / "logs" / f"{ids[0]}.log").read_text().strip().endswith("hi")


def test_run_event_lines_name_the_pipeline_and_step(tmp_path: Path) -> None:
    spec = JobSpec(
        queue="linux",
        pipeline=Pipeline(slug="payments-api"),
        build=Build(number=42),
        step=Step(key="unit-tests"),
        command="true",
    )
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        ids = server.emulator.create_jobs([spec])
        code, out, err = _run_until_done(
            server, _config(tmp_path, server), ids, until=" agent_ended "
        )
    assert code == 0, err
    for kind in ("dispatched", "agent_ended"):
        (line,) = [line for line in out.splitlines() if f" {kind} " in line]
        assert ids[0][:8] in line
        assert "payments-api/unit-tests" in line, line


def test_run_off_loopback_over_plain_http_suggests_the_flag(
    runner: CliRunner, tmp_path: Path
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text('[stack]\nkey = "x"\nqueue_key = "linux"\n')
    result = runner.invoke(
        cli,
        ["run", "--config", str(config), "--base-url", "http://ci.example.invalid/v3/"],
        env={"BUILDKITE_CLUSTER_TOKEN": SECRET},
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "--allow-insecure-http" in line
    assert "allow_insecure_http=True" not in line


@pytest.mark.parametrize(
    ("queue", "suffix", "expected"),
    [("nope", "/v3/", "check --queue"), ("linux", "/", "has no /v3/ path")],
    ids=["unknown-queue", "no-v3"],
)
def test_run_stopped_by_an_error_points_at_the_fix(
    runner: CliRunner, tmp_path: Path, queue: str, suffix: str, expected: str
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(f'[stack]\nkey = "x"\nqueue_key = "{queue}"\n')
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        url = server.base_url.removesuffix("/v3/") + suffix
        result = runner.invoke(
            cli,
            ["run", "--config", str(config), "--base-url", url],
            env={"BUILDKITE_CLUSTER_TOKEN": server.token},
        )
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: the stack stopped: ")
    assert expected in line
    assert "job uuid" not in line


def test_run_says_each_event_once(tmp_path: Path) -> None:
    """A failed dispatch is an event line on stdout, not also a warning on stderr."""
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        ids = server.emulator.create_jobs(1, queue="linux", command="true")
        config = _config(tmp_path, server, command=[str(tmp_path / "no-such-agent")])
        code, out, err = _run_until_done(server, config, ids)
    assert code == 0, err
    assert len([line for line in out.splitlines() if " dispatch_failed " in line]) == 1
    assert "no-such-agent" not in err
    assert ids[0] not in err


def test_run_v_with_json_logs_keeps_to_its_level(tmp_path: Path) -> None:
    with EmulatorServer() as server:
        server.emulator.create_queue("linux")
        ids = server.emulator.create_jobs(1, queue="linux", command="true")
        code, _out, err = _run_until_done(
            server, _config(tmp_path, server), ids, "-v", "--log-format", "json"
        )
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    assert records
    assert {r["level"] for r in records} <= {"INFO", "WARNING", "ERROR"}
