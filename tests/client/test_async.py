"""AsyncClient: the same core over httpx2.AsyncClient, with awaitable sleep and async iteration."""

from __future__ import annotations

import httpx2
import pytest

import stacksapi
from stacksapi import AsyncClient, RetryPolicy, StackNotification

from ._data import job_page, stack_body
from ._server import ScriptedServer
from .conftest import TOKEN, SleepRecorder

pytestmark = pytest.mark.anyio


async def test_every_endpoint(aclient: AsyncClient, server: ScriptedServer) -> None:
    server.reply(201, stack_body())
    assert (await aclient.register_stack("my-stack", queue_key="q")).key == "my-stack"
    server.reply(200, job_page(1))
    assert len((await aclient.list_scheduled_jobs("my-stack", queue_key="q")).jobs) == 1
    server.reply(200, {"reserved": ["a"], "not_reserved": []})
    assert (await aclient.batch_reserve_jobs("my-stack", ["a"])).reserved == ("a",)
    server.reply(200, {"id": "a", "env": {}, "command": "true"})
    assert (await aclient.get_job("my-stack", "a")).command == "true"
    server.reply(200, {"states": {"a": "reserved"}})
    assert (await aclient.get_job_states("my-stack", ["a"])).states == {"a": "reserved"}
    server.reply(201, {"job_acquisition_tokens": [], "not_issued": ["a"]})
    assert (await aclient.issue_job_acquisition_tokens("my-stack", ["a"])).not_issued == ("a",)
    server.reply(200, {"errors": []})
    assert (
        await aclient.create_stack_notifications("my-stack", [StackNotification("a", "hi")])
    ).errors == ()
    server.reply(204)
    await aclient.finish_job("my-stack", "a", detail="ok", exit_status=0)
    server.reply(200, {"uuid": "t"})
    assert (await aclient.get_token()).uuid == "t"
    server.reply(204)
    await aclient.deregister_stack("my-stack")
    paths = [(r.method, r.raw_path) for r in server.requests]
    assert paths[-1] == ("POST", "/v3/stacks/my-stack/deregister")
    assert server.requests[7].json == {"exit_status": 0, "detail": "ok"}
    assert len(paths) == 10


async def test_async_retries_use_the_injected_sleep(
    server: ScriptedServer, sleeps: SleepRecorder
) -> None:
    server.reply(503, {"message": "busy"}, headers={"Retry-After": "3"})
    server.reply(429, {"message": "slow"}, headers={"RateLimit-Reset": "0.2"})
    server.reply(200, {"id": "j"})
    async with AsyncClient(TOKEN, base_url=server.base_url) as c:
        c._sleep = sleeps.asleep
        assert (await c.get_job("s", "j")).id == "j"
    assert sleeps.waits == [3.0, 0.2]


async def test_async_errors_and_with_response(aclient: AsyncClient, server: ScriptedServer) -> None:
    server.reply(401, {"message": "bad token"})
    with pytest.raises(stacksapi.AuthenticationError, match="bad token"):
        await aclient.get_token()
    server.reply(200, {"id": "j"}, headers={"RateLimit-Remaining": "7"})
    r = await aclient.with_response.get_job("s", "j", retry=RetryPolicy(max_attempts=1))
    assert r.data.id == "j"
    assert r.rate_limit is not None
    assert r.rate_limit.remaining == 7


async def test_async_timeout(aclient: AsyncClient, server: ScriptedServer) -> None:
    server.reply(200, {"id": "j"}, delay=0.5)
    with pytest.raises(stacksapi.APITimeoutError):
        await aclient.get_job("s", "j", timeout=0.1, retry=False)


async def test_async_iter_follows_cursors(aclient: AsyncClient, server: ScriptedServer) -> None:
    server.reply(200, job_page(2, has_next=True, cursor="c1"))
    server.reply(200, job_page(1, start=2, has_next=False, cursor="c2"))
    ids = [j.id async for j in aclient.iter_scheduled_jobs("s", queue_key="q", page_size=2)]
    assert ids == ["job-0", "job-1", "job-2"]
    assert [r.query.get("after") for r in server.requests] == [None, "c1"]


async def test_async_callers_client_not_closed(server: ScriptedServer) -> None:
    http = httpx2.AsyncClient()
    server.reply(204)
    async with AsyncClient(TOKEN, base_url=server.base_url, http_client=http) as c:
        await c.deregister_stack("k")
    assert not http.is_closed
    await http.aclose()
