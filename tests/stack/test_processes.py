"""Stacks as real processes (``python -m stacksapi.stack``) against one emulator over HTTP.

Three stacks share a queue of 2,000 jobs and start each exactly once (reservations arbitrate);
SIGTERM makes a stack deregister and exit 0; a restarted stack adopts the agents still running
and starts nothing twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from stack_helpers import accepted_count

from stacksapi.emulator import EmulatorServer

HERE = Path(__file__).parent
AGENT = [sys.executable, "-m", "stacksapi.emulator._agent", "start", "--acquire-job", "{job_uuid}"]


def write_config(
    path: Path, server: EmulatorServer, key: str, extra: str = "", subprocess_extra: str = ""
) -> Path:
    endpoint = server.base_url.rstrip("/")
    command = ", ".join(f'"{w}"' for w in AGENT)
    path.write_text(
        f"""
[stack]
key = "{key}"
base_url = "{server.base_url}"
poll_interval = 0.1
state_check_interval = 0.2
{extra}

[subprocess]
command = [{command}]
env = {{ BUILDKITE_AGENT_ENDPOINT = "{endpoint}" }}
work_dir = "{path.parent / (key + "-work")}"
{subprocess_extra}
"""
    )
    return path


def spawn(
    config: Path, server: EmulatorServer, *, dispatcher: str | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE", "STACKSAPI"))}
    env["BUILDKITE_CLUSTER_TOKEN"] = server.token
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    if log is not None:
        env["STACK_TEST_DISPATCH_LOG"] = str(log)
    argv = [sys.executable, "-m", "stacksapi.stack", "--config", str(config)]
    if dispatcher:
        argv += ["--dispatcher", dispatcher]
    out = (config.parent / f"{config.stem}.out").open("ab")
    return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait(cond: Callable[[], bool], procs: list[subprocess.Popen[bytes]], limit: float) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        for p in procs:
            assert p.poll() is None, f"stack exited early with {p.returncode}"
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.2)


def accepted(server: EmulatorServer) -> int:
    """How many jobs an agent has taken (cheap: no history is built)."""
    with server.emulator.lock:
        return sum(1 for job in server.emulator.jobs.values() if job.state == "accepted")


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    return [p.wait(timeout=30) for p in procs]


@pytest.mark.slow
def test_three_stacks_start_each_of_2000_jobs_exactly_once(
    stacks_emulator: EmulatorServer, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(2000)
    procs, logs = [], []
    for i in range(3):
        cfg = write_config(
            tmp_path / f"s{i}.toml",
            stacks_emulator,
            f"scale-{i}",
            "max_in_flight = 400\npage_size = 400\nshutdown_grace = 5",
        )
        logs.append(tmp_path / f"s{i}.dispatched")
        procs.append(spawn(cfg, stacks_emulator, dispatcher="stack_helpers:fast_dispatcher",
                           log=logs[-1]))  # fmt: skip
    try:
        wait(lambda: accepted(stacks_emulator) == len(jobs), procs, limit=90)
        assert len(em.list_stacks()) == 3
    finally:
        codes = stop(procs)
    assert codes == [0, 0, 0]
    assert em.list_stacks() == []  # SIGTERM deregisters
    dispatched = Counter(line for log in logs for line in log.read_text().split())
    assert len(dispatched) == len(jobs)
    assert max(dispatched.values()) == 1  # no job handed to two agents
    assert all(accepted_count(stacks_emulator, j) == 1 for j in jobs)
    assert all(n > 0 for n in (len(log.read_text()) for log in logs))  # all three took work
    assert all(429 not in per for per in em.counters().values())


@pytest.mark.slow
def test_restarted_stack_adopts_running_agents_and_never_double_starts(
    stacks_emulator: EmulatorServer, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    release = tmp_path / "release"  # the jobs run until the test says so: no race with startup
    jobs = em.create_jobs(6, command=f"while [ ! -e {release} ]; do sleep 0.1; done")
    cfg = write_config(
        tmp_path / "r.toml",
        stacks_emulator,
        "restarting",
        "max_in_flight = 3\nshutdown_grace = 0.2",
        subprocess_extra='on_shutdown = "leave"',  # agents outlive the stack, to be adopted
    )
    first = spawn(cfg, stacks_emulator)

    def running() -> int:
        return len(em.list_jobs(state="running"))

    try:
        wait(lambda: running() == 3, [first], limit=30)
    finally:
        assert stop([first]) == [0]
    assert em.list_stacks() == []
    assert running() + len(em.list_jobs(state="finished")) >= 3  # agents outlive the stack
    second = spawn(cfg, stacks_emulator)
    output = tmp_path / "r.out"
    try:
        wait(lambda: output.read_text().count("adopted") == 3, [second], limit=30)
        release.touch()
        wait(lambda: len(em.list_jobs(state="finished")) == 6, [second], limit=30)
    finally:
        assert stop([second]) == [0]
    assert all(accepted_count(stacks_emulator, j) == 1 for j in jobs)
    assert all(em.job(j).finish.exit_status == 0 for j in jobs)  # type: ignore[union-attr]
    text = output.read_text()
    assert "adopted" in text
    assert stacks_emulator.token not in text
    assert "bkjat_" not in text


def blocked_jobs(server: EmulatorServer, n: int, release: Path) -> list[str]:
    """Jobs whose command runs until the test creates ``release``."""
    return server.emulator.create_jobs(n, command=f"while [ ! -e {release} ]; do sleep 0.1; done")


def running(server: EmulatorServer) -> int:
    return len(server.emulator.list_jobs(state="running"))


def test_a_restart_leaves_running_work_to_the_next_stack_which_adopts_it(
    stacks_emulator: EmulatorServer, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    release = tmp_path / "release"
    jobs = blocked_jobs(stacks_emulator, 4, release)
    cfg = write_config(tmp_path / "r.toml", stacks_emulator, "restart", "shutdown_grace = 2")
    first = spawn(cfg, stacks_emulator)
    try:
        wait(lambda: running(stacks_emulator) == 4, [first], limit=30)
    finally:
        assert stop([first]) == [0]  # SIGTERM, as a rolling update sends
    assert em.list_stacks() == []  # deregistered
    time.sleep(1.0)  # the agents outlive the stack: nothing killed, nothing failed
    assert running(stacks_emulator) == 4
    assert all(em.job(j).finish is None for j in jobs)
    second = spawn(cfg, stacks_emulator)
    output = tmp_path / "r.out"
    try:
        wait(lambda: output.read_text().count("adopted") == 4, [second], limit=30)
        release.touch()
        wait(lambda: len(em.list_jobs(state="finished")) == 4, [second], limit=30)
    finally:
        assert stop([second]) == [0]
    assert all(accepted_count(stacks_emulator, j) == 1 for j in jobs)
    assert all(em.job(j).finish.exit_status == 0 for j in jobs)  # type: ignore[union-attr]


def test_a_final_stop_tears_running_work_down(
    stacks_emulator: EmulatorServer, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    jobs = blocked_jobs(stacks_emulator, 3, tmp_path / "never")
    extra = 'shutdown_grace = 0.5\non_shutdown = "drain"'
    cfg = write_config(tmp_path / "d.toml", stacks_emulator, "final", extra)
    proc = spawn(cfg, stacks_emulator)
    try:
        wait(lambda: running(stacks_emulator) == 3, [proc], limit=30)
    finally:
        assert stop([proc]) == [0]
    assert em.list_stacks() == []
    assert running(stacks_emulator) == 0
    assert all(em.job(j).state == "finished" for j in jobs)  # the agents were stopped
    assert list((tmp_path / "final-work" / "pids").iterdir()) == []  # nothing left to adopt


def test_ctrl_c_says_what_it_waits_for_and_a_second_skips_the_grace(
    stacks_emulator: EmulatorServer, tmp_path: Path
) -> None:
    """``stacksapi run`` as a person runs it: Ctrl-C once, read, Ctrl-C again."""
    blocked_jobs(stacks_emulator, 2, tmp_path / "never")
    # subprocess.on_shutdown = "kill" (the old spelling) is a final stop: drain, then tear down
    cfg = write_config(tmp_path / "c.toml", stacks_emulator, "ctrl-c", "shutdown_grace = 120",
                       subprocess_extra='on_shutdown = "kill"\nkill_grace = 1')  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE", "STACKSAPI"))}
    env["BUILDKITE_CLUSTER_TOKEN"] = stacks_emulator.token
    out_path = tmp_path / "c.console"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stacksapi.cli", "run", "--config", str(cfg)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait(lambda: running(stacks_emulator) == 2, [proc], limit=30)
        proc.send_signal(signal.SIGINT)
        wait(lambda: "waiting for 2 agents" in out_path.read_text(), [proc], limit=15)
        text = out_path.read_text()
        assert re.search(r"waiting for 2 agents to finish, 1[12]\d s of grace left", text), text
        assert "Ctrl-C again" in text
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0
    assert time.monotonic() - began < 30  # far less than the 120 s grace
    assert "stop now" in out_path.read_text()
    assert running(stacks_emulator) == 0
    assert stacks_emulator.emulator.list_stacks() == []
