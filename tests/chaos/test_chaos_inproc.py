"""Chaos with the stacks in this process: faults, clock jumps, pauses, cancellations.

Every run ends with the invariants of :func:`chaos._world.verify` checked from the emulator's
job histories (started at most once, all terminal, no stale reservation, no 429 from the real
limiter, stacks deregistered) and its figures recorded for the summary table.
"""

from __future__ import annotations

import pytest

from ._inproc import (
    agent_command_broken,
    cancel_everywhere,
    clock_jumps,
    faults_only,
    finish_failures,
    pause_resume,
    shared_key,
)
from .conftest import Ledger

pytestmark = pytest.mark.anyio


async def test_one_stack_survives_seeded_faults(chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await faults_only(2, 30))
    assert report.ok, report.explain()
    assert sum(report.faults.values()) > 0  # the run was really disturbed


async def test_three_stacks_share_a_queue_under_faults(chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await faults_only(3, 90, stacks=3))
    assert report.ok, report.explain()
    assert report.duplicates == 0


async def test_clock_jumps_expire_reservations_and_tokens(chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await clock_jumps(4, 40))
    assert report.ok, report.explain()


async def test_queue_paused_and_resumed_repeatedly(chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await pause_resume(5, 60))
    assert report.ok, report.explain()


async def test_jobs_cancelled_at_every_point_of_their_life(chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await cancel_everywhere(6))
    assert report.ok, report.explain()
    assert report.outcomes.get("canceled", 0) == 15


async def test_failed_dispatches_are_finished_even_when_finish_calls_failed(
    chaos_ledger: Ledger,
) -> None:
    report = chaos_ledger.record(await finish_failures(12, 15))
    assert report.ok, report.explain()
    assert report.outcomes.get("finished by stack", 0) == 5


async def test_two_stacks_with_one_key_never_run_or_fail_a_job_twice(chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await shared_key(13, 60))
    assert report.ok, report.explain()
    assert report.duplicates == 0


async def test_a_broken_agent_command_trips_the_breaker_and_recovers(
    chaos_ledger: Ledger,
) -> None:
    report = chaos_ledger.record(await agent_command_broken(14, 40))
    assert report.ok, report.explain()
    assert report.outcomes.get("finished by stack", 0) <= 1
