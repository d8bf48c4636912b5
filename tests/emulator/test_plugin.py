"""The pytest plugin: fixtures work in a user's test run, and importing it costs nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import pytest

from stacksapi import JobState
from stacksapi.emulator import EmulatorServer


def test_emulator_serves(stacks_emulator: EmulatorServer) -> None:
    assert stacks_emulator.base_url.endswith("/v3/")
    job = stacks_emulator.emulator.create_job(command="true")
    assert stacks_emulator.emulator.job_state(job) == "scheduled"


def test_client_bound(stacks_client, stacks_emulator) -> None:
    job = stacks_emulator.emulator.create_job()
    stacks_client.register_stack("mine", queue_key="__default__")
    page = stacks_client.list_scheduled_jobs("mine", queue_key="__default__")
    assert [j.id for j in page.jobs] == [job]
    assert stacks_client.get_token().is_clustered


@pytest.fixture
def stacks_emulator_options():
    return {"tokens": ["bkct_custom"], "queues": ["gpu"]}


def test_options_fixture(stacks_emulator) -> None:
    assert stacks_emulator.token == "bkct_custom"
    assert stacks_emulator.emulator.queue("gpu").key == "gpu"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_async_client(async_stacks_client, stacks_emulator) -> None:
    job = stacks_emulator.emulator.create_job()
    await async_stacks_client.register_stack("mine", queue_key="__default__")
    result = await async_stacks_client.batch_reserve_jobs("mine", [job])
    assert list(result.reserved) == [job]
    states = await async_stacks_client.get_job_states("mine", [job])
    assert states.states[job] == JobState.RESERVED
"""


def test_fixtures_in_a_user_test_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "anyio", "-q")
    result.assert_outcomes(passed=4)


def test_plugin_imports_without_starlette_and_stays_light() -> None:
    probe = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("starlette", "uvicorn"):
                    raise ImportError(f"blocked {name}")
                return None

        sys.meta_path.insert(0, Block())
        import stacksapi.emulator.pytest_plugin as plugin
        heavy = ("starlette", "uvicorn", "stacksapi.emulator._state")
        heavy = [m for m in heavy if m in sys.modules]
        assert not heavy, heavy
        assert plugin.stacks_emulator
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
