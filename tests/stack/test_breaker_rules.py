"""The breaker's, the spreading's and the job memory's rules, as pure state (no I/O, no clock)."""

from __future__ import annotations

import datetime as dt
import random

from hypothesis import given
from hypothesis import strategies as st

from stacksapi import ScheduledJob
from stacksapi.stack._breaker import Breaker, BreakerState, Verdict, failure_signature
from stacksapi.stack._records import JobMemory
from stacksapi.stack._spreading import Spreading

MISSING = "cannot run 'buildkite-agent': No such file or directory"


def test_the_same_failure_on_consecutive_jobs_opens_the_breaker() -> None:
    b = Breaker(threshold=3, backoff=5.0)
    assert b.failure("a", MISSING, 0.0) is Verdict.JOB  # the first is the job's
    assert b.failure("b", MISSING, 0.1) is Verdict.SUSPECT  # the next ones are handed back
    assert b.failure("c", MISSING, 0.2) is Verdict.TRIPPED
    assert b.state is BreakerState.OPEN
    assert b.capacity(10, 1.0) == 0  # backing off
    assert b.capacity(10, 5.2) == 1  # one probe
    assert b.capacity(10, 5.3) == 0  # while it is out
    assert b.failure("d", MISSING, 5.4) is Verdict.PROBE_FAILED
    assert b.retry_at == 5.4 + 10.0  # twice as long
    assert b.capacity(10, 15.5) == 1
    assert not b.success(started=False)  # a launch under way proves nothing yet
    assert b.success(started=True)  # its agent took the job
    assert not b.is_open
    assert b.capacity(10, 16.0) == 10
    assert b.trips == 1


def test_a_success_between_or_another_error_or_the_same_job_resets_the_streak() -> None:
    b = Breaker(threshold=3)
    b.failure("a", MISSING, 0)
    b.failure("b", MISSING, 0)
    b.success(started=False)
    assert b.failure("c", MISSING, 0) is Verdict.JOB
    assert b.failure("d", "image 'x' not found", 0) is Verdict.JOB  # a different failure
    assert b.failure("d", "image 'x' not found", 0) is Verdict.JOB  # the same job again
    assert b.state is BreakerState.CLOSED


def test_failures_that_differ_only_by_uuids_and_numbers_are_the_same() -> None:
    one = failure_signature("pod buildkite-0190a1b2-c3d4-4e5f-8a9b-0c1d2e3f4a5b: exit 127\nmore")
    two = failure_signature("pod buildkite-11111111-2222-4333-8444-555555555555: exit 1")
    assert one == two


def test_a_probe_that_was_never_launched_is_let_through_again_and_zero_turns_it_off() -> None:
    b = Breaker(threshold=2, backoff=1.0)
    b.failure("a", MISSING, 0)
    b.failure("b", MISSING, 0)
    assert b.capacity(5, 1.0) == 1
    b.probe_missed()  # the probe job was not reserved
    assert b.capacity(5, 1.0) == 1
    off = Breaker(threshold=0)
    assert all(off.failure(str(i), MISSING, 0) is Verdict.JOB for i in range(10))


def job(uuid: str, priority: int = 0, age: int = 0) -> ScheduledJob:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=age)
    return ScheduledJob(id=uuid, priority=priority, scheduled_at=at)


def test_a_lone_stack_takes_jobs_strictly_in_order() -> None:
    jobs = [job(f"j{i:03}", age=i) for i in range(50)]
    assert Spreading().choose(jobs, 5) == jobs[:5]


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_spreading_never_takes_a_lower_priority_while_a_higher_one_is_left(
    free: int, seed: int
) -> None:
    spreading = Spreading(random.Random(seed))
    spreading.observe(10, 9)  # contended
    spreading.observe(10, 9)
    assert spreading.width > 1
    urgent = [job(f"u{i:03}", priority=5, age=100 + i) for i in range(7)]
    rest = [job(f"r{i:03}", age=i) for i in range(200)]
    chosen = spreading.choose(rest + urgent, free)
    assert chosen  # something is taken
    taken_urgent = [j for j in chosen if j.priority == 5]
    if len(chosen) > len(taken_urgent):  # a lower priority was taken: no urgent one is left
        assert len(taken_urgent) == len(urgent)
    assert chosen == sorted(chosen, key=lambda j: (-j.priority, j.scheduled_at, j.id))


def test_spreading_widens_on_losses_and_narrows_back() -> None:
    s = Spreading(max_width=8.0)
    s.observe(100, 90)
    wide = s.width
    assert 2.0 <= wide <= 8.0
    for _ in range(500):
        s.observe(100, 0)
    assert s.width == 1.0
    assert Spreading(max_width=1.0).width == 1.0


def test_job_memory_keeps_the_newest_within_its_bound() -> None:
    memory = JobMemory(3)
    for uuid in "abcde":
        memory.add(uuid)
    assert len(memory) == 3
    assert "a" not in memory
    assert "e" in memory
    assert memory.forgotten == 2
