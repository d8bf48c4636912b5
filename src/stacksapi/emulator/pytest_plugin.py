"""pytest fixtures that hand a test a running Stacks API emulator and clients bound to it.

Registered as a ``pytest11`` entry point, so installing ``stacksapi[emulator]`` makes them
available everywhere. Importing this module costs nothing: the emulator (starlette, uvicorn) and
the client are imported inside the fixtures, only by tests that use them.

Fixtures:

- ``stacks_emulator_options``: keyword arguments for :class:`~stacksapi.emulator.Emulator`
  (override it in a ``conftest.py`` or a test module to change tokens, limits, clock...).
- ``stacks_emulator``: a running :class:`~stacksapi.emulator.EmulatorServer` (``.base_url``,
  ``.token``, ``.emulator`` to create jobs and inspect history). One per test.
- ``stacks_client``: a ``stacksapi.Client`` bound to it; ``async_stacks_client``: a
  ``stacksapi.AsyncClient`` (an async fixture: the test must run under anyio's plugin).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from stacksapi import AsyncClient, Client

    from ._server import EmulatorServer

__all__ = [
    "async_stacks_client",
    "stacks_client",
    "stacks_emulator",
    "stacks_emulator_options",
]


@pytest.fixture
def stacks_emulator_options() -> dict[str, Any]:
    """Keyword arguments for the ``Emulator`` behind ``stacks_emulator`` (none by default)."""
    return {}


@pytest.fixture
def stacks_emulator(stacks_emulator_options: dict[str, Any]) -> Iterator[EmulatorServer]:
    """A Stacks API emulator serving on 127.0.0.1 (an ephemeral port) for one test."""
    from ._server import EmulatorServer
    from ._state import Emulator

    with EmulatorServer(Emulator(**stacks_emulator_options)) as server:
        yield server


def _client_kwargs(server: EmulatorServer) -> dict[str, Any]:
    return {"token": server.token, "base_url": server.base_url}


@pytest.fixture
def stacks_client(stacks_emulator: EmulatorServer) -> Iterator[Client]:
    """A ``stacksapi.Client`` talking to ``stacks_emulator`` with its cluster token."""
    from stacksapi import Client

    with Client(**_client_kwargs(stacks_emulator)) as client:
        yield client


@pytest.fixture
async def async_stacks_client(stacks_emulator: EmulatorServer) -> AsyncIterator[AsyncClient]:
    """A ``stacksapi.AsyncClient`` talking to ``stacks_emulator`` with its cluster token."""
    from stacksapi import AsyncClient

    async with AsyncClient(**_client_kwargs(stacks_emulator)) as client:
        yield client
