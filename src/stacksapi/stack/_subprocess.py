"""``SubprocessDispatcher``: one local agent process per job.

The command template (by default ``buildkite-agent start --acquire-job {job_uuid}``) is run
without a shell, in its own process group (so cancel kills the agent and everything it started),
with the job acquisition token in ``BUILDKITE_AGENT_TOKEN`` and the uuid in
``BUILDKITE_AGENT_ACQUIRE_JOB``: never on the command line, never the cluster token (which is
removed from the inherited environment). Each job gets a working directory and a log file; a pid
file lets a restarted stack adopt agents that are still running instead of starting them twice
(agents outlive a stack that was killed, and, by default, one that was stopped: see the stack's
``on_shutdown``). Adopted agents are reported with state unknown; the runtime asks the API.

Layout under ``work_dir`` (a fresh temporary directory when not configured)::

    jobs/<uuid>/      the agent's working directory
    logs/<uuid>.log   its combined stdout and stderr (or under ``log_dir``)
    pids/<uuid>.pid   its pid while it runs
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import tempfile
from collections.abc import Collection
from pathlib import Path

from ._config import SubprocessConfig
from ._dispatcher import (
    AdoptedJob,
    AdoptedState,
    AgentExit,
    DispatchError,
    DispatchRequest,
    DispatchSink,
)
from ._planning import redact_tokens
from ._preflight import CheckResult, check_subprocess

__all__ = ["SubprocessDispatcher"]

_log = logging.getLogger("stacksapi.stack")
_STRIPPED_ENV = ("BUILDKITE_CLUSTER_TOKEN", "BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB")
_TAIL_BYTES = 64 * 1024


class SubprocessDispatcher:
    """Runs ``config.command`` once per job as a local process. See the module docstring."""

    def __init__(self, config: SubprocessConfig | None = None) -> None:
        self.config = config or SubprocessConfig()
        self._root: Path | None = None
        self._sink: DispatchSink | None = None
        self._procs: dict[str, asyncio.subprocess.Process] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._killers: set[asyncio.Task[None]] = set()
        self._launching: set[str] = set()
        self._agent_token: str | None = None

    @property
    def work_dir(self) -> Path:
        """The root directory (created by :meth:`start`)."""
        if self._root is None:
            raise RuntimeError("SubprocessDispatcher.start() has not run")
        return self._root

    def log_path(self, job_uuid: str) -> Path:
        """Where the agent for ``job_uuid`` writes its output."""
        base = Path(self.config.log_dir) if self.config.log_dir else self.work_dir / "logs"
        return base / f"{_safe(job_uuid)}.log"

    async def check(self) -> list[CheckResult]:
        """For ``stacksapi run --check``: the command resolves, the work directory is writable."""
        return check_subprocess(self.config)

    async def start(self, sink: DispatchSink) -> Collection[AdoptedJob]:
        """Create the directories and adopt agents still running from a previous run."""
        self._sink = sink
        if self.config.agent_token_env:
            self._agent_token = os.environ.get(self.config.agent_token_env) or None
        self._root, running = _prepare(self.config)
        for uuid, pid in running.items():
            self._watchers[uuid] = asyncio.create_task(self._watch_adopted(uuid, pid))
        return [AdoptedJob(uuid, AdoptedState.UNKNOWN) for uuid in running]

    def _argv(self, request: DispatchRequest, cwd: Path) -> list[str]:
        values = {
            "job_uuid": request.job_uuid,
            "stack_key": request.stack_key,
            "queue_key": request.queue_key,
            "work_dir": str(cwd),
        }
        return [word.format_map(values) for word in self.config.command]

    def _env(self, request: DispatchRequest) -> dict[str, str]:
        if self.config.inherit_env:
            env = dict(os.environ)
        else:
            env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
        for name in _STRIPPED_ENV:
            env.pop(name, None)
        env.update(self.config.env)
        env.update(request.extra_env)
        if request.token is not None:
            token = request.token.get_secret_value()
        elif self._agent_token is not None:
            token = self._agent_token
        else:
            raise DispatchError(
                "no job acquisition token was issued and no agent token is configured "
                "(set subprocess.agent_token_env to use an explicit agent token)"
            )
        env["BUILDKITE_AGENT_ACQUIRE_JOB"] = request.job_uuid
        env["BUILDKITE_AGENT_TOKEN"] = token
        return env

    async def dispatch(self, request: DispatchRequest) -> None:
        """Start the agent process; raise :class:`DispatchError` if it cannot be started."""
        uuid = request.job_uuid
        if uuid in self._procs or uuid in self._watchers or uuid in self._launching:
            raise DispatchError(f"an agent for job {uuid} is already running here")
        cwd = self.work_dir / "jobs" / _safe(uuid)
        argv = self._argv(request, cwd)
        env = self._env(request)
        log_path = self.log_path(uuid)
        self._launching.add(uuid)
        try:
            cwd.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    cwd=cwd,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            self._cancel_reason.pop(uuid, None)
            raise DispatchError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
        finally:
            self._launching.discard(uuid)
        self._procs[uuid] = proc
        (self.work_dir / "pids" / f"{_safe(uuid)}.pid").write_text(f"{proc.pid}\n")
        self._watchers[uuid] = asyncio.create_task(self._watch(uuid, proc))
        if uuid in self._cancel_reason:  # cancelled while it was being launched
            self._stop(proc)
        _log.info(
            "job %s: agent started (pid %d, log %s)", uuid, proc.pid, log_path,
            extra={"job_uuid": uuid},
        )  # fmt: skip

    async def _watch(self, uuid: str, proc: asyncio.subprocess.Process) -> None:
        status = await proc.wait()
        self._procs.pop(uuid, None)
        self._watchers.pop(uuid, None)
        (self.work_dir / "pids" / f"{_safe(uuid)}.pid").unlink(missing_ok=True)
        reason = self._cancel_reason.pop(uuid, None)
        output = self._tail(uuid)
        _log.info("job %s: agent exited with status %s", uuid, status, extra={"job_uuid": uuid})
        if self._sink is not None:
            error = f"The agent was stopped: {reason}" if reason else None
            self._sink.agent_ended(AgentExit(uuid, status, output, error))

    async def _watch_adopted(self, uuid: str, pid: int) -> None:
        while True:
            if not _alive(pid, uuid):
                break
            await asyncio.sleep(0.5)
        self._watchers.pop(uuid, None)
        (self.work_dir / "pids" / f"{_safe(uuid)}.pid").unlink(missing_ok=True)
        reason = self._cancel_reason.pop(uuid, None)  # a new agent for the job starts clean
        if self._sink is not None:
            error = f"The agent was stopped: {reason}" if reason else None
            self._sink.agent_ended(AgentExit(uuid, None, self._tail(uuid), error))

    def _adopted_pids(self) -> dict[str, int]:
        """Agents watched by pid only (adopted at start): uuid -> pid, from their pid files."""
        found: dict[str, int] = {}
        for uuid in self._watchers:
            if uuid not in self._procs and self._root is not None:
                pid = _read_pid(self._root / "pids" / f"{_safe(uuid)}.pid")
                if pid is not None:
                    found[uuid] = pid
        return found

    def _tail(self, uuid: str) -> str:
        try:
            with self.log_path(uuid).open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - _TAIL_BYTES))
                data = f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""
        lines = data.splitlines()[-self.config.output_tail_lines :]
        # An explicit agent token need not have a token's shape: mask it by value too.
        return redact_tokens("\n".join(lines), self._agent_token)

    async def cancel(self, job_uuid: str, reason: str) -> None:
        """Kill the agent's process group: SIGTERM, then SIGKILL after ``kill_grace``."""
        if job_uuid in self._launching:  # dispatch() stops it once the process exists
            self._cancel_reason.setdefault(job_uuid, reason)
            return
        proc = self._procs.get(job_uuid)
        if proc is None:
            adopted = self._adopted_pids().get(job_uuid)
            if adopted is not None:  # an adopted agent: stop its group; its watcher reports
                if job_uuid not in self._cancel_reason:
                    self._cancel_reason[job_uuid] = reason
                    _signal_group(adopted, signal.SIGTERM)
                    task = asyncio.create_task(self._kill_adopted_after_grace(job_uuid, adopted))
                    self._killers.add(task)
                    task.add_done_callback(self._killers.discard)
            elif job_uuid not in self._watchers and self._sink is not None:
                self._sink.agent_ended(AgentExit(job_uuid, None, "", f"cancelled: {reason}"))
            return
        if job_uuid in self._cancel_reason:
            return  # already being stopped
        self._cancel_reason[job_uuid] = reason
        self._stop(proc)

    def _stop(self, proc: asyncio.subprocess.Process) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        # Escalate in the background: the runtime's loop must not wait out the grace period.
        task = asyncio.create_task(self._kill_after_grace(proc))
        self._killers.add(task)
        task.add_done_callback(self._killers.discard)

    async def _kill_after_grace(self, proc: asyncio.subprocess.Process) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), self.config.kill_grace)
        except TimeoutError:
            _signal_group(proc.pid, signal.SIGKILL)

    async def _kill_adopted_after_grace(self, uuid: str, pid: int) -> None:
        deadline = asyncio.get_running_loop().time() + self.config.kill_grace
        while _alive(pid, uuid) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # another process: no event to wait on
        if _alive(pid, uuid):
            _signal_group(pid, signal.SIGKILL)

    async def shutdown(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running agents, then stop watching them. Agents
        still running are left alone (a restarted stack with the same ``work_dir`` adopts them);
        the runtime tears them down first (``cancel``) when the stop is final (``on_shutdown =
        "drain"``). The deprecated ``subprocess.on_shutdown = "kill"`` still kills them here."""
        watchers = list(self._watchers.values())
        if watchers and grace > 0:
            await asyncio.wait(watchers, timeout=grace)
        adopted = self._adopted_pids()
        if self.config.on_shutdown == "kill":
            for uuid, proc in list(self._procs.items()):
                if proc.returncode is None and uuid not in self._cancel_reason:
                    self._cancel_reason[uuid] = "the stack is shutting down"
                    self._stop(proc)
            for pid in adopted.values():
                _signal_group(pid, signal.SIGTERM)
        if self._killers:  # stopped agents: let them die (SIGKILL after kill_grace)
            await asyncio.wait(list(self._killers), timeout=self.config.kill_grace + 1)
        if self.config.on_shutdown == "kill" and adopted:
            await asyncio.sleep(min(self.config.kill_grace, 1.0))
            for uuid, pid in adopted.items():
                if _alive(pid, uuid):
                    _signal_group(pid, signal.SIGKILL)
        watchers = list(self._watchers.values())
        if watchers and self.config.on_shutdown == "kill":  # let each report its end
            await asyncio.wait(watchers, timeout=1.0)
        for task in list(self._watchers.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers.clear()
        self._procs.clear()


def _prepare(config: SubprocessConfig) -> tuple[Path, dict[str, int]]:
    """Create the directories; return the root and the agents still running (uuid -> pid)."""
    if config.work_dir:
        root = Path(config.work_dir).resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="stacksapi-stack-"))
    for sub in ("jobs", "logs", "pids"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if config.log_dir:
        Path(config.log_dir).mkdir(parents=True, exist_ok=True)
    running: dict[str, int] = {}
    for pid_file in sorted((root / "pids").glob("*.pid")):
        uuid, pid = pid_file.stem, _read_pid(pid_file)
        if pid is not None and _alive(pid, uuid):
            running[uuid] = pid
        else:
            pid_file.unlink(missing_ok=True)
    return root, running


def _safe(uuid: str) -> str:
    """A uuid as a file name (job uuids are hex and dashes; anything else is replaced)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", uuid)[:200] or "_"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int, uuid: str) -> bool:
    """True when ``pid`` runs and (where /proc exists) is the agent of ``uuid``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True
    try:
        if (proc / "stat").read_text().split(") ")[-1].startswith("Z"):
            return False
        environ = (proc / "environ").read_bytes()
    except OSError:
        return True
    return f"BUILDKITE_AGENT_ACQUIRE_JOB={uuid}".encode() in environ


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
