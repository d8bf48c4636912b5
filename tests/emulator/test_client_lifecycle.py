"""Our own client drives the emulator through a stack's whole life, sync and async."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from stacksapi import (
    AsyncClient,
    Client,
    JobState,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    StackNotification,
    UnprocessableEntityError,
)
from stacksapi.emulator import Emulator, EmulatorServer, ManualClock, create_app

QUEUE = "__default__"
KEY = "life"


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[Client]:
    with Client(server.token, base_url=server.base_url) as c:
        yield c


def test_a_stacks_whole_life(client: Client, server: EmulatorServer) -> None:
    emulator = server.emulator
    run_me, give_up = emulator.create_jobs(2, command="make test", env={"CI": "1"})

    stack = client.register_stack(KEY, queue_key=QUEUE, metadata={"version": "1"})
    assert (stack.key, stack.cluster_queue_key, stack.metadata) == (KEY, QUEUE, {"version": "1"})

    page = client.list_scheduled_jobs(KEY, queue_key=QUEUE, limit=10)
    assert [j.id for j in page.jobs] == [run_me, give_up]
    assert page.cluster_queue.dispatch_paused is False

    reservation = client.batch_reserve_jobs(KEY, [run_me, give_up])
    assert set(reservation.reserved) == {run_me, give_up}
    assert client.list_scheduled_jobs(KEY, queue_key=QUEUE).jobs == ()

    tokens = client.issue_job_acquisition_tokens(KEY, [run_me])
    (token,) = tokens.job_acquisition_tokens
    assert token.job_uuid == run_me
    assert "bkjat_" not in repr(token)

    job = client.get_job(KEY, run_me)
    assert (job.command, job.env) == ("make test", {"CI": "1"})

    result = client.create_stack_notifications(
        KEY, [StackNotification(job_uuid=run_me, detail="starting agent")]
    )
    assert result.errors == ()

    # The agent acquires the job with its token and runs it.
    secret = token.job_acquisition_token.get_secret_value()
    with httpx2.Client(base_url=server.base_url) as agent:
        acquired = agent.post(
            f"jobs/{run_me}/acquire", headers={"Authorization": f"Token {secret}"}
        )
        access = {"Authorization": f"Token {acquired.json()['access_token']}"}
        agent.put(f"jobs/{run_me}/start", headers=access)
        states = client.get_job_states(KEY, [run_me, give_up]).states
        assert states == {run_me: JobState.RUNNING, give_up: JobState.RESERVED}
        agent.put(f"jobs/{run_me}/finish", headers=access, json={"exit_status": 0})

    client.finish_job(KEY, give_up, exit_status=0, detail="nothing to do")
    with pytest.raises(UnprocessableEntityError):
        client.finish_job(KEY, give_up, exit_status=0, detail="again", retry=False)

    final = client.get_job_states(KEY, [run_me, give_up]).states
    assert final == {run_me: JobState.FINISHED, give_up: JobState.FINISHED}
    info = emulator.job(give_up)
    assert info.finish is not None
    assert (info.finish.exit_status, info.finish.detail) == (0, "nothing to do")
    assert emulator.job(run_me).notifications[0].detail == "starting agent"

    client.deregister_stack(KEY)
    with pytest.raises(NotFoundError):
        client.list_scheduled_jobs(KEY, queue_key=QUEUE, retry=False)


def test_iterating_every_page(client: Client, emulator: Emulator) -> None:
    ids = emulator.create_jobs(250)
    client.register_stack(KEY, queue_key=QUEUE)
    seen = [j.id for j in client.iter_scheduled_jobs(KEY, queue_key=QUEUE, page_size=100)]
    assert seen == ids


def test_the_client_sees_rate_limits(clock: ManualClock) -> None:
    emulator = Emulator(clock=clock, rate_limits={"default": 1})
    with EmulatorServer(emulator) as server, Client(server.token, base_url=server.base_url) as c:
        c.get_token()
        with pytest.raises(RateLimitError) as refused:
            c.get_token(retry=RetryPolicy(max_attempts=1))
    assert refused.value.status_code == 429


@pytest.mark.anyio
async def test_async_client_life(server: EmulatorServer) -> None:
    job = server.emulator.create_job()
    async with AsyncClient(server.token, base_url=server.base_url) as client:
        await client.register_stack(KEY, queue_key=QUEUE)
        page = await client.list_scheduled_jobs(KEY, queue_key=QUEUE)
        assert [j.id for j in page.jobs] == [job]
        assert (await client.batch_reserve_jobs(KEY, [job])).reserved == (job,)
        tokens = await client.issue_job_acquisition_tokens(KEY, [job])
        assert tokens.not_issued == ()
        await client.finish_job(KEY, job, exit_status=-1, detail="gave up", signal_reason="x")
        states = await client.get_job_states(KEY, [job])
        assert states.states == {job: JobState.FINISHED}
        await client.deregister_stack(KEY)


@pytest.mark.anyio
async def test_async_client_in_process_without_sockets(emulator: Emulator) -> None:
    """The app behind httpx2's ASGI transport: no server, no port."""
    job = emulator.create_job()
    transport = httpx2.ASGITransport(app=create_app(emulator))
    async with (
        httpx2.AsyncClient(transport=transport) as http,
        AsyncClient(
            emulator.token,
            base_url="http://emulator.test/v3/",
            http_client=http,
            allow_insecure_http=True,
        ) as client,
    ):
        await client.register_stack(KEY, queue_key=QUEUE)
        assert (await client.batch_reserve_jobs(KEY, [job])).reserved == (job,)
        assert (await client.get_token()).cluster_uuid == emulator.cluster_uuid
    assert emulator.job_state(job) == "reserved"
