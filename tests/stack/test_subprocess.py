"""SubprocessDispatcher: real agent processes (the emulated agent) driven by a real Stack."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import anyio
import pytest
from stack_helpers import Run, accepted_count, config, eventually, no_429, state

from stacksapi import AsyncClient, Secret
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import (
    AdoptedJob,
    AdoptedState,
    AgentExit,
    DispatchError,
    DispatchRequest,
    SubprocessConfig,
    SubprocessDispatcher,
)

pytestmark = pytest.mark.anyio

AGENT = [sys.executable, "-m", "stacksapi.emulator._agent", "start", "--acquire-job", "{job_uuid}"]


def sub_config(server: EmulatorServer, tmp_path: Path, **changes: object) -> SubprocessConfig:
    base = SubprocessConfig(
        command=tuple(AGENT),
        env={"BUILDKITE_AGENT_ENDPOINT": server.base_url.rstrip("/")},
        work_dir=str(tmp_path / "work"),
        kill_grace=2.0,
    )
    fields = {k: v for k, v in vars(base).items() if not k.startswith("_")}
    fields.update(changes)
    return SubprocessConfig(**fields)


def start_stack(client: AsyncClient, server: EmulatorServer, sub: SubprocessConfig) -> Run:
    dispatcher = SubprocessDispatcher(sub)
    run = Run(client, config(subprocess=sub), dispatcher)
    run.task = asyncio.create_task(run.stack.run_async())
    return run


async def test_runs_agents_as_processes(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BUILDKITE_CLUSTER_TOKEN", stacks_emulator.token)
    em = stacks_emulator.emulator
    ok = em.create_job(command="echo hello from the job")
    bad = em.create_job(command="echo failing >&2; exit 3")
    leak = em.create_job(command='echo "cluster=${BUILDKITE_CLUSTER_TOKEN:-unset}"')
    sub = sub_config(stacks_emulator, tmp_path)
    run = start_stack(async_stacks_client, stacks_emulator, sub)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in (ok, bad, leak)))
    await run.until(lambda: not run.stack.in_flight)  # every agent exited and was reported
    await run.stop()
    assert em.job(ok).finish is not None
    assert em.job(ok).finish.exit_status == 0  # type: ignore[union-attr]
    assert em.job(bad).finish.exit_status == 3  # type: ignore[union-attr]
    assert "hello from the job" in em.job(ok).log
    assert "cluster=unset" in em.job(leak).log  # the cluster token never reaches the agent
    logs = tmp_path / "work" / "logs"
    for job in (ok, bad, leak):
        assert accepted_count(stacks_emulator, job) == 1
        text = (logs / f"{job}.log").read_text()
        assert "bkjat_" not in text
        assert stacks_emulator.token not in text
    assert (tmp_path / "work" / "jobs" / ok).is_dir()
    assert list((tmp_path / "work" / "pids").iterdir()) == []
    assert no_429(stacks_emulator)


async def test_missing_agent_binary_finishes_the_job(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    sub = sub_config(stacks_emulator, tmp_path, command=("no-such-agent-binary", "{job_uuid}"))
    run = start_stack(async_stacks_client, stacks_emulator, sub)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    finish = em.job(job).finish
    assert finish is not None
    assert finish.signal_reason == "stack_error"
    assert finish.detail is not None
    assert "cannot run 'no-such-agent-binary'" in finish.detail


async def test_agent_exiting_before_accept_reports_its_last_output(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    script = "echo pulling image; echo 'error: image not found' >&2; exit 7"
    sub = sub_config(stacks_emulator, tmp_path, command=("sh", "-c", script))
    run = start_stack(async_stacks_client, stacks_emulator, sub)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    finish = em.job(job).finish
    assert finish is not None
    assert finish.exit_status == -1
    assert finish.detail is not None
    assert "status 7" in finish.detail
    assert "error: image not found" in finish.detail


async def test_cancel_while_provisioning_kills_the_process_group(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, tmp_path: Path
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    marker = tmp_path / "child.pid"
    # A "provisioning" agent that never acquires and has a child of its own.
    script = f"sleep 60 & echo $! > {marker}; wait"
    sub = sub_config(stacks_emulator, tmp_path, command=("sh", "-c", script))
    run = start_stack(async_stacks_client, stacks_emulator, sub)
    await run.until(marker.exists)
    await run.until(lambda: marker.read_text().strip() != "")
    child = int(marker.read_text())
    em.cancel_job(job)
    await run.until(lambda: job not in run.stack.in_flight)
    await run.stop()
    await eventually(lambda: not alive(child))  # the kill is delivered
    assert state(stacks_emulator, job) == "canceled"
    assert accepted_count(stacks_emulator, job) == 0


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[-1][:1] not in {"Z", "X"}


class Sink:
    def __init__(self) -> None:
        self.ended: list[AgentExit] = []

    def agent_ended(self, result: AgentExit) -> None:
        self.ended.append(result)


def request(uuid: str, token: str | None = "bkjat_secret") -> DispatchRequest:
    import datetime as dt

    from stacksapi import ScheduledJob

    job = ScheduledJob(id=uuid, scheduled_at=dt.datetime.now(dt.UTC))
    return DispatchRequest(job, "s", "q", Secret(token) if token else None)


async def test_token_only_in_environment_and_restart_adopts(tmp_path: Path) -> None:
    uuid = "0190aaaa-0000-4000-8000-000000000001"
    out = tmp_path / "seen.txt"
    script = f'echo "$0 $* token=$BUILDKITE_AGENT_TOKEN job=$BUILDKITE_AGENT_ACQUIRE_JOB" > {out}'
    command = ("sh", "-c", script + "; sleep 30", "agent", "--acquire-job", "{job_uuid}")
    sub = SubprocessConfig(
        command=command, work_dir=str(tmp_path / "w"), kill_grace=1.0, on_shutdown="leave"
    )
    first, sink = SubprocessDispatcher(sub), Sink()
    assert await first.start(sink) == []
    await first.dispatch(request(uuid))
    await eventually(lambda: out.exists() and out.read_text() != "")
    seen = out.read_text()
    assert f"--acquire-job {uuid} token=bkjat_secret job={uuid}" in seen
    await first.shutdown(0)  # on_shutdown="leave": a stopping stack leaves a running agent...
    second, sink2 = SubprocessDispatcher(sub), Sink()
    assert list(await second.start(sink2)) == [
        AdoptedJob(uuid, AdoptedState.UNKNOWN)
    ]  # ...and a restarted one adopts it
    with pytest.raises(DispatchError, match="already running"):
        await second.dispatch(request(uuid))
    await second.cancel(uuid, "its token is expiring")  # an adopted agent is killed by pid
    await eventually(lambda: bool(sink2.ended))
    assert sink2.ended[0].job_uuid == uuid
    assert "its token is expiring" in (sink2.ended[0].error or "")
    out.unlink()
    await second.dispatch(request(uuid, "bkjat_fresh"))  # the job again, with a fresh token
    await eventually(lambda: out.exists() and "bkjat_fresh" in out.read_text())
    await asyncio.sleep(0.3)
    assert len(sink2.ended) == 1  # the new agent was not stopped by the old agent's cancel
    await second.cancel(uuid, "test over")
    await eventually(lambda: len(sink2.ended) == 2)
    await second.shutdown(0)


async def test_no_token_and_no_agent_token_is_a_dispatch_error(tmp_path: Path) -> None:
    d = SubprocessDispatcher(SubprocessConfig(command=("true",), work_dir=str(tmp_path)))
    await d.start(Sink())
    with pytest.raises(DispatchError, match="agent_token_env"):
        await d.dispatch(request("0190aaaa-0000-4000-8000-000000000002", token=None))
    await d.shutdown(0)


async def test_unusable_work_dir_ends_the_run_with_a_reason(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sub = sub_config(stacks_emulator, tmp_path, work_dir=str(blocker / "work"))
    run = start_stack(async_stacks_client, stacks_emulator, sub)
    assert run.task is not None
    with anyio.fail_after(15):
        result = await run.task
    assert result.exit_code == 1
    assert "dispatcher failed to start" in result.reason
    assert stacks_emulator.emulator.list_stacks() == []  # registered, then deregistered


async def test_cancel_while_the_process_is_being_launched_kills_it(tmp_path: Path) -> None:
    uuid = "0190aaaa-0000-4000-8000-000000000003"
    sub = SubprocessConfig(command=("sleep", "30"), work_dir=str(tmp_path / "w"), kill_grace=1.0)
    d, sink = SubprocessDispatcher(sub), Sink()
    await d.start(sink)
    launch = asyncio.create_task(d.dispatch(request(uuid)))
    await asyncio.sleep(0)  # the launch is under way, the process not yet known
    await d.cancel(uuid, "the job was canceled")
    await launch
    pid_file = tmp_path / "w" / "pids" / f"{uuid}.pid"
    await eventually(lambda: bool(sink.ended) and not pid_file.exists())
    assert len(sink.ended) == 1  # reported once, when the process is gone
    assert sink.ended[0].error is not None
    assert "the job was canceled" in sink.ended[0].error
    await d.shutdown(0)


async def test_explicit_agent_token_serves_only_jobs_without_an_acquisition_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_AGENT_TOKEN", "bkat_explicit_agent_token")
    out = tmp_path / "seen.txt"
    command = ("sh", "-c", f'echo "$BUILDKITE_AGENT_ACQUIRE_JOB $BUILDKITE_AGENT_TOKEN" >> {out}')
    sub = SubprocessConfig(
        command=command, work_dir=str(tmp_path / "w"), agent_token_env="MY_AGENT_TOKEN"
    )
    d, sink = SubprocessDispatcher(sub), Sink()
    await d.start(sink)
    without, with_token = (
        "0190aaaa-0000-4000-8000-000000000004",
        "0190aaaa-0000-4000-8000-000000000005",
    )
    await d.dispatch(request(without, token=None))  # issue_tokens = false
    await d.dispatch(request(with_token))
    await eventually(lambda: len(sink.ended) == 2)
    seen = sorted(out.read_text().splitlines())
    assert seen == sorted([f"{without} bkat_explicit_agent_token", f"{with_token} bkjat_secret"])
    await d.shutdown(0)


async def test_token_shapes_in_the_agent_output_never_reach_the_finish_detail(
    tmp_path: Path,
) -> None:
    leaked = "bkat_agenttoken123 bkar_registration1 x_bkct_clustertoken9 bkjat_jobtoken77"
    command = ("sh", "-c", f'echo "fatal: bad credentials {leaked}"; exit 3')
    d, sink = (
        SubprocessDispatcher(SubprocessConfig(command=command, work_dir=str(tmp_path))),
        Sink(),
    )
    await d.start(sink)
    await d.dispatch(request("0190aaaa-0000-4000-8000-000000000006"))
    await eventually(lambda: bool(sink.ended))
    output = sink.ended[0].output
    assert "fatal: bad credentials" in output
    for secret in ("agenttoken123", "registration1", "clustertoken9", "jobtoken77"):
        assert secret not in output
    await d.shutdown(0)


async def test_shutdown_with_the_legacy_kill_policy_kills_running_agents(tmp_path: Path) -> None:
    uuid = "0190aaaa-0000-4000-8000-000000000003"
    started = tmp_path / "started"
    command = ("sh", "-c", f"touch {started}; sleep 30 & wait", "agent", "{job_uuid}")
    sub = SubprocessConfig(
        command=command, work_dir=str(tmp_path / "w"), kill_grace=1.0, on_shutdown="kill"
    )
    assert SubprocessConfig().on_shutdown is None  # by default the stack's on_shutdown rules
    dispatcher, sink = SubprocessDispatcher(sub), Sink()
    await dispatcher.start(sink)
    await dispatcher.dispatch(request(uuid))
    await eventually(started.exists)
    pid = int((tmp_path / "w" / "pids" / f"{uuid}.pid").read_text().split()[0])
    assert _live_in_group(pid)
    await dispatcher.shutdown(0.2)
    assert _live_in_group(pid) == []  # the whole group is gone, the background sleep included
    (ended,) = sink.ended
    assert ended.job_uuid == uuid
    assert ended.error is not None
    assert "shutting down" in ended.error
    assert list(await SubprocessDispatcher(sub).start(Sink())) == []  # nothing left to adopt


def test_on_shutdown_must_be_kill_or_leave() -> None:
    with pytest.raises(ValueError, match=r"subprocess\.on_shutdown: must be one of kill, leave"):
        SubprocessConfig(on_shutdown="linger")


def _live_in_group(pgid: int) -> list[int]:
    """Pids of the process group that are not zombies (PID 1 here may never reap orphans)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live
