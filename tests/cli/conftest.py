"""Fixtures for the CLI tests: a click runner with a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from stacksapi.emulator import EmulatorServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _own_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The job ids the CLI remembers go to the test's directory, never the home."""
    monkeypatch.setenv("STACKSAPI_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A runner whose environment has none of the variables the CLI reads."""
    for name in (
        "BUILDKITE_CLUSTER_TOKEN",
        "STACKSAPI_BASE_URL",
        "STACKSAPI_STACK_KEY",
        "STACKSAPI_QUEUE_KEY",
        "STACKSAPI_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def server(stacks_emulator: EmulatorServer) -> EmulatorServer:
    """The emulator with the queue the CLI tests use (``support.QUEUE``)."""
    stacks_emulator.emulator.create_queue("linux")
    return stacks_emulator
