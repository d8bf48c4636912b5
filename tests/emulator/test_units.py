"""Pure pieces of the emulator: clocks, cursors, the ordered queue, token masking, lazy imports."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from stacksapi.emulator import JobSpec, ManualClock, SystemClock, mask_token
from stacksapi.emulator._jobs import JobRecord
from stacksapi.emulator._queues import QueueRecord, decode_cursor, encode_cursor


def test_manual_clock_moves_only_forward() -> None:
    clock = ManualClock(start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    start = clock.now()
    assert clock.advance(1.5) == start + 1.5
    clock.set(start + 10)
    assert clock.now() == start + 10
    with pytest.raises(ValueError, match="backwards"):
        clock.set(start)
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1)
    assert "2026-01-01T00:00:10" in repr(clock)


def test_naive_start_is_utc() -> None:
    naive = ManualClock(start=dt.datetime(2026, 1, 1))
    aware = ManualClock(start=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert naive.now() == aware.now()
    assert SystemClock().now() > aware.now()


def _job(job_id: str, at: float) -> JobRecord:
    return JobRecord(JobSpec(), job_id=job_id, queue="q", now=at, rules=("queue=q",))


def test_cursor_round_trip_and_garbage() -> None:
    job = _job("00000000-0000-4000-8000-000000000001", 1_790_000_000.123456)
    assert decode_cursor(encode_cursor(job)) == (job.scheduled_at, job.id)
    for garbage in ("", "!!!", "bm9waXBl", "é"):
        assert decode_cursor(garbage) is None


def test_queue_keeps_order_whatever_the_insertion_order() -> None:
    queue = QueueRecord("q")
    jobs = [_job(f"id-{i}", float(t)) for i, t in enumerate([5, 1, 3, 3, 9, 0])]
    for job in jobs:
        queue.add(job)
    order = [(j.scheduled_at, j.id) for j in queue.scheduled]
    assert order == sorted(order)
    queue.discard(jobs[2])
    queue.discard(jobs[2])  # twice is harmless
    assert jobs[2] not in queue.scheduled
    page, more = queue.page(None, 2)
    assert [j.id for j in page] == ["id-5", "id-1"]
    assert more is True
    rest, more = queue.page((page[-1].scheduled_at, page[-1].id), 10)
    assert [j.id for j in rest] == ["id-3", "id-0", "id-4"]
    assert more is False


def test_mask_token_hides_the_secret() -> None:
    token = "bkjat_" + "s3cr3t" * 5
    masked = mask_token(token)
    assert masked.startswith("bkjat_…#")
    assert "s3cr3t" not in masked
    assert mask_token(token) == masked
    assert mask_token("plain") != mask_token("other")


def test_importing_the_package_is_lazy() -> None:
    probe = (
        "import sys, stacksapi.emulator as e\n"
        "assert 'starlette' not in sys.modules and 'uvicorn' not in sys.modules\n"
        "e.Emulator\n"
        "assert 'starlette' not in sys.modules\n"
        "e.EmulatorServer\n"
        "assert 'uvicorn' in sys.modules\n"
        "assert sorted(dir(e)) == sorted(e.__all__)\n"
        "try:\n"
        "    e.Nope\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
