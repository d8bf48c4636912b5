"""The demo's verdict: each way a run can go wrong fails the right check."""

from __future__ import annotations

import json

import pytest

from stacksapi.cli._demo_jobs import DemoJob, Expect, build_jobs
from stacksapi.cli._demo_report import DemoReport, JobOutcome, summary_json


def outcome(expect: Expect, **fields: object) -> JobOutcome:
    job = DemoJob(pipeline="p", step="s", command="true", expect=expect, exit_status=3)
    o = JobOutcome(job=job, uuid=f"{expect.value:0<36}", scheduled_at=0.0)
    for name, value in fields.items():
        setattr(o, name, value)
    return o


def healthy() -> list[JobOutcome]:
    return [
        outcome(Expect.SUCCEED, state="finished", exit_status=0, dispatches=1, runs=1),
        outcome(Expect.FAIL, state="finished", exit_status=3, dispatches=1, runs=1),
        outcome(Expect.CANCEL, state="canceled", dispatches=1, runs=0),
        outcome(Expect.UNSERVED, state="scheduled"),
    ]


def report(outcomes: list[JobOutcome]) -> DemoReport:
    return DemoReport(outcomes, paused_for=3.0, stack_saw_pause=True)


def failed(r: DemoReport) -> set[str]:
    return {c.name for c in r.checks() if not c.ok}


def test_a_healthy_run_passes_and_serializes() -> None:
    r = report(healthy())
    assert r.ok
    data = json.loads(json.dumps(summary_json(r)))
    assert data["ok"] is True
    assert [j["as_expected"] for j in data["jobs"]] == [True] * 4


@pytest.mark.parametrize(
    ("index", "change", "check"),
    [
        (0, {"exit_status": 1}, "every job ended as expected"),
        (1, {"exit_status": 0}, "every job ended as expected"),
        (2, {"state": "finished", "runs": 1}, "every job ended as expected"),
        (3, {"state": "finished", "dispatches": 1}, "every job ended as expected"),
        (0, {"runs": 2}, "no job ran twice"),
        (0, {"dispatches": 2}, "no job ran twice"),
        (3, {"reserved_at_end": True}, "nothing left reserved"),
    ],
)
def test_each_fault_fails_its_check(index: int, change: dict[str, object], check: str) -> None:
    outcomes = healthy()
    for name, value in change.items():
        setattr(outcomes[index], name, value)
    r = report(outcomes)
    assert check in failed(r)
    assert not r.ok


def test_pause_must_be_seen_and_honoured() -> None:
    r = report(healthy())
    r.dispatched_while_paused = 1
    assert failed(r) == {"pause honoured"}
    r = report(healthy())
    r.stack_saw_pause = False
    assert failed(r) == {"pause honoured"}


def test_a_stack_error_fails_the_run() -> None:
    r = report(healthy())
    r.stack_error = "the stack stopped with an error: 401"
    assert failed(r) == {"stack ran cleanly"}


@pytest.mark.parametrize("count", [4, 5, 30, 100])
def test_job_mix(count: int) -> None:
    jobs = build_jobs(count)
    kinds = [j.expect for j in jobs]
    assert len(jobs) == count
    assert kinds.count(Expect.CANCEL) == 1
    assert kinds.count(Expect.UNSERVED) == 1
    assert kinds.count(Expect.FAIL) >= 1
    assert kinds.count(Expect.SUCCEED) >= 1
    assert all(j.exit_status != 0 for j in jobs if j.expect is Expect.FAIL)


def test_job_mix_needs_four_jobs() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        build_jobs(3)


def test_an_interrupted_run_leaves_unended_jobs_unjudged() -> None:
    outcomes = healthy()
    outcomes[0].state, outcomes[0].exit_status, outcomes[0].interrupted = "scheduled", None, True
    r = report(outcomes)
    r.interrupted = True
    assert failed(r) == set()
    assert not r.failed
    assert not r.ok  # it proved less than it set out to
    assert outcomes[0].verdict == "-"
    data = summary_json(r)
    assert data["interrupted"] is True
    assert data["jobs"][0]["as_expected"] is None
    # What did end is still judged.
    outcomes[1].exit_status = 0
    assert failed(report(outcomes)) == {"every job ended as expected"}
