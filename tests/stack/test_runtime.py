"""The Stack loop over real HTTP against the emulator, with an in-process agent per job."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from typing import Any

import anyio
import pytest
from stack_helpers import SimDispatcher, accepted_count, config, no_429, sim, start, state

from stacksapi import APIConnectionError, AsyncClient, JobAcquisitionTokens
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import DispatchError, DispatchRequest, EventKind, Stack

pytestmark = pytest.mark.anyio


async def test_runs_every_job_once_and_deregisters(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(25)
    dispatcher = sim(stacks_emulator)
    run = start(async_stacks_client, config(max_in_flight=5), dispatcher)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    assert [s.key for s in em.list_stacks()] == ["test-stack"]
    result = await run.stop()
    assert result.ok
    assert result.exit_code == 0
    assert sorted(dispatcher.dispatched) == sorted(jobs)
    assert all(accepted_count(stacks_emulator, j) == 1 for j in jobs)
    assert em.list_stacks() == []
    assert EventKind.DEREGISTERED in run.kinds()
    assert no_429(stacks_emulator)
    notes = em.job(jobs[0]).notifications
    assert any("Reserved by stack test-stack" in n.detail for n in notes)
    assert run.stack.metrics.counts["jobs_dispatched"] == 25
    assert 1 <= dispatcher.peak <= 5  # never more agents than max_in_flight


async def test_job_milestones_are_logged_at_info_with_the_job_uuid(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = stacks_emulator.emulator.create_job()
    caplog.set_level(logging.INFO, logger="stacksapi.stack")
    run = start(async_stacks_client, config(), sim(stacks_emulator))
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    mine = [r for r in caplog.records if getattr(r, "job_uuid", None) == job]
    events = {getattr(r, "event", None) for r in mine if r.levelno == logging.INFO}
    assert {"dispatched", "agent_ended"} <= events
    assert all(job in r.getMessage() for r in mine)
    assert stacks_emulator.token not in caplog.text


async def test_priority_then_age_order(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    low = em.create_job(priority=0)
    high = em.create_job(priority=10)
    mid_old, mid_new = em.create_job(priority=5), em.create_job(priority=5)
    dispatcher = sim(stacks_emulator)
    run = start(async_stacks_client, config(max_in_flight=1), dispatcher)
    await run.until(lambda: len(dispatcher.dispatched) == 4)
    await run.stop()
    assert dispatcher.dispatched == [high, mid_old, mid_new, low]


async def test_pause_is_honoured(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    em.pause_queue(em.default_queue)
    jobs = em.create_jobs(3)
    dispatcher = sim(stacks_emulator)
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: EventKind.PAUSED in run.kinds())
    polls = run.kinds().count(EventKind.POLLED)
    await run.until(lambda: em.queue(em.default_queue).last_polled_at is not None)
    await asyncio.sleep(0.3)  # several polls while paused
    assert dispatcher.dispatched == []
    assert all(state(stacks_emulator, j) == "scheduled" for j in jobs)
    assert polls == 0  # a paused page reports no jobs to take
    em.resume_queue(em.default_queue)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    await run.stop()
    assert EventKind.RESUMED in run.kinds()


async def test_work_in_flight_is_still_watched_while_paused(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    held = em.create_job()
    dispatcher = sim(stacks_emulator, hold={held})
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: held in dispatcher.dispatched)
    em.pause_queue(em.default_queue)
    await run.until(lambda: EventKind.PAUSED in run.kinds())
    waiting = em.create_job()
    em.cancel_job(held)
    await run.until(lambda: held in dispatcher.cancelled)  # torn down while paused
    await run.until(lambda: held not in run.stack.in_flight)  # and its capacity freed
    assert run.stack.paused
    assert dispatcher.dispatched == [held]  # the freed capacity started nothing new
    assert state(stacks_emulator, waiting) == "scheduled"
    em.resume_queue(em.default_queue)
    await run.until(lambda: state(stacks_emulator, waiting) == "finished")
    await run.stop()


async def test_filters_jobs_the_stack_cannot_serve(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    windows = em.create_job(agent_query_rules=("queue=__default__", "os=windows"))
    linux = em.create_job(agent_query_rules=("os=lin*",))
    dispatcher = sim(stacks_emulator)
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: state(stacks_emulator, linux) == "finished")
    await run.until(lambda: EventKind.FILTERED in run.kinds(windows))
    await run.stop()
    assert dispatcher.dispatched == [linux]
    assert state(stacks_emulator, windows) == "scheduled"
    assert run.stack.metrics.counts["jobs_filtered"] == 1


async def test_reaches_jobs_behind_pages_of_jobs_it_cannot_serve(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    wall = em.create_jobs(15, agent_query_rules=("os=windows",))  # three pages of 5
    behind = em.create_jobs(2, agent_query_rules=("os=linux",))
    dispatcher = sim(stacks_emulator)
    run = start(async_stacks_client, config(page_size=5, max_pages=2), dispatcher)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in behind))
    await run.stop()
    assert sorted(dispatcher.dispatched) == sorted(behind)
    assert all(state(stacks_emulator, j) == "scheduled" for j in wall)
    assert all(em.job(j).reservations == () for j in wall)
    assert run.stack.metrics.counts["jobs_filtered"] == 15


async def test_register_is_idempotent_for_a_key_left_registered(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    await async_stacks_client.register_stack("test-stack", queue_key="__default__")  # a crash
    job = em.create_job()
    run = start(async_stacks_client, config(), sim(stacks_emulator))
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    assert [s.key for s in em.list_stacks()] == ["test-stack"]
    assert (await run.stop()).ok
    assert em.list_stacks() == []


async def test_waits_for_runnable_at(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    runnable_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.6)
    later = em.create_job(runnable_at=runnable_at)
    now_job = em.create_job()
    dispatcher = sim(stacks_emulator)
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: len(dispatcher.dispatched) == 2)
    await run.stop()
    assert dispatcher.dispatched == [now_job, later]
    reserved_at = em.job(later).reservations[0].reserved_at
    assert reserved_at >= runnable_at


async def test_failed_dispatch_finishes_the_job_with_a_useful_detail(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    bad, good = em.create_job(), em.create_job()
    dispatcher = sim(stacks_emulator, fail={bad})
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: state(stacks_emulator, bad) == "finished")
    await run.until(lambda: state(stacks_emulator, good) == "finished")
    await run.stop()
    finish = em.job(bad).finish
    assert finish is not None
    assert finish.by.startswith("stack")
    assert (finish.exit_status, finish.signal_reason) == (-1, "stack_error")
    assert finish.detail is not None
    assert "image 'missing:latest' not found" in finish.detail
    assert EventKind.DISPATCH_FAILED in run.kinds(bad)


class LeakyDispatcher(SimDispatcher):
    """A careless dispatcher: its errors quote the job acquisition token."""

    async def dispatch(self, request: DispatchRequest) -> None:
        self.dispatched.append(request.job_uuid)
        assert request.token is not None
        token = request.token.get_secret_value()
        if request.job_uuid in self.fail:
            raise DispatchError(f"pod rejected: env BUILDKITE_AGENT_TOKEN={token} is invalid")
        raise RuntimeError(f"bug: cannot render {token}")


async def test_dispatch_errors_quoting_a_token_are_masked_everywhere(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    em = stacks_emulator.emulator
    rejected, crashed = em.create_job(), em.create_job()
    caplog.set_level(logging.DEBUG, logger="stacksapi.stack")
    run = start(
        async_stacks_client, config(), LeakyDispatcher(stacks_emulator.base_url, fail={rejected})
    )
    await run.until(
        lambda: all(state(stacks_emulator, j) == "finished" for j in (rejected, crashed))
    )
    await run.stop()
    details = [em.job(j).finish.detail or "" for j in (rejected, crashed)]  # type: ignore[union-attr]
    assert "pod rejected: env BUILDKITE_AGENT_TOKEN=bkjat_" in details[0]
    assert "RuntimeError: bug: cannot render bkjat_" in details[1]
    seen = [*details, caplog.text, *(e.message for e in run.events)]
    assert not any(re.search(r"bkjat_[A-Za-z0-9]{6}", text) for text in seen)


async def test_agent_failing_before_accepting_finishes_with_its_output(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = sim(stacks_emulator, exit_before_accept={job})
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    finish = em.job(job).finish
    assert finish is not None
    assert finish.by.startswith("stack")
    assert finish.detail is not None
    assert "exited with status 1 before taking the job" in finish.detail
    assert "fatal: boom" in finish.detail
    assert run.stack.in_flight == {}


async def test_cancel_during_provisioning_tears_down(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = sim(stacks_emulator, hold={job})
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: job in dispatcher.dispatched)
    assert em.cancel_job(job) == "canceled"
    await run.until(lambda: job in dispatcher.cancelled)
    await run.until(lambda: job not in run.stack.in_flight)
    await run.stop()
    assert "cancel" in dispatcher.cancelled[job]
    assert accepted_count(stacks_emulator, job) == 0
    assert EventKind.CANCELLED in run.kinds(job)
    assert run.stack.metrics.counts["jobs_cancelled"] == 1


@pytest.mark.parametrize("ended", ["timed_out", "expired", "broken"])
async def test_job_ended_elsewhere_during_provisioning_tears_down(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, ended: str
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = sim(stacks_emulator, hold={job})
    run = start(async_stacks_client, config(), dispatcher)  # renewal far off: 300 s reservation
    await run.until(lambda: job in dispatcher.dispatched)
    em.set_job_state(job, ended)
    await run.until(lambda: job in dispatcher.cancelled)
    await run.until(lambda: job not in run.stack.in_flight)
    await run.stop()
    assert ended in dispatcher.cancelled[job]
    assert accepted_count(stacks_emulator, job) == 0
    assert em.job(job).finish is None  # over already: the stack does not finish it again


async def test_renews_reservations_of_jobs_still_provisioning(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = sim(stacks_emulator, hold={job})
    cfg = config(reservation_expiry_seconds=10, renew_margin_seconds=9.8)
    run = start(async_stacks_client, cfg, dispatcher)
    await run.until(lambda: EventKind.RENEWED in run.kinds(job))
    dispatcher.release(job)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    reservations = em.job(job).reservations
    assert len(reservations) == 1  # one reservation, extended, never lost
    assert reservations[0].extended >= 1
    assert accepted_count(stacks_emulator, job) == 1


async def test_a_draining_stop_gives_unstarted_work_a_grace_then_cancels_it(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = sim(stacks_emulator, hold={job})
    cfg = config(shutdown_grace=0.2, on_shutdown="drain")
    run = start(async_stacks_client, cfg, dispatcher)
    await run.until(lambda: job in dispatcher.dispatched)
    result = await run.stop()
    assert result.ok
    assert "shutting down" in dispatcher.cancelled[job]
    assert em.list_stacks() == []


async def test_a_default_stop_leaves_work_in_flight_to_the_next_stack(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = sim(stacks_emulator, hold={job})
    run = start(async_stacks_client, config(shutdown_grace=5), dispatcher)
    await run.until(lambda: job in dispatcher.dispatched)
    result = await run.stop()
    assert result.ok
    assert dispatcher.cancelled == {}  # nothing torn down, nothing failed
    assert em.job(job).finish is None
    assert em.list_stacks() == []  # deregistered all the same
    assert any("leaving 1 agent (1 provisioning)" in e.message for e in run.events)


async def test_permanent_error_mid_run_deregisters_and_reports(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    run = start(async_stacks_client, config(), sim(stacks_emulator))
    await run.until(lambda: EventKind.POLLED in run.kinds())
    em.tokens = ("bkct_" + "0" * 40,)  # the cluster token is revoked: polling now answers 401
    assert run.task is not None
    with anyio.fail_after(15):
        result = await run.task
    assert not result.ok
    assert result.exit_code == 1
    assert "polling failed permanently" in result.reason
    assert "401" in result.reason
    assert "deregister_stack" in em.counters()  # it still tried to deregister


async def test_a_server_that_forgot_everything_sees_the_stack_register_again(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    run = start(async_stacks_client, config(), sim(stacks_emulator))
    await run.until(lambda: EventKind.POLLED in run.kinds())
    em.reset()  # the server forgets the stack: polling answers 404 (it used to exit 1)
    job = em.create_job()
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    assert (await run.stop()).ok


async def test_unknown_queue_fails_at_register(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    run = start(async_stacks_client, config(queue_key="no-such-queue"), sim(stacks_emulator))
    assert run.task is not None
    with anyio.fail_after(15):
        result = await run.task
    assert result.exit_code == 1
    assert "cannot register" in result.reason


async def test_bad_token_fails_at_register(stacks_emulator: EmulatorServer) -> None:
    async with AsyncClient("bkct_wrong", base_url=stacks_emulator.base_url) as client:
        stack = Stack(client, config(), sim(stacks_emulator))
        with anyio.fail_after(15):
            result = await stack.run_async()
    assert result.exit_code == 1
    assert "register" in result.reason
    assert "bkct_wrong" not in result.reason


async def test_prometheus_metrics_are_served(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    import httpx2

    em = stacks_emulator.emulator
    jobs = em.create_jobs(3)
    windows = em.create_job(agent_query_rules=("os=windows",))
    run = start(async_stacks_client, config(metrics_port=0), sim(stacks_emulator))
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    await run.until(lambda: EventKind.FILTERED in run.kinds(windows))
    port = run.stack.metrics.port
    assert port is not None
    async with httpx2.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    await run.stop()
    assert 'stacksapi_jobs_dispatched_total{stack="test-stack"} 3.0' in text
    assert 'stacksapi_jobs_filtered_total{stack="test-stack"} 1.0' in text
    assert (
        'stacksapi_api_calls_total{endpoint="batch_reserve_jobs",stack="test-stack",status="ok"}'
        in text
    )
    assert "stacksapi_scheduled_to_dispatch_seconds_count" in text
    assert "stacksapi_poll_duration_seconds_count" in text
    assert 'stacksapi_jobs_in_flight{stack="test-stack"}' in text


class ClientProxy:
    """The real client; subclasses replace one method to play a server that misbehaves."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class WithholdingClient(ClientProxy):
    """The real client, except that the server "does not issue" a token for one job."""

    def __init__(self, client: AsyncClient, withhold: str) -> None:
        super().__init__(client)
        self._withhold = withhold

    async def issue_job_acquisition_tokens(
        self, stack_key: str, job_uuids: Any, **kwargs: Any
    ) -> JobAcquisitionTokens:
        issued = await self._client.issue_job_acquisition_tokens(stack_key, job_uuids, **kwargs)
        kept = tuple(t for t in issued.job_acquisition_tokens if t.job_uuid != self._withhold)
        return JobAcquisitionTokens(
            job_acquisition_tokens=kept, not_issued=(*issued.not_issued, self._withhold)
        )


async def test_job_without_a_token_is_not_started(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    withheld, normal = em.create_job(), em.create_job()
    dispatcher = sim(stacks_emulator)
    client = WithholdingClient(async_stacks_client, withheld)
    run = start(client, config(), dispatcher)  # type: ignore[arg-type]
    await run.until(lambda: state(stacks_emulator, normal) == "finished")
    await run.until(lambda: EventKind.TOKEN_NOT_ISSUED in run.kinds(withheld))
    await run.stop()
    assert dispatcher.dispatched == [normal]
    assert accepted_count(stacks_emulator, withheld) == 0


class StuckTokensClient(ClientProxy):
    """The real client, except that issuing acquisition tokens never answers."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.asked = asyncio.Event()

    async def issue_job_acquisition_tokens(self, *args: Any, **kwargs: Any) -> JobAcquisitionTokens:
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_stop_does_not_wait_the_grace_for_jobs_never_dispatched(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    job = stacks_emulator.emulator.create_job()
    dispatcher = sim(stacks_emulator)
    client = StuckTokensClient(async_stacks_client)
    run = start(client, config(shutdown_grace=600), dispatcher)  # type: ignore[arg-type]
    await run.until(client.asked.is_set)
    assert job in run.stack.in_flight  # reserved, its launch cut short by the stop below
    result = await run.stop()  # within Run.stop's safety limit, far below the 600 s grace
    assert result.ok
    assert dispatcher.dispatched == []
    assert run.stack.in_flight == {}
    assert stacks_emulator.emulator.list_stacks() == []


class FlakyTokensClient(ClientProxy):
    """The real client, except that the first call to issue tokens fails (the network dropped)."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.calls = 0

    async def issue_job_acquisition_tokens(self, *args: Any, **kwargs: Any) -> JobAcquisitionTokens:
        self.calls += 1
        if self.calls == 1:
            raise APIConnectionError("connection reset", method="POST", url="http://x/tokens")
        return await self._client.issue_job_acquisition_tokens(*args, **kwargs)


async def test_tokens_failing_once_are_asked_again_for_the_jobs_still_held(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(3)
    dispatcher = sim(stacks_emulator)
    client = FlakyTokensClient(async_stacks_client)
    run = start(client, config(), dispatcher)  # type: ignore[arg-type]
    # The reservations last 300 s: the jobs finish only if the stack asks again for them.
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    await run.stop()
    assert client.calls >= 2
    assert sorted(dispatcher.dispatched) == sorted(jobs)
    assert all(len(em.job(j).reservations) == 1 for j in jobs)  # held throughout, never lost
