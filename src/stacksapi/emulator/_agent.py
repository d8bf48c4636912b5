"""The emulated agent: ``buildkite-agent start --acquire-job`` for the emulator.

It reads the real agent's settings (``BUILDKITE_AGENT_ACQUIRE_JOB``, ``BUILDKITE_AGENT_TOKEN``,
``BUILDKITE_AGENT_ENDPOINT``, or the matching flags), acquires the job over the emulator's agent
routes, runs its ``command`` with ``/bin/sh -c`` in its own process group, streams the output to
stdout and to the job log, watches for a cancel, and reports the exit status. It talks to the agent
API with httpx2 directly: that API is not the Stacks API, so ``stacksapi.Client`` has no part here.

Exit codes never mix the agent's outcome with the job's. Like ``buildkite-agent start
--acquire-job``, an agent that ran the job exits 0 whatever the command exited with: the command's
status (128 + N when it died of signal N) goes to the server in the finish. Nonzero is the agent's
own failure: :data:`EXIT_USAGE`, :data:`EXIT_ACQUIRE_FAILED` (27, the real agent's code for a
refused acquire) or :data:`EXIT_UNREACHABLE` (no server) with one line on stderr fit to be a
finish ``detail``, or :data:`EXIT_AGENT_ERROR`. ``--reflect-exit-status`` exits with the
command's status instead, as the real agent's flag does; then a job's status can equal one of
the agent's codes.
No token ever appears in what the agent prints or passes to the command.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import httpx2

from stacksapi._endpoints import escape_path_segment
from stacksapi._redact import redact_tokens
from stacksapi._retry import parse_retry_after

__all__ = [
    "EXIT_ACQUIRE_FAILED",
    "EXIT_AGENT_ERROR",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "main",
]

EXIT_USAGE = 2
"""Missing or invalid settings (job id, token, endpoint)."""
EXIT_ACQUIRE_FAILED = 27
"""The server refused the acquire. 27 is what ``buildkite-agent`` exits with when it does."""
EXIT_UNREACHABLE = 1
"""The server could not be reached, or answered the acquire with nonsense: a plain failure."""
EXIT_AGENT_ERROR = 4
"""Acquired, but the command could not be started."""

_PROG = "stacksapi-agent"
_DEFAULT_GRACE_S = 10.0
_POLL_INTERVAL_S = 0.3
_LOG_CHUNK_BYTES = 256 * 1024
_CANCEL_STATES = frozenset({"canceling", "canceled"})
_PASSTHROUGH_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM")
_SECRET_ENV = ("BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACCESS_TOKEN")
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _UsageError(Exception):
    pass


class _AgentError(Exception):
    """A failure worth one line on stderr; ``refused``: the server said no (not unreachable)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True, slots=True)
class _Options:
    job_id: str
    token: str
    endpoint: str
    grace: float
    reflect_exit_status: bool = False


@dataclass(frozen=True, slots=True)
class _AcquiredJob:
    id: str
    command: str
    env: dict[str, str]
    access_token: str


def _parse(argv: list[str]) -> _Options:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Acquire one job from the stacksapi emulator and run it.",
    )
    parser.add_argument("command", nargs="?", choices=["start"], help="optional, like the agent")
    parser.add_argument("--acquire-job", help="job uuid (or BUILDKITE_AGENT_ACQUIRE_JOB)")
    parser.add_argument(
        "--token",
        help="job acquisition or cluster token (or BUILDKITE_AGENT_TOKEN)",
    )
    parser.add_argument("--endpoint", help="agent API base URL (or BUILDKITE_AGENT_ENDPOINT)")
    parser.add_argument(
        "--cancel-grace-period",
        type=float,
        help=f"seconds between TERM and KILL on cancel (default {_DEFAULT_GRACE_S:g})",
    )
    parser.add_argument(
        "--reflect-exit-status",
        action="store_true",
        help="exit with the job command's status instead of 0 once the job ran and was reported",
    )
    # Flags the real agent takes and this one does not need (tags, name...) are ignored.
    args, _unknown = parser.parse_known_args(argv)
    env = os.environ
    job_id = (args.acquire_job or env.get("BUILDKITE_AGENT_ACQUIRE_JOB") or "").strip()
    token = (args.token or env.get("BUILDKITE_AGENT_TOKEN") or "").strip()
    endpoint = (args.endpoint or env.get("BUILDKITE_AGENT_ENDPOINT") or "").strip()
    if not job_id:
        raise _UsageError("no job to acquire: set BUILDKITE_AGENT_ACQUIRE_JOB or --acquire-job")
    if not token:
        raise _UsageError("no token: set BUILDKITE_AGENT_TOKEN or --token")
    if not endpoint.startswith(("http://", "https://")):
        raise _UsageError(
            "BUILDKITE_AGENT_ENDPOINT (or --endpoint) must be an http(s) URL such as "
            "http://127.0.0.1:PORT/v3"
        )
    grace = args.cancel_grace_period
    if grace is None:
        raw = env.get("BUILDKITE_CANCEL_GRACE_PERIOD", "")
        try:
            grace = float(raw) if raw else _DEFAULT_GRACE_S
        except ValueError:
            raise _UsageError("BUILDKITE_CANCEL_GRACE_PERIOD must be a number of seconds") from None
    if not 0.0 <= grace <= 3600.0:
        raise _UsageError("cancel grace period must be between 0 and 3600 seconds")
    return _Options(
        job_id=job_id,
        token=token,
        endpoint=endpoint.rstrip("/") + "/",
        grace=grace,
        reflect_exit_status=args.reflect_exit_status,
    )


class _Agent:
    """One acquisition and one run: the whole life of an emulated agent."""

    def __init__(self, options: _Options) -> None:
        self.options = options
        self.secrets = [options.token]
        self.path = f"jobs/{escape_path_segment(options.job_id)}"
        self.http = httpx2.Client(
            base_url=options.endpoint,
            timeout=httpx2.Timeout(10.0, connect=5.0),
            headers={"Accept": "application/json", "User-Agent": f"{_PROG}/1"},
        )
        self.stop_requested = threading.Event()
        self._log_lock = threading.Lock()
        self._pending = bytearray()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._log_warned = False

    # --- output ------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        return redact_tokens(text, *self.secrets, mask="[redacted]")

    def say(self, line: str) -> None:
        """One line on stderr, tokens removed and newlines folded."""
        text = self.redact(" ".join(line.split()))
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"{_PROG}: {text}\n")
            sys.stderr.flush()

    # --- HTTP --------------------------------------------------------------------------------

    def request(
        self, method: str, suffix: str, token: str, body: Any = None, *, attempts: int = 4
    ) -> httpx2.Response:
        """Send one agent API request, retrying connection errors, 429 and 5xx briefly."""
        headers = {"Authorization": f"Token {token}"}
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self.http.request(
                    method, f"{self.path}/{suffix}", json=body, headers=headers
                )
            except httpx2.TransportError as exc:
                if last:
                    raise _AgentError(
                        f"cannot reach {self.options.endpoint} ({type(exc).__name__})"
                    ) from None
                delay = min(0.2 * 2**attempt, 2.0)
            else:
                if response.status_code not in _RETRY_STATUSES or last:
                    return response
                delay = _retry_after(response, default=min(0.2 * 2**attempt, 2.0))
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def expect_ok(self, method: str, action: str, token: str, job_id: str) -> httpx2.Response:
        """A step that must answer 200; an ``_AgentError`` naming the step and the job otherwise."""
        try:
            response = self.request(method, action, token)
        except _AgentError as exc:
            raise _AgentError(f"{action} job {job_id} failed: {exc}") from None
        if response.status_code != 200:
            raise _AgentError(
                f"{action} job {job_id} refused: HTTP {response.status_code}: "
                f"{self.message(response)}",
                refused=True,
            )
        return response

    @staticmethod
    def message(response: httpx2.Response) -> str:
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            return str(data["message"])[:300]
        return response.reason_phrase or "no message"

    # --- the steps ---------------------------------------------------------------------------

    def acquire(self) -> _AcquiredJob:
        job_id = self.options.job_id
        response = self.expect_ok("POST", "acquire", self.options.token, job_id)
        try:
            data = response.json()
            command, env, access = data["command"], data.get("env") or {}, data["access_token"]
            if not isinstance(command, str) or not isinstance(access, str) or not access:
                raise TypeError
            if not isinstance(env, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise _AgentError(f"acquire job {job_id}: malformed response from server") from None
        self.secrets.append(access)
        clean_env = {str(k): str(v) for k, v in env.items()}
        return _AcquiredJob(id=job_id, command=command, env=clean_env, access_token=access)

    def state(self, job: _AcquiredJob) -> str | None:
        try:
            response = self.request("GET", "state", job.access_token, attempts=1)
            if response.status_code == 200:
                value = response.json().get("state")
                return value if isinstance(value, str) else None
        except (_AgentError, ValueError, AttributeError):
            pass
        return None

    def ship_logs(self, job: _AcquiredJob, *, final: bool = False) -> None:
        with self._log_lock:
            data, self._pending = bytes(self._pending), bytearray()
        text = self._decoder.decode(data, final=final)
        for start in range(0, len(text), _LOG_CHUNK_BYTES):
            piece = text[start : start + _LOG_CHUNK_BYTES]
            try:
                response = self.request("POST", "log", job.access_token, {"content": piece})
                ok = response.status_code < 300
            except _AgentError:
                ok = False
            if not ok and not self._log_warned:
                self._log_warned = True
                self.say(f"job {job.id}: could not upload log output; continuing")

    def finish(self, job: _AcquiredJob, exit_status: int, signal_reason: str | None) -> None:
        body = {"exit_status": exit_status, "signal_reason": signal_reason}
        try:
            response = self.request("PUT", "finish", job.access_token, body)
        except _AgentError as exc:
            self.say(f"job {job.id}: could not report finish: {exc}")
            return
        if response.status_code >= 300:
            self.say(
                f"job {job.id}: finish refused: HTTP {response.status_code}: "
                f"{self.message(response)}"
            )

    def pump(self, stream: BinaryIO, out: BinaryIO | None) -> None:
        """Copy the command's output to our stdout and the log buffer until EOF."""
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            if out is not None:
                try:
                    out.write(chunk)
                    out.flush()
                except (OSError, ValueError):
                    out = None
            with self._log_lock:
                self._pending.extend(chunk)

    def environment(self, job: _AcquiredJob) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        env.setdefault("PATH", os.defpath)
        env.update(
            {
                "BUILDKITE": "true",
                "CI": "true",
                "BUILDKITE_JOB_ID": job.id,
                "BUILDKITE_AGENT_NAME": f"{_PROG}-{os.getpid()}",
            }
        )
        env.update(job.env)
        for name in _SECRET_ENV:
            env.pop(name, None)
        return env

    def run(self) -> int:
        try:
            job = self.acquire()
        except _AgentError as exc:
            self.say(str(exc))
            return EXIT_ACQUIRE_FAILED if exc.refused else EXIT_UNREACHABLE
        try:
            self.expect_ok("PUT", "start", job.access_token, job.id)
            proc = subprocess.Popen(
                ["/bin/sh", "-c", job.command],
                env=self.environment(job),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except (_AgentError, OSError) as exc:
            reason = (
                str(exc) if isinstance(exc, _AgentError) else f"job {job.id}: cannot run: {exc}"
            )
            self.say(reason)
            cancelled = self.state(job) in _CANCEL_STATES
            self.finish(job, -1, "cancel" if cancelled else "process_run_error")
            return EXIT_AGENT_ERROR
        return self.supervise(job, proc)

    def supervise(self, job: _AcquiredJob, proc: subprocess.Popen[bytes]) -> int:
        """Stream output, watch for a cancel or a stop, then report how the command ended."""
        assert proc.stdout is not None
        out = getattr(sys.stdout, "buffer", None)
        reader = threading.Thread(target=self.pump, args=(proc.stdout, out), daemon=True)
        reader.start()
        reason: str | None = None
        kill_at: float | None = None
        next_poll = time.monotonic() + _POLL_INTERVAL_S
        while True:
            try:
                proc.wait(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if reason is None and self.stop_requested.is_set():
                reason = "agent_stop"
            if now >= next_poll:
                next_poll = now + _POLL_INTERVAL_S
                self.ship_logs(job)
                if reason is None and self.state(job) in _CANCEL_STATES:
                    reason = "cancel"
            if reason is not None and kill_at is None:
                _signal_group(proc.pid, signal.SIGTERM)
                kill_at = now + self.options.grace
            if kill_at is not None and now >= kill_at:
                _signal_group(proc.pid, signal.SIGKILL)
        if reason is not None:
            _signal_group(proc.pid, signal.SIGKILL)  # stragglers of a cancelled job
        reader.join(timeout=2.0)
        self.ship_logs(job, final=True)
        code = proc.returncode
        exit_status = 128 - code if code < 0 else code
        if reason is None and code < 0:
            reason = "signal"
        self.finish(job, exit_status, reason)
        return exit_status if self.options.reflect_exit_status else 0


def _retry_after(response: httpx2.Response, *, default: float) -> float:
    wait = parse_retry_after(response.headers.get("retry-after"))
    return default if wait is None else min(wait, 5.0)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


@contextlib.contextmanager
def _stop_on_signals(agent: _Agent) -> Iterator[None]:
    """TERM/INT to the agent stop the command like a cancel (``signal_reason: agent_stop``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def handler(_signum: int, _frame: object) -> None:
        agent.stop_requested.set()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    """Run the emulated agent; returns the process exit code."""
    try:
        options = _parse(sys.argv[1:] if argv is None else argv)
    except _UsageError as exc:
        sys.stderr.write(f"{_PROG}: {exc}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help or a malformed flag
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    agent = _Agent(options)
    try:
        with _stop_on_signals(agent):
            return agent.run()
    finally:
        agent.http.close()


if __name__ == "__main__":
    sys.exit(main())
