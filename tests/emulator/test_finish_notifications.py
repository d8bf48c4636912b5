"""Finishing jobs from a stack, and stack notifications, over real HTTP."""

from __future__ import annotations

import datetime as dt

import httpx2
import pytest

from stacksapi.emulator import Emulator, ManualClock

from ._helpers import STACK, listed_ids


def _finish(http: httpx2.Client, job: str, body: dict[str, object]) -> httpx2.Response:
    return http.post(f"stacks/{STACK}/jobs/{job}/finish", json=body)


def _notify(http: httpx2.Client, notes: list[dict[str, object]]) -> httpx2.Response:
    return http.post(f"stacks/{STACK}/notifications", json={"notifications": notes})


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC).isoformat()


def test_finish_records_status_detail_and_reason(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    (job,) = emulator.create_jobs(1)
    response = _finish(
        http, job, {"exit_status": 3, "detail": "no capacity", "signal_reason": "stack_error"}
    )
    assert response.status_code == 200
    info = emulator.job(job)
    assert info.state == "finished"
    assert info.finish is not None
    assert (info.finish.exit_status, info.finish.detail, info.finish.signal_reason) == (
        3,
        "no capacity",
        "stack_error",
    )
    assert info.finish.by == f"stack {STACK}"
    assert listed_ids(http) == []


def test_finish_without_exit_status_means_minus_one(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    """Buildkite's Go client omits a zero exit status; the server then assumes -1."""
    (job,) = emulator.create_jobs(1)
    assert _finish(http, job, {"detail": "done"}).status_code == 200
    finish = emulator.job(job).finish
    assert finish is not None
    assert finish.exit_status == -1


def test_finish_only_once(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    (job,) = emulator.create_jobs(1)
    assert _finish(http, job, {"exit_status": 0, "detail": "ok"}).status_code == 200
    again = _finish(http, job, {"exit_status": 0, "detail": "ok"})
    assert again.status_code == 422
    assert "already finished" in again.json()["message"]


def test_finish_detail_limit_and_required(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    (job,) = emulator.create_jobs(1)
    too_long = _finish(http, job, {"exit_status": 1, "detail": "é" * 2049})
    assert too_long.status_code == 422
    assert too_long.json()["message"].startswith("detail")
    missing = _finish(http, job, {"exit_status": 1})
    assert missing.status_code == 400
    assert "detail" in missing.json()["message"]
    empty = _finish(http, job, {"exit_status": 1, "detail": ""})
    assert empty.status_code == 422
    assert empty.json()["message"].startswith("detail")
    assert _finish(http, job, {"exit_status": 1, "detail": "é" * 2048}).status_code == 200


def test_finish_unknown_job_is_404(http: httpx2.Client, stack: str) -> None:
    response = _finish(http, "00000000-0000-4000-8000-000000000000", {"detail": "x"})
    assert response.status_code == 404


def test_finish_of_a_job_an_agent_owns_is_refused(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    (job,) = emulator.create_jobs(1)
    acquired = http.post(f"jobs/{job}/acquire")
    assert acquired.status_code == 200
    refused = _finish(http, job, {"exit_status": 0, "detail": "x"})
    assert refused.status_code == 422
    assert "accepted" in refused.json()["message"]


def test_notifications_partial_success_grouped_by_error(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    (job,) = emulator.create_jobs(1)
    missing = "00000000-0000-4000-8000-000000000000"
    notes: list[dict[str, object]] = [
        {"job_uuid": job, "detail": "pod is starting"},
        {"job_uuid": missing, "detail": "x"},
        {"job_uuid": job, "detail": ""},
        {"job_uuid": job, "detail": "y" * 257},
        {"job_uuid": job, "detail": "future", "timestamp": _iso(clock.now() + 3600)},
        {"job_uuid": job, "detail": "too early", "timestamp": _iso(clock.now() - 3600)},
        {"job_uuid": job, "detail": "pulled image", "timestamp": _iso(clock.now())},
        {"job_uuid": missing, "detail": "y"},
    ]
    response = _notify(http, notes)
    assert response.status_code == 200
    errors = {e["error"]: e["indexes"] for e in response.json()["errors"]}
    assert errors["job_uuid: job not found"] == [1, 7]
    detail = [v for k, v in errors.items() if k.startswith("detail")]
    assert detail == [[2, 3]]
    assert errors["timestamp: must not be in the future"] == [4]
    assert errors["timestamp: must not be before the job was created"] == [5]
    stored = emulator.job(job).notifications
    assert [n.detail for n in stored] == ["pod is starting", "pulled image"]
    assert all(n.stack_key == STACK for n in stored)


def test_at_most_100_notifications_per_job(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    (job,) = emulator.create_jobs(1)
    notes: list[dict[str, object]] = [{"job_uuid": job, "detail": f"n{i}"} for i in range(101)]
    errors = _notify(http, notes).json()["errors"]
    assert errors == [{"error": "job_uuid: at most 100 notifications per job", "indexes": [100]}]


def test_no_notifications_300s_after_finish(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    (job,) = emulator.create_jobs(1)
    _finish(http, job, {"exit_status": 0, "detail": "done"})
    clock.advance(300)
    assert _notify(http, [{"job_uuid": job, "detail": "late"}]).json()["errors"] == []
    clock.advance(1)
    (error,) = _notify(http, [{"job_uuid": job, "detail": "later"}]).json()["errors"]
    assert "300 s" in error["error"]


@pytest.mark.parametrize("count", [0, 1001])
def test_notifications_count_limit(http: httpx2.Client, stack: str, count: int) -> None:
    notes: list[dict[str, object]] = [{"job_uuid": "x", "detail": "d"}] * count
    response = _notify(http, notes)
    assert response.status_code == 422
    assert response.json()["message"].startswith("notifications")
