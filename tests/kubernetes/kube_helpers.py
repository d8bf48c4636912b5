"""Helpers of the Kubernetes tests: a kubelet that plays the agent, a recording sink, a stack run.

``AgentKubelet`` is what runs "in" each pod of the fake cluster: it reads the pod's environment
like a container would (the job acquisition token resolved from the Secret the pod references),
then acquires and finishes the job over the emulator's agent API, as ``buildkite-agent start``
would. Knobs make the image unpullable, the pod unschedulable, an init container fail, or the
agent hold the job until released.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import anyio
import httpx2

from stacksapi import ScheduledJob, Secret
from stacksapi.kubernetes import KubernetesConfig, KubernetesDispatcher
from stacksapi.stack import AgentExit, DispatchRequest, Stack, StackConfig, StackEvent, StackExit

from .kube_fake import FakeKube, Obj, now_iso

NS = "ci"


def container_status(c: Obj, state: Obj, *, ready: bool = False) -> Obj:
    return {"name": c["name"], "image": c["image"], "imageID": "", "ready": ready,
            "restartCount": 0, "state": state}  # fmt: skip


class AgentKubelet:
    """Decides what each new pod does (runs in a thread per pod)."""

    def __init__(
        self,
        *,
        unpullable: Collection[str] = (),
        unschedulable: bool = False,
        init_fails: bool = False,
        hold: bool = False,
    ) -> None:
        self.unpullable = set(unpullable)
        self.unschedulable = unschedulable
        self.init_fails = init_fails
        self.hold = hold
        self.released = threading.Event()
        self.tokens: dict[str, str] = {}  # job uuid -> the token the "container" saw
        self.errors: list[str] = []

    def __call__(self, fake: FakeKube, ns: str, pod: Obj) -> None:
        try:
            self._run(fake, ns, pod)
        except Exception as exc:  # visible in assertions, never silent
            self.errors.append(repr(exc))

    def _run(self, fake: FakeKube, ns: str, pod: Obj) -> None:
        name, spec = pod["metadata"]["name"], pod["spec"]
        containers = spec["containers"]
        for c in spec.get("initContainers", []) + containers:
            if c["image"] in self.unpullable:
                self._pull_fails(fake, ns, name, containers, c)
                return
        if self.unschedulable:
            fake.add_event(ns, "Pod", name, "Warning", "FailedScheduling",
                           "0/3 nodes are available: 3 Insufficient cpu.")  # fmt: skip
            fake.update_pod(ns, name, {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/3 nodes are available: 3 Insufficient cpu."}]})  # fmt: skip
            return
        if self.init_fails:
            init = spec["initContainers"][0]
            done = {"terminated": {"exitCode": 1, "reason": "Error", "message": "clone failed"}}
            fake.add_event(ns, "Pod", name, "Warning", "BackOff", "init container clone failed")
            statuses = [container_status(init, done)]
            fake.update_pod(ns, name, {"phase": "Pending", "initContainerStatuses": statuses})
            return
        self._agent(fake, ns, name, containers)

    def _pull_fails(self, fake: FakeKube, ns: str, pod: str, all_: list[Obj], bad: Obj) -> None:
        image = bad["image"]
        fake.add_event(ns, "Pod", pod, "Normal", "Pulling", f'Pulling image "{image}"')
        fake.add_event(ns, "Pod", pod, "Warning", "Failed",
                       f'Failed to pull image "{image}": rpc error: code = NotFound '
                       "desc = manifest unknown")  # fmt: skip
        fake.add_event(ns, "Pod", pod, "Warning", "Failed", "Error: ErrImagePull")
        waiting = {"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}
        fake.update_pod(ns, pod, {"phase": "Pending", "containerStatuses": [
            container_status(c, waiting if c is bad else {"waiting": {"reason": "PodInitializing"}})
            for c in all_]})  # fmt: skip

    def _agent(self, fake: FakeKube, ns: str, pod: str, containers: list[Obj]) -> None:
        agent = next(c for c in containers if c["name"] == "agent")
        env: dict[str, str] = {}
        for var in agent.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                value = None
                deadline = time.monotonic() + 5  # the kubelet retries until the Secret exists
                while value is None and time.monotonic() < deadline:
                    value = fake.secret_value(ns, ref["name"], ref["key"])
                    time.sleep(0.01) if value is None else None
                assert value is not None, f"Secret {ref['name']} never appeared"
                env[var["name"]] = value
        uuid, token = env["BUILDKITE_AGENT_ACQUIRE_JOB"], env["BUILDKITE_AGENT_TOKEN"]
        self.tokens[uuid] = token
        running = {"running": {"startedAt": now_iso()}}
        fake.update_pod(ns, pod, {"phase": "Running", "containerStatuses": [
            container_status(c, running, ready=True) for c in containers]})  # fmt: skip
        base = f"{env['BUILDKITE_AGENT_ENDPOINT']}/jobs/{uuid}"
        status = 1
        with httpx2.Client(timeout=10) as http:
            r = http.post(f"{base}/acquire", headers={"Authorization": f"Token {token}"})
            if r.status_code == 200:
                if self.hold:
                    self.released.wait(120)  # the test releases it; a bound, not a pace
                access = {"Authorization": f"Token {r.json()['access_token']}"}
                r = http.put(f"{base}/finish", headers=access, json={"exit_status": 0})
                status = 0 if r.status_code == 200 else 1
        reason = "Completed" if not status else "Error"
        done = {"terminated": {"exitCode": status, "reason": reason}}
        fake.update_pod(ns, pod, {"phase": "Succeeded" if status == 0 else "Failed",
                                  "containerStatuses": [container_status(c, done)
                                                        for c in containers]})  # fmt: skip


class RecordingSink:
    """A ProvisioningSink for dispatcher-level tests."""

    def __init__(self, started: Collection[str] = ()) -> None:
        self.ended: list[AgentExit] = []
        self.notes: list[tuple[str, str]] = []
        self.started = set(started)

    def agent_ended(self, result: AgentExit) -> None:
        self.ended.append(result)

    def job_started(self, job_uuid: str) -> bool:
        return job_uuid in self.started

    def notify(self, job_uuid: str, detail: str) -> None:
        self.notes.append((job_uuid, detail))


def kube_config(fake: FakeKube, tmp_path: Path, **changes: Any) -> KubernetesConfig:
    path = tmp_path / "kubeconfig.yaml"
    path.write_text(fake.kubeconfig(NS))
    values: dict[str, Any] = {"kubeconfig": str(path), "check_interval": 0.05,
                              "image_pull_grace": 0.2, "pending_timeout": 30.0}  # fmt: skip
    values.update(changes)
    return KubernetesConfig(**values)


def dispatcher(fake: FakeKube, tmp_path: Path, key: str = "k8s", **changes: Any) -> Any:
    return KubernetesDispatcher(kube_config(fake, tmp_path, **changes), stack_key=key)


def request(uuid: str, token: str = "bkjat_test_token_1234567890", key: str = "k8s") -> Any:
    job = ScheduledJob(id=uuid, scheduled_at=dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
    return DispatchRequest(job, key, "default", Secret(token))


def stack_config(**changes: Any) -> StackConfig:
    base = StackConfig(key="k8s", poll_interval=0.05, state_check_interval=0.1, shutdown_grace=1.0)
    return base.with_overrides(**changes)


class Run:
    """A Stack running in the background of a test."""

    def __init__(self, client: Any, cfg: StackConfig, dispatcher: Any) -> None:
        self.events: list[StackEvent] = []
        self.stack = Stack(client, cfg, dispatcher, on_event=self.events.append)
        self.task: asyncio.Task[StackExit] = asyncio.create_task(self.stack.run_async())

    async def until(self, cond: Callable[[], bool], limit: float = 15.0) -> None:
        with anyio.fail_after(limit):
            while not cond():
                if self.task.done():
                    raise AssertionError(f"stack ended early: {self.task.result()}")
                await asyncio.sleep(0.02)

    async def stop(self) -> StackExit:
        self.stack.request_stop()
        with anyio.fail_after(15):
            return await self.task


async def eventually(cond: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait until ``cond()`` holds (a safety limit, not a timing assertion)."""
    with anyio.fail_after(limit):
        while True:
            if cond():
                return
            await asyncio.sleep(0.02)
