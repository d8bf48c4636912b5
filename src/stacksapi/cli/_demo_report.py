"""What the demo measured and how it is shown: the per-job outcome, the checks, the summary.

The demo fills a :class:`DemoReport` while it runs; this module turns it into rich tables (or one
JSON document with ``--json``) and decides the verdict: every job ended as expected, no job ran
twice, nothing was left reserved, nothing started while the queue was paused. After a Ctrl-C the
jobs that had not ended are not judged (they never had the chance) and the run reads
"interrupted", not failed; what did end is still checked.

Tables fit 100 columns, every column has a header, and the wording spells "canceled" as the
API does (its state names are shown beside it).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ._demo_jobs import DemoJob, Expect

__all__ = ["Check", "DemoReport", "JobOutcome", "render_summary", "summary_json"]


@dataclass(slots=True)
class JobOutcome:
    """One demo job as it was scheduled, dispatched and ended."""

    job: DemoJob
    uuid: str
    scheduled_at: float
    dispatched_at: float | None = None
    dispatches: int = 0
    runs: int = 0
    state: str = "scheduled"
    exit_status: int | None = None
    reserved_at_end: bool = False
    filtered: bool = False
    interrupted: bool = False  # had not ended when the demo was interrupted: not judged

    @property
    def wait(self) -> float | None:
        """Seconds from scheduled to dispatched."""
        if self.dispatched_at is None:
            return None
        return max(0.0, self.dispatched_at - self.scheduled_at)

    @property
    def as_expected(self) -> bool:
        expect = self.job.expect
        if self.runs > 1 or self.dispatches > 1 or self.reserved_at_end:
            return False
        if expect is Expect.SUCCEED:
            return self.state == "finished" and self.exit_status == 0
        if expect is Expect.FAIL:
            return self.state == "finished" and self.exit_status == self.job.exit_status
        if expect is Expect.CANCEL:
            return self.state in {"canceled", "canceling"} and self.runs == 0
        return self.state == "scheduled" and self.dispatches == 0

    @property
    def verdict(self) -> str:
        """``ok``, ``WRONG``, or ``-`` for a job the interruption left unjudged."""
        if self.interrupted:
            return "-"
        return "ok" if self.as_expected else "WRONG"

    @property
    def expected_text(self) -> str:
        expect = self.job.expect
        if expect is Expect.SUCCEED:
            return "exit 0"
        if expect is Expect.FAIL:
            return f"exit {self.job.exit_status}"
        if expect is Expect.CANCEL:
            return "canceled"  # while its agent was being provisioned
        return "not served"  # stays scheduled


@dataclass(frozen=True, slots=True)
class Check:
    """One thing the demo proves, and whether it held (``None``: interrupted before it could)."""

    name: str
    ok: bool | None
    detail: str

    @property
    def result(self) -> str:
        return "interrupted" if self.ok is None else ("PASS" if self.ok else "FAIL")


@dataclass(slots=True)
class DemoReport:
    """Everything the demo observed."""

    outcomes: list[JobOutcome]
    elapsed: float = 0.0
    api_calls: dict[str, int] = field(default_factory=dict)
    api_429s: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    paused_for: float = 0.0
    stack_saw_pause: bool = False
    dispatched_while_paused: int = 0
    chaos: bool = False
    stack_error: str | None = None
    concurrency: int = 0
    interrupted: bool = False

    def checks(self) -> list[Check]:
        judged = [o for o in self.outcomes if not o.interrupted]
        wrong = [o for o in judged if not o.as_expected]
        twice = [o for o in self.outcomes if o.runs > 1 or o.dispatches > 1]
        reserved = [o for o in judged if o.reserved_at_end]
        unjudged = len(self.outcomes) - len(judged)
        checks = [
            Check(
                "every job ended as expected",
                not wrong,
                f"{len(judged) - len(wrong)}/{len(judged)} as expected"
                + (f"; wrong: {', '.join(o.uuid[:8] for o in wrong)}" if wrong else "")
                + (f"; {unjudged} interrupted before they ended" if unjudged else ""),
            ),
            Check(
                "no job ran twice",
                not twice,
                "each job dispatched and run at most once"
                if not twice
                else f"ran twice: {', '.join(o.uuid[:8] for o in twice)}",
            ),
            Check(
                "nothing left reserved",
                not reserved,
                "no reservation outstanding at the end"
                if not reserved
                else f"still reserved: {', '.join(o.uuid[:8] for o in reserved)}",
            ),
            self._pause_check(),
        ]
        if self.stack_error:
            checks.append(Check("stack ran cleanly", False, self.stack_error))
        return checks

    def _pause_check(self) -> Check:
        name = "pause honoured"
        if self.interrupted and not (self.paused_for > 0 and self.stack_saw_pause):
            return Check(name, None, "interrupted before the pause was over")
        return Check(
            name,
            self.paused_for > 0 and self.stack_saw_pause and self.dispatched_while_paused == 0,
            f"paused {self.paused_for:.1f} s; "
            + ("seen by the stack; " if self.stack_saw_pause else "never seen by the stack; ")
            + f"{self.dispatched_while_paused} started meanwhile",
        )

    @property
    def failed(self) -> bool:
        """A check failed: something went wrong (an interruption alone is not that)."""
        return any(c.ok is False for c in self.checks())

    @property
    def ok(self) -> bool:
        """Every check passed: the run proved what it set out to."""
        return all(c.ok is True for c in self.checks()) and not self.interrupted


def _fmt_wait(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def render_summary(report: DemoReport, console: Console) -> None:
    """Print the per-job table, the totals, the API calls and the verdict."""
    jobs = _jobs_table(report, compact=console.width < _FULL_WIDTH)
    console.print(Group(jobs, _totals_table(report), _calls_table(report)))
    verdict = Table(title="checks", title_justify="left")
    verdict.add_column("result", no_wrap=True)
    verdict.add_column("check", no_wrap=True)
    verdict.add_column("detail")
    styles = {"PASS": "green", "FAIL": "bold red", "interrupted": "yellow"}
    for check in report.checks():
        verdict.add_row(Text(check.result, style=styles[check.result]), check.name, check.detail)
    console.print(verdict)
    if report.ok:
        console.print(Text("demo OK: every job ended as expected", style="bold green"))
    elif report.failed:
        console.print(Text("demo FAILED: see the checks above", style="bold red"))
    else:
        cut = sum(1 for o in report.outcomes if o.interrupted)
        console.print(
            Text(
                f"demo interrupted: {cut} of {len(report.outcomes)} jobs had not ended; "
                "nothing had gone wrong",
                style="bold yellow",
            )
        )


_FULL_WIDTH = 100
"""The columns the bordered jobs table needs to show a pipeline/step in full."""


def _jobs_table(report: DemoReport, *, compact: bool = False) -> Table:
    """Per job, one line; ``compact`` (a narrower terminal) draws no borders, as ``jobs list``
    does, so pipeline/step keeps room to be read rather than being cut to a few letters."""
    style: dict[str, Any] = (
        {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "collapse_padding": True}
        if compact
        else {}
    )
    jobs = Table(title="jobs", title_justify="left", **style)
    for name in ("job", "pipeline/step", "prio", "expected", "state", "exit", "dispatch"):
        # Only pipeline/step gives way on a narrow terminal (cut with …, never wrapped).
        jobs.add_column(name, no_wrap=name != "pipeline/step", overflow="ellipsis")
    jobs.add_column("verdict", no_wrap=True)
    marks = {"ok": "green", "WRONG": "bold red", "-": "yellow"}
    order = sorted(report.outcomes, key=lambda o: (o.dispatched_at is None, o.dispatched_at or 0))
    for o in order:
        jobs.add_row(
            o.uuid[:8],
            f"{o.job.pipeline}/{o.job.step}",
            str(o.job.priority),
            o.expected_text,
            o.state,
            "-" if o.exit_status is None else str(o.exit_status),
            _fmt_wait(o.wait),
            Text(o.verdict, style=marks[o.verdict]),
        )
    return jobs


def _totals_table(report: DemoReport) -> Table:
    waits = [w for o in report.outcomes if (w := o.wait) is not None]
    counts: dict[str, int] = {}
    for o in report.outcomes:
        key = "interrupted" if o.interrupted else (o.job.expect.value if o.as_expected else "wrong")
        counts[key] = counts.get(key, 0) + 1
    totals = Table(title="totals", title_justify="left")
    totals.add_column("total")
    totals.add_column("value")
    totals.add_row("jobs", str(len(report.outcomes)))
    totals.add_row("succeeded", str(counts.get("succeed", 0)))
    totals.add_row("failed as designed", str(counts.get("fail", 0)))
    totals.add_row("canceled while provisioning", str(counts.get("cancel", 0)))
    totals.add_row("not served (filtered)", str(counts.get("unserved", 0)))
    totals.add_row("not as expected", str(counts.get("wrong", 0)))
    if report.interrupted:
        totals.add_row("interrupted before they ended", str(counts.get("interrupted", 0)))
    totals.add_row(
        "time to dispatch p50 / max",
        f"{_fmt_wait(_percentile(waits, 50))} / {_fmt_wait(max(waits) if waits else None)}",
    )
    totals.add_row("concurrency", str(report.concurrency))
    totals.add_row("wall time", f"{report.elapsed:.1f} s")
    if report.chaos:
        injected = ", ".join(f"{k}: {v}" for k, v in sorted(report.faults.items()) if v) or "none"
        totals.add_row("faults injected (--chaos)", injected)
    return totals


def _calls_table(report: DemoReport) -> Table:
    calls = Table(title="API calls", title_justify="left")
    calls.add_column("endpoint")
    calls.add_column("calls", justify="right")
    calls.add_column("429s", justify="right")
    for name in sorted(report.api_calls):
        calls.add_row(name, str(report.api_calls[name]), str(report.api_429s.get(name, 0)))
    calls.add_row(
        Text("total", style="bold"),
        str(sum(report.api_calls.values())),
        str(sum(report.api_429s.values())),
    )
    return calls


def summary_json(report: DemoReport) -> dict[str, Any]:
    """The report as one JSON-ready document (``stacksapi demo --json``)."""
    waits = [w for o in report.outcomes if (w := o.wait) is not None]
    return {
        "ok": report.ok,
        "interrupted": report.interrupted,
        "elapsed_seconds": round(report.elapsed, 3),
        "concurrency": report.concurrency,
        "chaos": report.chaos,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks()],
        "jobs": [
            {
                "id": o.uuid,
                "pipeline": o.job.pipeline,
                "step": o.job.step,
                "priority": o.job.priority,
                "expected": o.job.expect.value,
                "expected_exit_status": o.job.exit_status
                if o.job.expect in {Expect.SUCCEED, Expect.FAIL}
                else None,
                "state": o.state,
                "exit_status": o.exit_status,
                "dispatch_seconds": None if o.wait is None else round(o.wait, 3),
                "dispatches": o.dispatches,
                "runs": o.runs,
                "as_expected": None if o.interrupted else o.as_expected,
            }
            for o in report.outcomes
        ],
        "dispatch_seconds": {
            "p50": _percentile(waits, 50),
            "p99": _percentile(waits, 99),
            "max": max(waits) if waits else None,
        },
        "api_calls": dict(sorted(report.api_calls.items())),
        "api_429s": dict(sorted(report.api_429s.items())),
        "faults": dict(sorted(report.faults.items())),
        "paused_seconds": round(report.paused_for, 3),
        "stack_saw_pause": report.stack_saw_pause,
        "dispatched_while_paused": report.dispatched_while_paused,
    }
