"""Fixtures of the client tests: one scripted loopback server per session, reset per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from stacksapi import AsyncClient, Client

from ._server import ScriptedServer

TOKEN = "bkct_testtoken0123456789"


@pytest.fixture(scope="session")
def _session_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_session_server: ScriptedServer) -> Iterator[ScriptedServer]:
    _session_server.reset()
    yield _session_server
    _session_server.reset()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SleepRecorder:
    """Stands in for ``time.sleep`` / ``anyio.sleep``: records the waits, never waits."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def client(server: ScriptedServer, sleeps: SleepRecorder) -> Iterator[Client]:
    with Client(TOKEN, base_url=server.base_url) as c:
        c._sleep = sleeps
        yield c


@pytest.fixture
async def aclient(server: ScriptedServer, sleeps: SleepRecorder) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(TOKEN, base_url=server.base_url) as c:
        c._sleep = sleeps.asleep
        yield c
