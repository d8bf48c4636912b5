"""Chaos runs with real stack processes: SIGKILL mid-run, restarts, several stacks on one queue.

Stacks run as ``python -m stacksapi.stack`` with the default ``SubprocessDispatcher``; each job's
agent is the emulated agent (``python -m stacksapi.emulator._agent``) in its own session, so it
outlives a killed stack, as a real ``buildkite-agent`` would, and a restarted stack with the same
work directory adopts it. After a kill the emulator's clock jumps past the reservation expiry:
the dead stack's reservations must end there and their jobs list again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ._world import DEFAULT_FAULTS, RunReport, World, verify

__all__ = [
    "AGENT",
    "EXPIRY",
    "StackProcess",
    "finish_run",
    "kill_and_restart",
    "shared_key_rolling_update",
    "shared_queue",
    "wait",
]

AGENT = [sys.executable, "-m", "stacksapi.emulator._agent", "start", "--acquire-job", "{job_uuid}"]
EXPIRY = 10  # the stack's reservation expiry (the smallest it accepts)
DRAIN_LIMIT = 90.0


class StackProcess:
    """One stack key run as a process; ``start`` again after a kill restarts it (same work dir)."""

    def __init__(
        self,
        world: World,
        key: str,
        root: Path,
        *,
        max_in_flight: int = 6,
        command: list[str] | None = None,
        extra: str = "",
    ) -> None:
        self.world = world
        self.key = key
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / f"{key}.toml"
        self.output = root / f"{key}.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        command_toml = ", ".join(json.dumps(w) for w in (command or AGENT))  # TOML-safe quoting
        endpoint = world.base_url.rstrip("/")
        self.config.write_text(
            f"""
[stack]
key = "{key}"
base_url = "{world.base_url}"
poll_interval = 0.1
state_check_interval = 0.2
reservation_expiry_seconds = {EXPIRY}
max_in_flight = {max_in_flight}
shutdown_grace = 5
{extra}

[subprocess]
command = [{command_toml}]
env = {{ BUILDKITE_AGENT_ENDPOINT = "{endpoint}" }}
work_dir = "{root / (key + "-work")}"
kill_grace = 2
"""
        )

    def _seen_since(self, when: float) -> bool:
        """Whether the emulator heard from this stack key after ``when`` (emulator time)."""
        em = self.world.emulator
        with em.lock:
            record = em.stacks.get(self.key)
            return record is not None and record.last_seen > when

    def start(self, *, ready: bool = True) -> None:
        """Start the process; with ``ready``, wait until it has talked to the emulator (before
        that its SIGTERM handler may not be installed, so a SIGTERM would end it like a SIGKILL)."""
        before = self.world.emulator.now()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BUILDKITE", "STACKSAPI"))}
        env["BUILDKITE_CLUSTER_TOKEN"] = self.world.token
        argv = [sys.executable, "-m", "stacksapi.stack", "--config", str(self.config)]
        with self.output.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts += 1
        if ready:
            wait(lambda: self._seen_since(before), [self], 30)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no deregistration, agents left running."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        """SIGTERM and wait: the clean shutdown (the exit code; 0 expected)."""
        if self.proc is None or self.proc.poll() is not None:
            return -1 if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def wait(cond: Callable[[], bool], stacks: list[StackProcess], limit: float) -> None:
    """Wait until ``cond()`` holds; fail if a stack that should run exited (a safety limit)."""
    deadline = time.monotonic() + limit
    while not cond():
        for s in stacks:
            if not s.alive:
                tail = s.output.read_text()[-2000:] if s.output.exists() else ""
                raise AssertionError(f"stack {s.key} exited early:\n{tail}")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


def _progressed(world: World, jobs: list[str], target: int) -> Callable[[], bool]:
    def cond() -> bool:
        states = world.states(jobs).values()
        return sum(s not in ("scheduled", "reserved") for s in states) >= target

    return cond


def _kill(world: World, victim: StackProcess, problems: list[str]) -> None:
    """SIGKILL ``victim``; then jump past the reservation expiry: its reservations must end."""
    victim.kill()
    world.jump(EXPIRY + 1)
    left = world.reserved_by(victim.key)
    if left:
        problems.append(f"{victim.key} killed: {len(left)} jobs still reserved after expiry")


def finish_run(
    world: World, jobs: list[str], stacks: list[StackProcess], *, name: str, problems: list[str]
) -> RunReport:
    world.stop_faults()
    began = time.monotonic()
    try:
        wait(lambda: world.all_terminal(jobs), stacks, DRAIN_LIMIT)
    finally:
        drained = time.monotonic() - began
        codes = {s.key: s.stop() for s in stacks}
    report = verify(
        world, jobs, name=name, restarts=sum(s.starts - 1 for s in stacks), drain_seconds=drained
    )
    report.problems.extend(problems)
    for key, code in codes.items():
        if code != 0:
            report.problems.append(f"{key}: exit code {code} after SIGTERM, not 0")
    for s in stacks:
        text = s.output.read_text() if s.output.exists() else ""
        if world.token in text or "bkjat_" in text.replace("bkjat_[REDACTED]", ""):
            report.problems.append(f"{s.key}: a token appears in the stack's output")
    return report


def kill_and_restart(
    seed: int, jobs: int, root: Path, *, kills: int = 2, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """One stack, SIGKILLed mid-run ``kills`` times and started again each time."""
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs, command="true")
        stack = StackProcess(world, "chaos-kill", root)
        problems: list[str] = []
        stack.start()
        try:
            for round_ in range(kills):
                target = (round_ + 1) * jobs // (kills + 2)
                wait(_progressed(world, ids, target), [stack], 60)
                _kill(world, stack, problems)
                stack.start()
            return finish_run(
                world, ids, [stack], name=f"SIGKILL x{kills} seed={seed}", problems=problems
            )
        finally:
            if stack.alive:
                stack.kill()


def shared_queue(
    seed: int, jobs: int, root: Path, *, stacks: int = 2, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """``stacks`` processes on one queue; one is SIGKILLed mid-run and restarted."""
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs, command="true")
        procs = [StackProcess(world, f"chaos-{i}", root, max_in_flight=4) for i in range(stacks)]
        problems: list[str] = []
        for p in procs:
            p.start()
        try:
            wait(_progressed(world, ids, jobs // 3), procs, 60)
            victim = procs[seed % stacks]
            _kill(world, victim, problems)
            wait(_progressed(world, ids, jobs // 2), [p for p in procs if p is not victim], 60)
            victim.start()
            return finish_run(
                world, ids, procs, name=f"{stacks} stacks, 1 killed seed={seed}", problems=problems
            )
        finally:
            for p in procs:
                if p.alive:
                    p.kill()


def shared_key_rolling_update(
    seed: int, jobs: int, root: Path, *, faults: str = DEFAULT_FAULTS
) -> RunReport:
    """Two processes with ONE stack key (issue 9, item 7); midway one gets SIGTERM and a new
    one starts in its place, as a rolling update of a Deployment does.

    Measured before the fix: the stopped replica's deregistration made the other exit 1
    ("polling failed permanently: 404") and stranded jobs. Now the other registers again and
    goes on; agents that lose the acquire race are not failed jobs; nothing runs twice.
    """
    with World(seed, faults=faults) as world:
        ids = world.emulator.create_jobs(jobs, command="true")
        procs = [StackProcess(world, "chaos-twin", root / name, max_in_flight=4)
                 for name in ("a", "b")]  # fmt: skip
        problems: list[str] = []
        for p in procs:
            p.start()
        try:
            wait(_progressed(world, ids, jobs // 3), procs, 60)
            code = procs[0].stop()  # SIGTERM: deregisters the shared key
            if code != 0:
                problems.append(f"the stopped replica exited {code}, not 0")
            procs[0].start()  # the replacement replica, at once (as a rolling update does)
            report = finish_run(
                world, ids, procs, name=f"one key, rolling update seed={seed}", problems=problems
            )
        finally:
            for p in procs:
                if p.alive:
                    p.kill()
    # One key, one rate-limit budget: two processes pacing themselves to all of it go over it
    # now and then (the 429s are honoured). Expected with a shared key; nothing else is.
    report.problems = [p for p in report.problems if "beyond the rate limits" not in p]
    failed = report.outcomes.get("finished by stack", 0)
    if failed:
        report.problems.append(f"{failed} jobs failed by a stack (a shared key must fail none)")
    return report
