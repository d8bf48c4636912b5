"""The invariant checker itself: it must catch what it claims to catch, or a green chaos run
would prove nothing."""

from __future__ import annotations

from stacksapi._models import RegisterStackRequest
from stacksapi.emulator._api import register_stack

from ._world import World, verify


def test_a_clean_history_passes() -> None:
    with World(1, faults="") as world:
        em = world.emulator
        job = em.create_job()
        for state in ("accepted", "running", "finished"):
            em.set_job_state(job, state)
        report = verify(world, [job], name="clean")
    assert report.ok, report.explain()
    assert (report.duplicates, report.lost, report.outcomes) == (0, 0, {"finished": 1})


def test_a_job_started_twice_is_a_duplicate() -> None:
    with World(1, faults="") as world:
        em = world.emulator
        job = em.create_job()
        for state in ("accepted", "scheduled", "accepted", "finished"):
            em.set_job_state(job, state)
        report = verify(world, [job], name="twice")
    assert report.duplicates == 1
    assert any("started more than once" in p for p in report.problems)


def test_a_job_left_behind_is_lost() -> None:
    with World(1, faults="") as world:
        em = world.emulator
        done, left = em.create_job(), em.create_job()
        em.set_job_state(done, "finished")
        em.set_job_state(left, "accepted")
        report = verify(world, [done, left], name="lost")
    assert report.lost == 1
    assert any(f"job {left}: left accepted" in p for p in report.problems)


def test_a_stack_still_registered_and_a_real_429_are_reported() -> None:
    with World(1, faults="") as world:
        em = world.emulator
        request = RegisterStackRequest(
            key="left", type="custom", queue_key=em.default_queue, metadata={}
        )
        register_stack(em, request)
        em.record_response("list_scheduled_jobs", 429)
        report = verify(world, [], name="leftovers")
    assert any("stacks still registered: ['left']" in p for p in report.problems)
    assert any("beyond the rate limits" in p for p in report.problems)


def test_the_clock_jumps_through_the_admin_api() -> None:
    with World(1, faults="") as world:
        before = world.emulator.now()
        world.jump(3600)
        assert world.emulator.now() - before >= 3600
