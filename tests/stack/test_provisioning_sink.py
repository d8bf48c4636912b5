"""Hooks for dispatchers that watch provisioning, and dispatcher choice from the config file.

``Stack`` is a :class:`ProvisioningSink`: a dispatcher asks whether an agent took a job (to choose
between failing it and notifying) and posts notifications. ``stack.dispatcher`` names the
dispatcher; other top-level tables (``[kubernetes]``) reach it through ``extensions``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

import httpx2
import pytest
from stack_helpers import config, start

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import (
    ConfigError,
    DispatchRequest,
    DispatchSink,
    ProvisioningSink,
    StackConfig,
    run_stack,
)

pytestmark = pytest.mark.anyio


class Holding:
    """Keeps every job's token; the test plays the agent."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.sink: DispatchSink | None = None

    async def start(self, sink: DispatchSink) -> Collection[str]:
        self.sink = sink
        return ()

    async def dispatch(self, request: DispatchRequest) -> None:
        assert request.token is not None
        self.tokens[request.job_uuid] = request.token.get_secret_value()

    async def cancel(self, job_uuid: str, reason: str) -> None:
        del job_uuid, reason

    async def shutdown(self, grace: float) -> None:
        del grace


async def test_stack_answers_job_started_and_posts_notifications(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    job = em.create_job()
    dispatcher = Holding()
    run = start(async_stacks_client, config(), dispatcher)  # type: ignore[arg-type]
    await run.until(lambda: job in dispatcher.tokens)
    sink = dispatcher.sink
    assert isinstance(sink, ProvisioningSink)
    assert not sink.job_started(job)
    assert not sink.job_started("not-in-flight")
    async with httpx2.AsyncClient() as http:
        r = await http.post(
            f"{stacks_emulator.base_url.rstrip('/')}/jobs/{job}/acquire",
            headers={"Authorization": f"Token {dispatcher.tokens[job]}"},
        )
    assert r.status_code == 200
    await run.until(lambda: sink.job_started(job))
    sink.notify(job, "pod restarted: " + "x" * 400)
    sink.notify("not-in-flight", "dropped")
    await run.until(lambda: any("pod restarted" in n.detail for n in em.job(job).notifications))
    await run.stop()
    detail = next(n.detail for n in em.job(job).notifications if "pod restarted" in n.detail)
    assert len(detail) == 256


def test_other_tables_are_kept_for_the_dispatcher(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text(
        '[stack]\nkey = "k"\ndispatcher = "stacksapi.kubernetes:dispatcher"\n'
        '[kubernetes]\nnamespace = "ci"\n'
    )
    cfg = StackConfig.from_toml(path)
    assert cfg.dispatcher == "stacksapi.kubernetes:dispatcher"
    assert dict(cfg.extensions) == {"kubernetes": {"namespace": "ci"}}
    assert cfg.with_overrides(max_in_flight=3).extensions == cfg.extensions


def test_a_near_typo_of_a_known_table_is_still_rejected() -> None:
    with pytest.raises(ConfigError, match=r"subproces: unknown key.*did you mean subprocess"):
        StackConfig.from_mapping(
            {"stack": {"key": "k", "dispatcher": "m:f"}, "subproces": {"command": "x"}}
        )
    with pytest.raises(ConfigError, match=r"kubernetes: unknown key"):  # no dispatcher for it
        StackConfig.from_mapping({"stack": {"key": "k"}, "kubernetes": {}})
    with pytest.raises(ConfigError, match=r"stack\.extensions: unknown key"):
        StackConfig.from_mapping({"stack": {"key": "k", "extensions": {}}})
    with pytest.raises(ConfigError, match=r"stack\.dispatcher: expected MODULE:NAME"):
        StackConfig(key="k", dispatcher="nocolon")


async def test_run_stack_reports_a_dispatcher_that_cannot_be_loaded(
    stacks_emulator: EmulatorServer,
) -> None:
    cfg = StackConfig(key="k", dispatcher="no_such_module_here:make", base_url="http://unused")
    result = await asyncio.wait_for(
        run_stack(cfg, token=stacks_emulator.emulator.token, install_signal_handlers=False), 10
    )
    assert not result.ok
    assert "stack.dispatcher: cannot load 'no_such_module_here:make'" in result.reason
