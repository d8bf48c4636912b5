"""A real Stack with the KubernetesDispatcher, end to end over real HTTP.

The emulator plays Buildkite, the fake API server plays Kubernetes (reached through lightkube
from a kubeconfig file), and the fake kubelet plays the agent container: it reads the job
acquisition token from the Secret the pod references and acquires the job with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer
from stacksapi.kubernetes import job_name, secret_name

from .kube_fake import FakeKube
from .kube_helpers import (
    NS,
    AgentKubelet,
    Run,
    agent_endpoint,
    dispatcher,
    eventually,
    stack_config,
)

pytestmark = pytest.mark.anyio


def notes(server: EmulatorServer, uuid: str) -> list[str]:
    return [n.detail for n in server.emulator.job(uuid).notifications]


async def test_each_job_runs_as_a_kubernetes_job_with_its_token_in_an_owned_secret(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    kubelet = AgentKubelet(hold=True)
    fake_kube.kubelet = kubelet
    d = dispatcher(fake_kube, tmp_path, agent_env=agent_endpoint(stacks_emulator))
    jobs = em.create_jobs(3)
    run = Run(async_stacks_client, stack_config(), d)
    await run.until(lambda: all(em.job_state(j) == "accepted" for j in jobs))
    for uuid in jobs:
        k8s_job = fake_kube.get("jobs", NS, job_name(d.config, uuid))
        assert k8s_job is not None
        labels = k8s_job["metadata"]["labels"]
        assert labels["stacksapi/job-uuid"] == uuid
        assert labels["stacksapi/stack-key"] == "k8s"
        assert k8s_job["spec"]["ttlSecondsAfterFinished"] == 600
        assert k8s_job["spec"]["activeDeadlineSeconds"] == 6 * 3600
        secret = fake_kube.get("secrets", NS, secret_name(d.config, uuid))
        assert secret is not None
        owner = secret["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["uid"]) == ("Job", k8s_job["metadata"]["uid"])
        token = kubelet.tokens[uuid]  # what the container read from the Secret, and acquired with
        assert token.startswith("bkjat_")
        pods = [p for p in fake_kube.items("pods") if p["metadata"]["labels"]["job-name"]
                == k8s_job["metadata"]["name"]]  # fmt: skip
        assert token not in json.dumps(k8s_job) + json.dumps(pods)  # never in the pod spec
        created = f"Kubernetes Job {NS}/{job_name(d.config, uuid)} created"
        await run.until(lambda: created in notes(stacks_emulator, uuid))  # noqa: B023
    kubelet.released.set()
    await run.until(lambda: all(em.job_state(j) == "finished" for j in jobs))
    await run.until(lambda: not run.stack.in_flight)  # capacity freed when the Jobs end
    assert (await run.stop()).ok
    assert kubelet.errors == []
    assert all(em.job(j).exit_status == 0 for j in jobs)
    assert fake_kube.count("POST", "jobs") == 3


async def test_an_unpullable_image_finishes_the_job_with_the_events(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    fake_kube.kubelet = AgentKubelet(unpullable={"registry.example/missing:1"})
    template = "containers:\n- name: build\n  image: registry.example/missing:1\n"
    d = dispatcher(
        fake_kube, tmp_path, agent_env=agent_endpoint(stacks_emulator), pod_template=template
    )
    uuid = em.create_job()
    run = Run(async_stacks_client, stack_config(), d)
    await run.until(lambda: em.job_state(uuid) == "finished")
    await run.until(lambda: not run.stack.in_flight)
    await run.stop()
    info = em.job(uuid)
    assert info.exit_status == -1
    assert info.finish is not None
    assert info.finish.signal_reason == "stack_error"
    detail = info.finish.detail or ""
    assert "could not pull image 'registry.example/missing:1'" in detail
    assert 'Warning Failed: Failed to pull image "registry.example/missing:1"' in detail
    assert "Warning Failed: Error: ErrImagePull" in detail
    assert fake_kube.get("jobs", NS, job_name(d.config, uuid)) is None  # torn down
    assert fake_kube.items("secrets") == []  # garbage-collected with its Job


async def test_a_job_cancelled_on_buildkite_deletes_its_kubernetes_job(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    fake_kube.kubelet = AgentKubelet(unschedulable=True)  # stays pending: not started
    d = dispatcher(fake_kube, tmp_path, agent_env=agent_endpoint(stacks_emulator))
    uuid = em.create_job()
    run = Run(async_stacks_client, stack_config(), d)
    name = job_name(d.config, uuid)
    await run.until(lambda: fake_kube.get("jobs", NS, name) is not None)
    em.cancel_job(uuid)
    await run.until(lambda: fake_kube.get("jobs", NS, name) is None)
    await run.until(lambda: not run.stack.in_flight)
    await run.stop()
    assert fake_kube.items("pods") == []
    assert fake_kube.items("secrets") == []
    assert fake_kube.count("DELETE", name) == 1


async def test_a_restarted_stack_adopts_its_jobs_from_labels_and_never_creates_twice(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    kubelet = AgentKubelet(hold=True)
    fake_kube.kubelet = kubelet
    uuid = em.create_job()
    first = Run(async_stacks_client, stack_config(), dispatcher(fake_kube, tmp_path,
                agent_env=agent_endpoint(stacks_emulator)))  # fmt: skip
    await first.until(lambda: em.job_state(uuid) == "accepted")
    await first.until(lambda: uuid in first.stack.in_flight)
    assert (await first.stop()).ok  # the agent owns the job: its Kubernetes Job keeps running
    assert len(fake_kube.items("jobs")) == 1

    second_dispatcher = dispatcher(fake_kube, tmp_path, agent_env=agent_endpoint(stacks_emulator))
    second = Run(async_stacks_client, stack_config(), second_dispatcher)
    await second.until(lambda: uuid in second.stack.in_flight)
    kubelet.released.set()
    await second.until(lambda: em.job_state(uuid) == "finished")
    await second.until(lambda: not second.stack.in_flight)  # the adopted Job's end frees it
    assert (await second.stop()).ok
    assert fake_kube.count("POST", "jobs") == 1
    assert em.job(uuid).exit_status == 0
    await eventually(lambda: kubelet.errors == [])
