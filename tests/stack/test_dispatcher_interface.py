"""The dispatcher interface as a dispatcher's author meets it, over real HTTP against the emulator.

A request carries the job as the API returns it (fetched once through the stack's client); a
dispatcher can say "not now" without failing the job; results may come from another thread;
adopted work is reported with what the dispatcher knows of it and watched like the stack's own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from stack_helpers import (
    RefreshingSim,
    SimDispatcher,
    SkipClock,
    accepted_count,
    config,
    start,
    state,
)

from stacksapi import AsyncClient
from stacksapi.emulator import Emulator, EmulatorServer, ManualClock
from stacksapi.stack import (
    ACQUIRE_REFUSED,
    AdoptedJob,
    AdoptedState,
    AgentExit,
    DispatchDeferred,
    DispatchRequest,
    EventKind,
)


class Recording(SimDispatcher):
    """Keeps every request it was handed."""

    def __init__(self, endpoint: str, **kwargs: Any) -> None:
        super().__init__(endpoint, **kwargs)
        self.requests: list[DispatchRequest] = []

    async def dispatch(self, request: DispatchRequest) -> None:
        self.requests.append(request)
        await super().dispatch(request)


@pytest.mark.anyio
async def test_a_request_carries_the_job_as_the_api_returns_it_fetched_once(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    plugins = [{"docker#v5.11.0": {"image": "node:22"}}, "cache#v1"]
    job = em.create_job(
        command="npm test", priority=7,
        env={"BUILDKITE_PLUGINS": json.dumps(plugins), "NODE_ENV": "test"},
    )  # fmt: skip
    plain = em.create_job(command="make", env={"BUILDKITE_PLUGINS": "{not json"})
    dispatcher = Recording(stacks_emulator.base_url)
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in (job, plain)))
    await run.stop()
    by_id = {r.job_uuid: r for r in dispatcher.requests}
    request = by_id[job]
    assert request.command == "npm test"
    assert request.env["NODE_ENV"] == "test"
    assert request.plugins == [{"docker#v5.11.0": {"image": "node:22"}}, {"cache#v1": None}]
    assert request.job.priority == 7  # the listing's fields are still there
    assert request.details is not None
    assert request.details.id == job
    assert by_id[plain].command == "make"
    assert by_id[plain].plugins == []  # invalid JSON: no plugins, no crash
    assert em.counters()["get_job"] == {200: 2}  # once per job, through the stack's client


@pytest.mark.anyio
async def test_job_details_can_be_turned_off_to_save_a_call_per_job(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job(command="make")
    dispatcher = Recording(stacks_emulator.base_url)
    run = start(async_stacks_client, config(fetch_job_details=False), dispatcher)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    (request,) = dispatcher.requests
    assert request.details is None
    assert (request.command, dict(request.env), request.plugins) == ("", {}, [])
    assert "get_job" not in em.counters()


class Busy(SimDispatcher):
    """Says "not now" to the first ``busy`` dispatches."""

    def __init__(self, endpoint: str, busy: int) -> None:
        super().__init__(endpoint)
        self.busy = busy

    async def dispatch(self, request: DispatchRequest) -> None:
        if self.busy > 0:
            self.busy -= 1
            self.dispatched.append(request.job_uuid)
            raise DispatchDeferred("no capacity: 0 of 4 slots free", retry_after=0.2)
        await super().dispatch(request)


@pytest.mark.anyio
async def test_a_deferred_dispatch_hands_the_job_back_unfailed(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = Busy(stacks_emulator.base_url, busy=2)
    run = start(async_stacks_client, config(), dispatcher)
    await run.until(lambda: state(stacks_emulator, job) == "finished")
    await run.stop()
    assert dispatcher.dispatched == [job, job, job]  # twice "not now", then started
    assert run.kinds(job).count(EventKind.DEFERRED) == 2
    assert EventKind.FINISHED_BY_STACK not in run.kinds(job)
    finish = em.job(job).finish
    assert finish is not None
    assert finish.exit_status == 0  # finished by its agent, not failed by the stack
    assert accepted_count(stacks_emulator, job) == 1
    assert run.stack.metrics.counts["dispatches_deferred"] == 2


class Threaded(SimDispatcher):
    """Runs each agent on a thread of its own, which reports the end itself."""

    async def dispatch(self, request: DispatchRequest) -> None:
        assert request.token is not None
        assert self._sink is not None
        token, sink, url = request.token.get_secret_value(), self._sink, self.endpoint
        self.dispatched.append(request.job_uuid)

        def agent() -> None:
            base = f"{url}/jobs/{request.job_uuid}"
            with httpx2.Client(timeout=10) as http:
                r = http.post(f"{base}/acquire", headers={"Authorization": f"Token {token}"})
                access = {"Authorization": f"Token {r.json()['access_token']}"}
                http.put(f"{base}/finish", headers=access, json={"exit_status": 0})
            sink.agent_ended(AgentExit(request.job_uuid, 0))  # not on the event loop

        threading.Thread(target=agent, daemon=True).start()


@pytest.mark.anyio
async def test_agent_ended_may_be_called_from_another_thread(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    jobs = em.create_jobs(20)
    dispatcher = Threaded(stacks_emulator.base_url)
    run = start(async_stacks_client, config(max_in_flight=5), dispatcher)
    await run.until(lambda: all(state(stacks_emulator, j) == "finished" for j in jobs))
    await run.until(lambda: not run.stack.in_flight)  # every report reached the loop
    await run.stop()
    assert sorted(dispatcher.dispatched) == sorted(jobs)
    assert run.kinds().count(EventKind.AGENT_ENDED) == 20


@pytest.fixture
def skipping_emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(clock=ManualClock(), rate_limits=False)) as server:
        yield server


@pytest.mark.anyio
async def test_adopted_work_reports_its_state_and_is_timed_out_like_our_own(
    skipping_emulator: EmulatorServer,
) -> None:
    stacks_emulator = skipping_emulator
    em = stacks_emulator.emulator
    skip = SkipClock(em.clock)
    async with AsyncClient(stacks_emulator.token, base_url=stacks_emulator.base_url) as client:
        await adopted_work_scenario(stacks_emulator, client, skip)


async def adopted_work_scenario(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient, skip: SkipClock
) -> None:
    em = stacks_emulator.emulator
    stuck, running = em.create_job(), em.create_job()
    await async_stacks_client.register_stack("test-stack", queue_key="__default__")
    await async_stacks_client.batch_reserve_jobs("test-stack", [stuck, running])
    issued = await async_stacks_client.issue_job_acquisition_tokens("test-stack", [running])
    token = issued.job_acquisition_tokens[0].job_acquisition_token.get_secret_value()
    async with httpx2.AsyncClient() as http:  # the agent took this one before the restart
        r = await http.post(f"{stacks_emulator.base_url.rstrip('/')}/jobs/{running}/acquire",
                            headers={"Authorization": f"Token {token}"})  # fmt: skip
        assert r.status_code == 200

    class Adopting(RefreshingSim):
        async def start(self, sink: Any) -> list[AdoptedJob]:  # type: ignore[override]
            await super().start(sink)
            return [AdoptedJob(stuck, AdoptedState.PROVISIONING),
                    AdoptedJob(running, AdoptedState.STARTED)]  # fmt: skip

    dispatcher = Adopting(stacks_emulator.base_url, hold={stuck})
    run = start(async_stacks_client, config(provisioning_timeout=120), dispatcher, skip)
    await run.until(lambda: EventKind.RENEWED in run.kinds(stuck))  # renewed at once
    await skip.advance_slowly(130, step=10)
    await run.until(lambda: state(stacks_emulator, stuck) == "finished")
    assert "did not start" in dispatcher.cancelled[stuck]
    assert running not in dispatcher.cancelled  # its agent owns the job: left alone
    assert running in run.stack.in_flight  # until the dispatcher reports its end
    dispatcher._sink.agent_ended(AgentExit(running, 0))  # type: ignore[union-attr]
    await run.until(lambda: not run.stack.in_flight)
    await run.stop()
    finish = em.job(stuck).finish
    assert finish is not None
    assert finish.signal_reason == "stack_error"
    assert "did not start within 120 s" in (finish.detail or "")
    assert EventKind.RENEWED not in run.kinds(running)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[" * 100_000, []),  # nested too deep: no crash
        ('{"docker#v5": {}}', []),  # not a list
        ('[1, "cache#v1", {"docker#v5": {"image": "x"}}]', [{"cache#v1": None},
                                                             {"docker#v5": {"image": "x"}}]),
        ("", []),
    ],
)  # fmt: skip
def test_plugins_never_crash_on_bad_input(raw: str, expected: list[dict[str, Any]]) -> None:
    import datetime as dt

    from stacksapi import Job, ScheduledJob

    job = ScheduledJob(id="j", scheduled_at=dt.datetime.now(dt.UTC))
    request = DispatchRequest(
        job, "s", "q", None, details=Job(id="j", env={"BUILDKITE_PLUGINS": raw})
    )
    assert request.plugins == expected


@pytest.mark.parametrize(
    ("ended", "refused"),
    [
        (AgentExit("j", ACQUIRE_REFUSED, "job acquisition rejected"), True),
        (AgentExit("j", 1, "POST https://x/v3/register: 401 Unauthorized (token)"), True),
        (AgentExit("j", 1, "cannot pull image"), False),
        (AgentExit("j", 0, "401 Unauthorized"), False),  # it ran: whatever it printed
        (AgentExit("j", None, "401 Unauthorized"), False),  # killed or lost: unknown
        (AgentExit("j", ACQUIRE_REFUSED, "", "cancelled: the job was canceled"), False),
        (AgentExit("j", 1, "HTTP 4010 Unauthorizedness"), False),
    ],
)
def test_what_counts_as_an_agent_refused_its_job(ended: AgentExit, refused: bool) -> None:
    assert ended.acquire_refused is refused
