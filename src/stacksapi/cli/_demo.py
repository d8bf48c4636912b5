"""``stacksapi demo``: the whole system on the embedded emulator, proving itself as it goes.

It starts an emulator on 127.0.0.1, schedules a realistic mix of jobs (see :mod:`._demo_jobs`),
runs a :class:`~stacksapi.stack.Stack` with the :class:`~stacksapi.stack.SubprocessDispatcher`
launching the emulated agent for each job, cancels one job while its agent is starting, pauses
the queue for a few seconds mid-run, then checks with the emulator (the ground truth) that every
job ended as expected, none ran twice and nothing was left reserved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from stacksapi._endpoints import ENDPOINTS

from ._demo_dashboard import KeepServing
from ._demo_jobs import DEMO_QUEUE, DEMO_TAGS, DemoJob, Expect, build_jobs
from ._demo_report import DemoReport, JobOutcome, render_summary, summary_json
from ._demo_view import DemoView
from ._logging import suspended, verbosity
from ._render import console

if TYPE_CHECKING:
    from stacksapi.emulator import Emulator, JobSpec
    from stacksapi.emulator._faults import FaultConfig
    from stacksapi.stack import Stack, StackEvent, StackExit

__all__ = ["demo"]

CHAOS_SPEC = "500=0.03,503=0.03,429=0.02,latency=0-40ms"
"""Faults injected with ``--chaos``: the stack must ride through them with the same outcome."""

_TERMINAL = frozenset(
    {"finished", "canceled", "expired", "timed_out", "skipped", "broken", "waiting_failed"}
)
_STACK_KEY = "demo-stack"
EXIT_INTERRUPTED = 130
"""Ctrl-C (or SIGTERM) before the jobs ended, with nothing found wrong: as a shell reports it."""


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """The demo's knobs, from the command line."""

    jobs: int
    concurrency: int
    chaos: bool
    seed: int
    pause_seconds: float
    timeout: float


class _Tracker:
    """Follows the stack's events: fills the outcomes and feeds the live view."""

    def __init__(self, outcomes: list[JobOutcome], view: DemoView, emulator: Emulator) -> None:
        self.by_id = {o.uuid: o for o in outcomes}
        self.view = view
        self.emulator = emulator
        self.paused_at: float | None = None
        self.resumed_at: float | None = None
        self.dispatched_while_paused = 0

    def label(self, uuid: str | None) -> str:
        o = self.by_id.get(uuid or "")
        if o is None:
            return (uuid or "")[:8]
        return f"{o.uuid[:8]} {o.job.pipeline}/{o.job.step}"

    def on_event(self, event: StackEvent) -> None:
        """The stack's ``on_event``: must never raise into the runtime."""
        try:
            self._on_event(event)
        except Exception as exc:  # a display problem must not stop the stack
            logging.getLogger("stacksapi.cli").warning("demo view: %s", exc)

    def _on_event(self, event: StackEvent) -> None:
        kind = str(event.kind)
        uuid = event.job_uuid
        outcome = self.by_id.get(uuid or "")
        if kind == "dispatched" and outcome is not None:
            outcome.dispatches += 1
            wait = event.data.get("wait")
            outcome.dispatched_at = (
                outcome.scheduled_at + float(wait) if wait is not None else event.time
            )
            if self.paused_at is not None and self.resumed_at is None:
                self.dispatched_while_paused += 1
            self.view.event(
                "dispatched",
                f"{self.label(uuid)} (priority {outcome.job.priority}, "
                f"waited {outcome.wait or 0:.2f} s)",
                style="cyan",
            )
            if outcome.job.expect is Expect.CANCEL:
                # A user cancels the job in Buildkite while its agent is still starting.
                state = self.emulator.cancel_job(outcome.uuid)
                self.view.event(
                    "cancel", f"{self.label(uuid)} canceled by a user ({state})", style="yellow"
                )
        elif kind == "agent_ended":
            status = event.data.get("exit_status")
            style = "green" if status == 0 else "red"
            self.view.event("agent ended", f"{self.label(uuid)} exit status {status}", style=style)
        elif kind == "paused":
            self.paused_at = time.monotonic()
            self.view.set_status("queue PAUSED")
            self.view.event(
                "paused", "the stack saw dispatch_paused: starting nothing new", style="yellow"
            )
        elif kind == "resumed":
            self.resumed_at = time.monotonic()
            self.view.set_status("running")
            self.view.event("resumed", "queue resumed", style="yellow")
        elif kind == "filtered" and outcome is not None:
            outcome.filtered = True
            self.view.event("filtered", f"{self.label(uuid)}: {event.message}", style="magenta")
        elif kind == "cancelled":
            self.view.event("torn down", f"{self.label(uuid)}: {event.message}", style="yellow")
        elif kind in {"dispatch_failed", "finished_by_stack", "api_error", "rate_limited", "lost"}:
            self.view.event(
                kind.replace("_", " "), f"{self.label(uuid)} {event.message}", style="red"
            )
        elif kind in {"registered", "deregistered"}:
            self.view.event(kind, f"stack {_STACK_KEY} on queue {DEMO_QUEUE}")


def _job_spec(job: DemoJob) -> JobSpec:
    from stacksapi import Build, Pipeline, Step
    from stacksapi.emulator import JobSpec

    return JobSpec(
        queue=DEMO_QUEUE,
        priority=job.priority,
        agent_query_rules=job.rules,
        pipeline=Pipeline(slug=job.pipeline),
        build=Build(number=job.build_number, branch=job.branch),
        step=Step(key=job.step),
        env={
            "BUILDKITE_PIPELINE_SLUG": job.pipeline,
            "BUILDKITE_BUILD_NUMBER": str(job.build_number),
        },
        command=job.command,
    )


async def _run_demo(
    settings: DemoSettings, view: DemoView, workdir: Path, log_dir: Path, hold: KeepServing
) -> DemoReport:
    from stacksapi import AsyncClient
    from stacksapi.emulator import Emulator, EmulatorServer
    from stacksapi.emulator._faults import parse_fault_spec
    from stacksapi.stack import Stack, StackConfig, SubprocessConfig, SubprocessDispatcher

    token = "bkct_demo_" + secrets.token_hex(16)
    emulator = Emulator(tokens=[token], seed=settings.seed, queues=[DEMO_QUEUE], rate_limits=True)
    faults = parse_fault_spec(CHAOS_SPEC, seed=settings.seed) if settings.chaos else None
    jobs = build_jobs(settings.jobs, seed=settings.seed)
    started = time.monotonic()
    server = EmulatorServer(emulator, middleware=[faults.middleware()] if faults else ())
    with hold.serve(server):
        base_url = server.base_url
        view.event("emulator", f"serving the Stacks API on {base_url}")
        ids = emulator.create_jobs([_job_spec(j) for j in jobs])
        outcomes = [
            JobOutcome(job=j, uuid=u, scheduled_at=emulator.job(u).scheduled_at.timestamp())
            for j, u in zip(jobs, ids, strict=True)
        ]
        tracker = _Tracker(outcomes, view, emulator)
        config = StackConfig(
            key=_STACK_KEY,
            queue_key=DEMO_QUEUE,
            tags=DEMO_TAGS,
            metadata={"purpose": "stacksapi demo"},
            max_in_flight=settings.concurrency,
            poll_interval=0.2,
            state_check_interval=0.25,
            reservation_expiry_seconds=60,
            shutdown_grace=5.0,
            on_shutdown="drain",  # the demo's end is final: nothing outlives it
            subprocess=SubprocessConfig(
                command=(
                    sys.executable,
                    "-m",
                    "stacksapi.emulator._agent",
                    "--acquire-job",
                    "{job_uuid}",
                    "--reflect-exit-status",  # the job's status in the "agent ended" lines
                ),
                env={"BUILDKITE_AGENT_ENDPOINT": base_url, "BUILDKITE_CANCEL_GRACE_PERIOD": "1"},
                work_dir=str(workdir / "work"),
                log_dir=str(log_dir),
                kill_grace=1.0,
            ),
        )
        async with AsyncClient(
            token, base_url=base_url, user_agent_prefix="stacksapi-demo"
        ) as client:
            stack = Stack(
                client, config, SubprocessDispatcher(config.subprocess), on_event=tracker.on_event
            )
            stack_task = asyncio.create_task(stack.run_async())
            report = DemoReport(outcomes, chaos=settings.chaos, concurrency=settings.concurrency)
            interrupted = asyncio.Event()
            _on_signals(interrupted.set)
            await _drive(
                interrupted=interrupted,
                settings=settings, emulator=emulator, stack=stack, stack_task=stack_task,
                outcomes=outcomes, tracker=tracker, view=view, report=report,
            )  # fmt: skip
            stack.request_stop()
            try:
                result = await asyncio.wait_for(asyncio.shield(stack_task), timeout=30)
            except TimeoutError:
                stack.request_stop()  # the second request skips the grace period
                result = await stack_task
            if not result.ok:
                report.stack_error = f"the stack stopped with an error: {result.reason}"
        _collect(emulator, outcomes, report, faults)
    report.elapsed = time.monotonic() - started
    report.dispatched_while_paused = tracker.dispatched_while_paused
    report.stack_saw_pause = tracker.paused_at is not None
    return report


def _on_signals(callback: Callable[[], None]) -> None:
    """SIGINT/SIGTERM end the demo early but cleanly: stop the stack, kill agents, summarize."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, callback)


async def _drive(
    *,
    interrupted: asyncio.Event,
    settings: DemoSettings,
    emulator: Emulator,
    stack: Stack,
    stack_task: asyncio.Task[StackExit],
    outcomes: list[JobOutcome],
    tracker: _Tracker,
    view: DemoView,
    report: DemoReport,
) -> None:
    """Play Buildkite's side: pause the queue mid-run, wait until every runnable job ended."""
    runnable = [o for o in outcomes if o.job.expect is not Expect.UNSERVED]
    unserved = [o for o in outcomes if o.job.expect is Expect.UNSERVED]
    pause_after = max(1, int(len(runnable) * 0.35))
    deadline = time.monotonic() + settings.timeout
    pause_at: float | None = None
    resumed = False
    view.set_status("running")
    while True:
        await asyncio.sleep(0.1)
        now = time.monotonic()
        done = sum(1 for o in runnable if emulator.job_state(o.uuid) in _TERMINAL)
        # The bar counts every job the header announces: one not served is done once filtered.
        handled = done + sum(1 for o in unserved if o.filtered)
        view.set_counts(done=handled, running=len(stack.in_flight))
        if pause_at is None and done >= pause_after:
            emulator.pause_queue(DEMO_QUEUE)
            pause_at = now
            view.event(
                "pause",
                f"a user paused queue {DEMO_QUEUE} for {settings.pause_seconds:g} s",
                style="yellow",
            )
        if pause_at is not None and not resumed and now - pause_at >= settings.pause_seconds:
            emulator.resume_queue(DEMO_QUEUE)
            resumed = True
            report.paused_for = now - pause_at
        if done == len(runnable) and resumed:
            view.set_status("all jobs ended; stopping the stack")
            return
        if stack_task.done():
            view.event("stopped", "the stack stopped before the jobs ended", style="red")
            return
        if interrupted.is_set():
            view.event("interrupted", "stopping the stack early", style="yellow")
            report.interrupted = True
            for o in outcomes:  # these never had the chance to end: not judged
                ended = emulator.job_state(o.uuid) in _TERMINAL
                o.interrupted = not ended and not (o.job.expect is Expect.UNSERVED and o.filtered)
            return
        if now > deadline:
            view.event("timeout", f"jobs still running after {settings.timeout:g} s", style="red")
            report.stack_error = f"timed out after {settings.timeout:g} s"
            return


def _collect(
    emulator: Emulator, outcomes: list[JobOutcome], report: DemoReport, faults: FaultConfig | None
) -> None:
    """Read the ground truth from the emulator: states, exit statuses, runs, API calls."""
    for o in outcomes:
        info = emulator.job(o.uuid)
        o.state = info.state
        o.exit_status = info.finish.exit_status if info.finish is not None else None
        accepted = sum(1 for t in info.transitions if t.to_state == "accepted")
        running = sum(1 for t in info.transitions if t.to_state == "running")
        o.runs = max(accepted, running)
        o.reserved_at_end = info.state == "reserved" or info.reserved_by is not None
        if o.interrupted and o.state in _TERMINAL and o.as_expected:
            o.interrupted = False  # it ended while the stack drained, as expected: judged
    injected = faults.counts() if faults is not None else {}
    for name, per_status in emulator.counters().items():
        if name not in ENDPOINTS:
            continue
        report.api_calls[name] = sum(per_status.values())
        real_429 = per_status.get(429, 0) - injected.get(name, {}).get("429", 0)
        report.api_429s[name] = max(0, real_429)
    if faults is not None:
        report.faults = faults.totals()


@click.command()
@click.option(
    "--jobs", "job_count", type=click.IntRange(4, 1000), default=30, show_default=True,
    help="How many jobs to schedule.",
)  # fmt: skip
@click.option(
    "--concurrency", type=click.IntRange(1, 100), default=8, show_default=True,
    help="The stack's max_in_flight: agents running at once.",
)  # fmt: skip
@click.option("--chaos", is_flag=True, help=f"Inject faults ({CHAOS_SPEC}).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON, no live view.")
@click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default=None,
    help="json: the same as --json. Default: the live view and tables.",
)  # fmt: skip
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the job mix.")
@click.option(
    "--pause-seconds", type=click.FloatRange(0.5, 60), default=3.0, show_default=True,
    help="How long the queue is paused mid-run.",
)  # fmt: skip
@click.option(
    "--keep-logs", type=click.Path(file_okay=False), default=None, metavar="DIR",
    help="Keep each agent's log (the job's output) in DIR.",
)  # fmt: skip
@click.option(
    "--timeout", type=click.FloatRange(5, 3600), default=120.0, show_default=True,
    help="Give up (and fail) when the jobs have not ended by then.",
)  # fmt: skip
@click.option(
    "--dashboard", is_flag=True,
    help="Print the emulator dashboard's address at the start; keep the emulator up after the "
    "summary until Ctrl-C.",
)  # fmt: skip
def demo(  # noqa: PLR0917 - click passes options by name
    job_count: int,
    concurrency: int,
    chaos: bool,
    as_json: bool,
    output: str | None,
    seed: int,
    pause_seconds: float,
    keep_logs: str | None,
    timeout: float,
    dashboard: bool,
) -> None:
    """Run a stack against the embedded emulator and prove it works (no account needed).

    Schedules a realistic mix of jobs (priorities, pipelines, real shell commands: most
    succeed, some fail with an exit status, one is canceled while its agent starts, one
    targets tags this stack does not serve), pauses the queue mid-run, and ends with a
    summary. Exits 0 only when every job ended as expected, no job ran twice and nothing
    was left reserved; 1 when a check failed; 130 after Ctrl-C with nothing wrong so far.

    \b
    Examples:
      stacksapi demo
      stacksapi demo --jobs 100 --concurrency 16
      stacksapi demo --chaos            # 5xx, 429s and latency injected
      stacksapi demo --json | jq .checks      # or -o json
      stacksapi demo --keep-logs ./demo-logs   # each job's output, one file per job
      stacksapi demo --dashboard        # watch it in a browser; Ctrl-C to stop
    """
    settings = DemoSettings(
        jobs=job_count, concurrency=concurrency, chaos=chaos, seed=seed,
        pause_seconds=pause_seconds, timeout=timeout,
    )  # fmt: skip
    if as_json and output == "table":
        raise click.UsageError("--json and --output table ask for two outputs: give one")
    as_json = as_json or output == "json"
    out = console()
    mode = "quiet" if as_json else ("live" if out.is_terminal else "lines")
    hold = KeepServing(enabled=dashboard, console=None if as_json else out)
    # The live view tells the story: log lines only when asked for with -v.
    quiet = contextlib.nullcontext() if verbosity() else suspended()
    with quiet, tempfile.TemporaryDirectory(prefix="stacksapi-demo-") as tmp:
        if not as_json:
            out.print(
                f"[bold]stacksapi demo[/]: {job_count} jobs, concurrency {concurrency}"
                + (", chaos on" if chaos else "")
            )
        with DemoView(out, total=job_count, mode=mode) as view:
            log_dir = Path(keep_logs) if keep_logs else Path(tmp) / "logs"
            report = asyncio.run(_run_demo(settings, view, Path(tmp), log_dir, hold))
    if as_json:
        click.echo(json.dumps(summary_json(report), indent=2))
    else:
        render_summary(report, out)
        if keep_logs:
            out.print(f"agent logs (one per job): {keep_logs}")
    hold.wait_then_stop()  # --dashboard: serve until Ctrl-C
    sys.exit(0 if report.ok else (EXIT_INTERRUPTED if not report.failed else 1))
