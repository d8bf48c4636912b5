"""EmulatorServer: lifecycle, URLs, middleware; thread safety of the Emulator under load."""

from __future__ import annotations

import threading

import httpx2
import pytest
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stacksapi.emulator import Emulator, EmulatorServer, ManualClock


def test_urls_tokens_and_stop() -> None:
    server = EmulatorServer()
    assert not server.running
    with server:
        assert server.running
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v3/")
        assert server.admin_url == server.base_url.replace("/v3/", "/_emulator/")
        assert server.port > 0
        assert server.token == server.emulator.token
        assert server.token not in repr(server)
        with httpx2.Client(headers={"Authorization": f"Token {server.token}"}) as http:
            assert http.get(server.base_url + "token").status_code == 200
        base = server.base_url
    assert not server.running
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(base + "token")
    server.stop()  # idempotent


def test_two_servers_get_two_ports() -> None:
    with EmulatorServer() as one, EmulatorServer() as two:
        assert one.port != two.port
        assert one.emulator is not two.emulator


def test_start_twice_is_refused() -> None:
    with EmulatorServer() as server, pytest.raises(RuntimeError, match="already"):
        server.start()


class _Stamp:
    """A middleware that marks every response, to show the hook is wired."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message["headers"], (b"x-stamp", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


def test_middleware_wraps_the_app() -> None:
    with EmulatorServer(middleware=[Middleware(_Stamp)]) as server:
        response = httpx2.get(server.base_url + "token")
    assert response.status_code == 401
    assert response.headers["x-stamp"] == "1"


def test_driving_from_threads_while_serving(clock: ManualClock) -> None:
    """Test threads create and cancel jobs while a stack reserves them over HTTP."""
    emulator = Emulator(clock=clock, rate_limits=False)
    with EmulatorServer(emulator) as server:
        headers = {"Authorization": f"Token {server.token}"}
        with httpx2.Client(base_url=server.base_url, headers=headers) as http:
            body = {"key": "s", "type": "custom", "queue_key": "__default__", "metadata": {}}
            http.post("stacks/register", json=body)
            created: list[str] = []

            def producer() -> None:
                for _ in range(20):
                    ids = emulator.create_jobs(10)
                    created.extend(ids)
                    emulator.cancel_job(ids[0])

            threads = [threading.Thread(target=producer) for _ in range(3)]
            for t in threads:
                t.start()
            reserved: set[str] = set()

            def busy() -> bool:
                alive = any(t.is_alive() for t in threads)
                return alive or emulator.queue("__default__").scheduled_jobs > 0

            while busy():
                page = http.get(
                    "stacks/s/scheduled-jobs", params={"queue_key": "__default__", "limit": 1000}
                ).json()
                ids = [j["id"] for j in page["jobs"]]
                if ids:
                    result = http.put(
                        "stacks/s/scheduled-jobs/batch-reserve", json={"job_uuids": ids}
                    ).json()
                    reserved.update(result["reserved"])
                    assert not set(result["reserved"]) & set(result["not_reserved"])
            for t in threads:
                t.join()
    states = [emulator.job_state(i) for i in created]
    assert len(created) == 600
    assert states.count("canceled") == 60
    assert states.count("reserved") == 540
    assert {i for i, state in zip(created, states, strict=True) if state == "reserved"} <= reserved
    assert emulator.queue("__default__").scheduled_jobs == 0
