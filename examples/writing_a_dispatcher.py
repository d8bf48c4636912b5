"""A dispatcher written from scratch, run end to end against a local emulator.

    python examples/writing_a_dispatcher.py

``SlotDispatcher`` is what ``docs/stack.md`` ("Writing a dispatcher") walks through: it runs each
job's agent as a local process, at most ``slots`` at a time, picks an image per job from the
job's docker plugin (as a container or VM dispatcher would), says "not now" when its slots are
full, refuses jobs that ask for an image it does not allow, and reports each agent's end from a
watcher thread. The script starts the project's emulator on 127.0.0.1, schedules a few jobs, runs
a ``Stack`` with the dispatcher until they are done, and prints how each ended. It uses the
emulator's stand-in for ``buildkite-agent``; point ``agent`` at the real one in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.stack import (
    AdoptedJob,
    AgentExit,
    DispatchDeferred,
    DispatchError,
    DispatchRequest,
    DispatchSink,
    Stack,
    StackConfig,
)

ALLOWED_IMAGES = {"python:3.12", "node:22"}
DEFAULT_IMAGE = "python:3.12"


class SlotDispatcher:
    """One local agent process per job, at most ``slots`` at once."""

    def __init__(self, agent: Sequence[str], env: dict[str, str], slots: int = 2) -> None:
        self.agent = list(agent)  # argv of the agent; the job's uuid is appended
        self.env = env  # extra environment for every agent (the agent API endpoint)
        self.slots = slots
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.images: dict[str, str] = {}
        self.sink: DispatchSink | None = None

    async def start(self, sink: DispatchSink) -> list[AdoptedJob]:
        self.sink = sink
        return []  # nothing survives this process; a pod or VM dispatcher lists its work here

    async def dispatch(self, request: DispatchRequest) -> None:
        image = choose_image(request)
        if image not in ALLOWED_IMAGES:  # this job can never run here: fail it with a reason
            raise DispatchError(f"image {image!r} is not allowed ({sorted(ALLOWED_IMAGES)})")
        if len(self.procs) >= self.slots:  # full now, fine later: back to the queue, unfailed
            raise DispatchDeferred(f"all {self.slots} slots busy", retry_after=0.2)
        assert request.token is not None  # issue_tokens is on by default
        env = {
            **os.environ,
            **self.env,
            **request.extra_env,
            "BUILDKITE_AGENT_ACQUIRE_JOB": request.job_uuid,
            "BUILDKITE_AGENT_TOKEN": request.token.get_secret_value(),  # only ever in the env
            "EXAMPLE_IMAGE": image,
        }
        env.pop("BUILDKITE_CLUSTER_TOKEN", None)  # an agent never sees the cluster token
        try:
            proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the thread waits
                [*self.agent, request.job_uuid], env=env,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:
            raise DispatchError(f"cannot run {self.agent[0]!r}: {exc}") from None
        self.procs[request.job_uuid] = proc
        self.images[request.job_uuid] = image
        threading.Thread(target=self._wait, args=(request.job_uuid, proc), daemon=True).start()

    def _wait(self, uuid: str, proc: subprocess.Popen[bytes]) -> None:
        """On a thread of its own: wait for the agent, then report. ``agent_ended`` is
        thread-safe, so no hop to the event loop is needed here."""
        output, _ = proc.communicate()
        self.procs.pop(uuid, None)
        tail = output.decode(errors="replace")[-2000:]
        assert self.sink is not None
        self.sink.agent_ended(AgentExit(uuid, proc.returncode, tail))

    async def cancel(self, job_uuid: str, reason: str) -> None:
        proc = self.procs.get(job_uuid)
        if proc is None:  # nothing running (any more): report at once
            assert self.sink is not None
            self.sink.agent_ended(AgentExit(job_uuid, None, "", f"cancelled: {reason}"))
            return
        proc.terminate()  # the watcher thread reports the end

    async def shutdown(self, grace: float) -> None:
        """Nothing to release; running agents are left to finish their jobs."""


def choose_image(request: DispatchRequest) -> str:
    """The image the job's docker plugin asks for, else the default."""
    for plugin in request.plugins:
        for name, config in plugin.items():
            if name.startswith("docker#") and isinstance(config, dict) and "image" in config:
                return str(config["image"])
    return DEFAULT_IMAGE


def docker(image: str) -> dict[str, str]:
    """A job env naming ``image`` in its docker plugin, as Buildkite sends it."""
    return {"BUILDKITE_PLUGINS": json.dumps([{"docker#v5.11.0": {"image": image}}])}


async def run(server: EmulatorServer) -> dict[str, str]:
    em = server.emulator
    jobs = {
        "python": em.create_job(command="echo tests passed"),
        "node": em.create_job(command="echo built", env=docker("node:22")),
        "more-1": em.create_job(command="sleep 0.3"),
        "more-2": em.create_job(command="sleep 0.3"),
        "refused": em.create_job(command="true", env=docker("windows:ltsc")),
    }
    agent = [sys.executable, "-m", "stacksapi.emulator._agent", "start", "--acquire-job"]
    dispatcher = SlotDispatcher(agent, {"BUILDKITE_AGENT_ENDPOINT": server.base_url.rstrip("/")})
    config = StackConfig(key="example-slots", poll_interval=0.1, state_check_interval=0.2)
    async with AsyncClient(server.token, base_url=server.base_url) as client:
        stack = Stack(client, config, dispatcher)
        task = asyncio.create_task(stack.run_async())
        while any(em.job_state(uuid) != "finished" for uuid in jobs.values()):  # noqa: ASYNC110
            await asyncio.sleep(0.1)  # another process's state: polled
        stack.request_stop()
        result = await task
    print(f"stack stopped: {result.reason}")
    print(f"dispatches deferred (slots full): {stack.metrics.counts['dispatches_deferred']}")
    outcome = {}
    for name, uuid in jobs.items():
        finish = em.job(uuid).finish
        assert finish is not None
        outcome[name] = f"exit {finish.exit_status} by {finish.by}"
        image = dispatcher.images.get(uuid, "-")
        print(f"{name:<8} image {image:<12} {outcome[name]}: {(finish.detail or '')[:70]}")
    return outcome


def main() -> None:
    with EmulatorServer() as server:
        asyncio.run(run(server))


if __name__ == "__main__":
    main()
