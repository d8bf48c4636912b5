"""``SimAgents``: a dispatcher whose agents are asyncio tasks speaking the emulator's agent API.

Each agent acquires its job with the job acquisition token, starts it, "runs" for ``run_for``
seconds while watching for a cancel, and finishes it, like ``buildkite-agent`` but without a
process, so chaos runs with hundreds of jobs take seconds (``refuse`` lists jobs whose dispatch
fails with a :class:`~stacksapi.stack.DispatchError`, as a missing image would). Hooks let a test
act at a precise point of a job's life (just acquired, just started). A cancel from the stack
before the acquire stops the agent there; after it, the agent finishes the job (as a real agent
stopped by a signal does), so no job is ever left ``accepted`` by an agent that vanished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

import httpx2

from stacksapi.stack import AgentExit, DispatchError, DispatchRequest, DispatchSink

__all__ = ["Hook", "SimAgents"]

Hook = Callable[[str], Awaitable[None]]
"""Called with a job uuid at a point of the agent's work; may wait (to hold the agent there)."""

_RETRY = (429, 500, 502, 503, 504)


class SimAgents:
    """The dispatcher. ``dispatched`` counts dispatches per job; ``overlaps`` lists jobs
    dispatched while an agent of theirs was still alive (the runtime must never do that; a new
    dispatch after the previous agent ended, e.g. its token expired, is a normal retry)."""

    def __init__(
        self,
        endpoint: str,
        *,
        run_for: float = 0.0,
        refuse: Collection[str] = (),
        before_acquire: Hook | None = None,
        after_acquire: Hook | None = None,
        after_start: Hook | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.run_for = run_for
        self.refuse = set(refuse)
        self.before_acquire = before_acquire
        self.after_acquire = after_acquire
        self.after_start = after_start
        self.dispatched: dict[str, int] = {}
        self.tokens: dict[str, str] = {}  # the token each agent acquires with (refreshable)
        self.overlaps: list[str] = []
        self.broken: str | None = None  # set: every dispatch fails so (a broken agent command)
        self._stop: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sink: DispatchSink | None = None
        self._http: httpx2.AsyncClient | None = None

    async def start(self, sink: DispatchSink) -> Collection[str]:
        self._sink = sink
        self._http = httpx2.AsyncClient(timeout=10)
        return []

    async def dispatch(self, request: DispatchRequest) -> None:
        uuid = request.job_uuid
        self.dispatched[uuid] = self.dispatched.get(uuid, 0) + 1
        if uuid in self._tasks:
            self.overlaps.append(uuid)
        if self.broken is not None:
            raise DispatchError(self.broken)
        if uuid in self.refuse:
            raise DispatchError("image 'missing:latest' not found")
        assert request.token is not None
        self._stop[uuid] = asyncio.Event()
        token = self.tokens[uuid] = request.token.get_secret_value()
        self._tasks[uuid] = asyncio.create_task(self._agent(uuid, token))

    async def cancel(self, job_uuid: str, reason: str) -> None:
        stop = self._stop.get(job_uuid)
        if stop is not None:
            stop.set()  # the agent notices, finishes the job if it took it, and reports
        elif self._sink is not None:
            self._sink.agent_ended(AgentExit(job_uuid, None, "", f"cancelled: {reason}"))

    async def shutdown(self, grace: float) -> None:
        for stop in self._stop.values():
            stop.set()
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=max(grace, 5.0))
        if self._http is not None:
            await self._http.aclose()

    async def _send(self, method: str, url: str, token: str, **kw: object) -> httpx2.Response:
        assert self._http is not None
        headers = {"Authorization": f"Token {token}"}
        for attempt in range(5):
            try:
                r = await self._http.request(method, url, headers=headers, **kw)  # type: ignore[arg-type]
            except httpx2.TransportError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.1)
                continue
            if r.status_code not in _RETRY or attempt == 4:
                return r
            await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    async def _agent(self, uuid: str, token: str) -> None:
        stop = self._stop[uuid]
        result = AgentExit(uuid, 1, "agent: never got to the job")
        try:
            result = await self._work(uuid, token, stop)
        except Exception as exc:  # a chaos agent reports every failure, never hangs
            result = AgentExit(uuid, 1, f"agent failed: {type(exc).__name__}: {exc}")
        finally:
            self._tasks.pop(uuid, None)
            self._stop.pop(uuid, None)
            if self._sink is not None:
                self._sink.agent_ended(result)

    async def _work(self, uuid: str, token: str, stop: asyncio.Event) -> AgentExit:
        base = f"{self.endpoint}/jobs/{uuid}"
        if self.before_acquire is not None:
            await self.before_acquire(uuid)
        if stop.is_set():
            return AgentExit(uuid, None, "", "cancelled before the agent took the job")
        r = await self._send("POST", f"{base}/acquire", self.tokens.get(uuid, token))
        if r.status_code != 200:
            # 27: what buildkite-agent exits with when its acquire is refused
            return AgentExit(uuid, 27, f"acquire refused: {r.status_code} {r.text[:200]}")
        access = r.json()["access_token"]
        if self.after_acquire is not None:
            await self.after_acquire(uuid)
        status = 0
        if not stop.is_set():
            await self._send("PUT", f"{base}/start", access)
            if self.after_start is not None:
                await self.after_start(uuid)
            status = await self._run(base, access, stop)
        else:
            status = -1
        r = await self._send("PUT", f"{base}/finish", access, json={"exit_status": status})
        return AgentExit(uuid, 0, f"finish answered {r.status_code}")

    async def _run(self, base: str, access: str, stop: asyncio.Event) -> int:
        """Run for ``run_for`` seconds; -1 when the job is cancelled (or we are told to stop)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.run_for
        while True:
            r = await self._send("GET", f"{base}/state", access)
            if r.status_code == 200 and r.json().get("state") in ("canceling", "canceled"):
                return -1
            left = deadline - loop.time()
            if left <= 0:
                return 0
            try:
                await asyncio.wait_for(stop.wait(), min(left, 0.05))
                return -1
            except TimeoutError:
                continue
