"""Fixtures for the emulator's tests: a manual clock, an emulator, a real server, HTTP clients."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from stacksapi.emulator import Emulator, EmulatorServer, ManualClock

from ._helpers import QUEUE, STACK


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def emulator(clock: ManualClock) -> Emulator:
    """Rate limits off: functional tests make many calls at one manual instant."""
    return Emulator(clock=clock, rate_limits=False, queues=["linux"])


@pytest.fixture
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as running:
        yield running


@pytest.fixture
def http(server: EmulatorServer) -> Iterator[httpx2.Client]:
    """A plain HTTP client on the Stacks API base with the cluster token."""
    headers = {"Authorization": f"Token {server.token}"}
    with httpx2.Client(base_url=server.base_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def admin(server: EmulatorServer) -> Iterator[httpx2.Client]:
    """A plain HTTP client on the admin API with the admin token."""
    headers = {"Authorization": f"Token {server.admin_token}"}
    with httpx2.Client(base_url=server.admin_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
def stack(http: httpx2.Client) -> str:
    """A registered stack's key."""
    body = {"key": STACK, "type": "custom", "queue_key": QUEUE, "metadata": {}}
    response = http.post("stacks/register", json=body)
    assert response.status_code == 201, response.text
    return STACK
