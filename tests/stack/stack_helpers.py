"""Test dispatchers that play the agent over the emulator's agent API, in-process.

``SimDispatcher`` acquires each job with its job acquisition token (``POST jobs/{uuid}/acquire``)
and finishes it (``PUT jobs/{uuid}/finish``), like a real agent but without a process, so tests
with thousands of jobs take seconds. Knobs make it fail a dispatch, fail before accepting, or
hold a job "provisioning" until released or cancelled. ``fast_dispatcher`` builds one from a
``StackConfig`` for ``python -m stacksapi.stack --dispatcher stack_helpers:fast_dispatcher``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import anyio
import httpx2

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import (
    AgentExit,
    DispatchError,
    DispatchRequest,
    DispatchSink,
    EventKind,
    Stack,
    StackConfig,
    StackEvent,
    StackExit,
)


class SimDispatcher:
    """An in-process agent per job. ``dispatched`` lists every dispatch, in order."""

    def __init__(
        self,
        endpoint: str,
        *,
        fail: Collection[str] = (),
        exit_before_accept: Collection[str] = (),
        hold: Collection[str] = (),
        hold_all: bool = False,
        dispatch_log: Path | None = None,
        finish: bool = True,
        cancel_delay: float = 0.0,
        refused_as: tuple[int, str] | None = None,
        wrong_token: Collection[str] = (),
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.fail = set(fail)
        self.exit_before_accept = set(exit_before_accept)
        self.hold = set(hold)
        self.hold_all = hold_all
        self.dispatch_log = dispatch_log
        self.finish = finish
        self.cancel_delay = cancel_delay
        self.refused_as = refused_as  # (exit status, output) of a refused agent; default 27
        self.wrong_token = set(wrong_token)  # jobs whose agents acquire with a bad token
        self.dispatched: list[str] = []
        self.tokens: dict[str, str] = {}  # the token each agent will acquire with
        self.refused: list[str] = []  # jobs whose agent was refused (401) at acquire
        self.peak = 0  # most agents alive at once
        self.cancelled: dict[str, str] = {}
        self.adopt: list[str] = []
        self.released: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sink: DispatchSink | None = None
        self._http: httpx2.AsyncClient | None = None

    async def start(self, sink: DispatchSink) -> Collection[str]:
        self._sink = sink
        self._http = httpx2.AsyncClient(timeout=10)
        for uuid in self.adopt:  # agents left provisioning by a controller that died
            if uuid in self.tokens:
                self._tasks[uuid] = asyncio.create_task(self._agent(uuid))
        return list(self.adopt)

    async def dispatch(self, request: DispatchRequest) -> None:
        uuid = request.job_uuid
        self.dispatched.append(uuid)
        if self.dispatch_log is not None:
            with self.dispatch_log.open("a") as f:
                f.write(uuid + "\n")
        if uuid in self.fail:
            raise DispatchError("image 'missing:latest' not found")
        assert request.token is not None
        self.tokens[uuid] = request.token.get_secret_value()
        self._tasks[uuid] = asyncio.create_task(self._agent(uuid))
        self.peak = max(self.peak, len(self._tasks))

    def release(self, uuid: str) -> None:
        """Let a held job's agent go on."""
        self.released.setdefault(uuid, asyncio.Event()).set()

    async def _agent(self, uuid: str) -> None:
        assert self._sink is not None
        assert self._http is not None
        if uuid in self.exit_before_accept:
            self._tasks.pop(uuid, None)
            self._sink.agent_ended(AgentExit(uuid, 1, "agent: cannot pull image\nfatal: boom"))
            return
        if self.hold_all or uuid in self.hold:
            await self.released.setdefault(uuid, asyncio.Event()).wait()
        base = f"{self.endpoint}/jobs/{uuid}"
        status = 1
        token = "bkjat_not_a_token" if uuid in self.wrong_token else self.tokens[uuid]
        r = await self._http.post(f"{base}/acquire", headers={"Authorization": f"Token {token}"})
        if r.status_code == 401:
            self.refused.append(uuid)
            status = 27  # what buildkite-agent exits with when its acquire is refused
        if r.status_code == 200 and not self.finish:
            status = 0  # accepted is enough: the agent "started" the job
        elif r.status_code == 200:
            access = {"Authorization": f"Token {r.json()['access_token']}"}
            r = await self._http.put(f"{base}/finish", headers=access, json={"exit_status": 0})
            status = 0 if r.status_code == 200 else 1
        self._tasks.pop(uuid, None)
        output = f"acquire/finish answered {r.status_code}"
        if r.status_code == 401 and self.refused_as is not None:
            status, output = self.refused_as
        self._sink.agent_ended(AgentExit(uuid, status, output))

    async def cancel(self, job_uuid: str, reason: str) -> None:
        if self.cancel_delay:
            await asyncio.sleep(self.cancel_delay)  # a slow teardown (a pod's API call)
        self.cancelled[job_uuid] = reason
        task = self._tasks.pop(job_uuid, None)
        if task is not None:
            task.cancel()
        assert self._sink is not None
        self._sink.agent_ended(AgentExit(job_uuid, None, "", f"cancelled: {reason}"))

    async def shutdown(self, grace: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=grace)
        for task in self._tasks.values():
            task.cancel()
        if self._http is not None:
            await self._http.aclose()


class RefreshingSim(SimDispatcher):
    """A SimDispatcher whose provisioning agents can take a fresh acquisition token."""

    def __init__(self, endpoint: str, **kwargs: Any) -> None:
        super().__init__(endpoint, **kwargs)
        self.refreshed: list[str] = []

    async def refresh_token(self, job_uuid: str, token: Any) -> bool:
        self.tokens[job_uuid] = token.get_secret_value()
        self.refreshed.append(job_uuid)
        return True


def fast_dispatcher(config: StackConfig) -> SimDispatcher:
    """For stack processes in tests: the endpoint from ``subprocess.env``, a dispatch log file."""
    log = os.environ.get("STACK_TEST_DISPATCH_LOG")
    return SimDispatcher(
        config.subprocess.env["BUILDKITE_AGENT_ENDPOINT"],
        dispatch_log=Path(log) if log else None,
        finish=False,
    )


def config(**changes: Any) -> StackConfig:
    base = StackConfig(
        key="test-stack",
        poll_interval=0.05,
        state_check_interval=0.1,
        shutdown_grace=1.0,
        tags={"os": "linux"},
    )
    return base.with_overrides(**changes)


class Run:
    """A stack running in the background of a test, with its events."""

    def __init__(
        self, client: Any, cfg: StackConfig, dispatcher: Any, clock: Any = time.monotonic
    ) -> None:
        self.stack = Stack(client, cfg, dispatcher, on_event=self.on_event, clock=clock)
        self.events: list[StackEvent] = []
        self.task: asyncio.Task[StackExit] | None = None

    def on_event(self, event: StackEvent) -> None:
        self.events.append(event)

    def kinds(self, job: str | None = None) -> list[EventKind]:
        return [e.kind for e in self.events if job is None or e.job_uuid == job]

    async def until(self, cond: Callable[[], bool], limit: float = 15.0) -> None:
        with anyio.fail_after(limit):
            while not cond():
                assert self.task is not None
                if self.task.done():
                    raise AssertionError(f"stack ended early: {self.task.result()}")
                await asyncio.sleep(0.02)

    async def stop(self) -> StackExit:
        assert self.task is not None
        self.stack.request_stop()
        with anyio.fail_after(15):
            return await self.task


def start(
    client: AsyncClient, cfg: StackConfig, dispatcher: SimDispatcher, clock: Any = time.monotonic
) -> Run:
    run = Run(client, cfg, dispatcher, clock)
    run.task = asyncio.create_task(run.stack.run_async())
    return run


def sim(server: EmulatorServer, **kwargs: Any) -> SimDispatcher:
    return SimDispatcher(server.base_url, **kwargs)


def state(server: EmulatorServer, uuid: str) -> str:
    return server.emulator.job_state(uuid)


def accepted_count(server: EmulatorServer, uuid: str) -> int:
    info = server.emulator.job(uuid)
    return sum(1 for t in info.transitions if t.to_state == "accepted")


def no_429(server: EmulatorServer) -> bool:
    return all(429 not in per for per in server.emulator.counters().values())


async def eventually(cond: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait until ``cond()`` holds (a safety limit, not a timing assertion)."""
    with anyio.fail_after(limit):
        while True:
            if cond():
                return
            await asyncio.sleep(0.02)


class SkipClock:
    """Moves the emulator's ``ManualClock`` and the stack's monotonic clock forward together.

    The stack's clock is real monotonic time plus the skipped seconds, so its sleeps and rate
    limiter work as usual while reservations and tokens can be aged at once.
    """

    def __init__(self, emulator_clock: Any) -> None:
        self.emulator_clock = emulator_clock
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.emulator_clock.advance(seconds)

    async def advance_slowly(self, seconds: float, step: float = 1.0, pause: float = 0.15) -> None:
        """Advance in steps, giving the stack a moment after each one (as time would)."""
        done = 0.0
        while done < seconds:
            self.advance(min(step, seconds - done))
            done += step
            await asyncio.sleep(pause)
