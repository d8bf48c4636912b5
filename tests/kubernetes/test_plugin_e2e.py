"""Steps with the ``kubernetes`` plugin, end to end: emulator, a real Stack, the fake cluster.

The emulator schedules jobs whose env carries ``BUILDKITE_PLUGINS`` exactly as Buildkite sends
it; the stack reserves and dispatches them; the dispatcher reads each job's plugins and creates
its pod in the fake cluster, where the fake kubelet plays the agent container and runs the job
to its finish. A malformed or prohibited plugin fails only its own job, with a ``stack_error``
naming why, while the stack carries on with the others.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stacksapi import DEFAULT_QUEUE_KEY, AsyncClient, Job
from stacksapi.emulator import EmulatorServer
from stacksapi.kubernetes import KubernetesDispatcher
from stacksapi.kubernetes._jobsource import ApiJobDetails

from .catalogue import Step_, containers, env_of, validate
from .kube_fake import FakeKube
from .kube_helpers import (
    NS,
    AgentKubelet,
    RecordingSink,
    Run,
    agent_endpoint,
    dispatcher,
    kube_config,
    request,
    stack_config,
)

U1 = "0190aaaa-0000-4000-8000-0000000000e1"

pytestmark = pytest.mark.anyio

STEP = Step_(
    plugin={
        "podSpec": {"containers": [{"name": "tests", "image": "golang:1.23",
                                    "command": ["go test ./..."]}]},
        "podSpecPatch": {"containers": [{"name": "tests", "resources": {
            "requests": {"cpu": "2", "memory": "4Gi"}}}]},
        "sidecars": [{"name": "redis", "image": "redis:7"}],
        "metadata": {"labels": {"team": "web"}},
        "checkout": {"cloneFlags": "--depth=1"},
    },
    rules=("queue=default",),
)  # fmt: skip


def pod_of(fake: FakeKube, uuid: str) -> dict[str, Any]:
    pods = [p for p in fake.items("pods", NS)
            if p["metadata"]["annotations"].get("stacksapi/job-uuid") == uuid]  # fmt: skip
    assert len(pods) == 1
    return {"spec": {"template": {"spec": pods[0]["spec"]}}, "metadata": pods[0]["metadata"]}


def make_dispatcher(fake: FakeKube, tmp_path: Path, server: EmulatorServer,
                    **changes: Any) -> Any:  # fmt: skip
    return dispatcher(fake, tmp_path, agent_env=agent_endpoint(server), **changes)


async def test_a_job_with_the_plugin_runs_to_a_finish_in_the_pod_it_asked_for(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    kubelet = AgentKubelet()
    fake_kube.kubelet = kubelet
    large = {"resource": {"requests": {"cpu": "4"}}, "nodeSelector": {"pool": "big"}}
    d = make_dispatcher(fake_kube, tmp_path, stacks_emulator, resource_classes={"large": large})
    good = em.create_job(env=STEP.job_env(), command="make test")
    sized = em.create_job(agent_query_rules=("queue=default", "resource_class=large"))
    bad_settings = {"podSpecPatch": {"containers": [{"name": "tests", "resource": {}}]}}
    bad = em.create_job(env=Step_(plugin=bad_settings).job_env())
    plain = em.create_job(command="echo plain")
    run = Run(async_stacks_client, stack_config(tags={"resource_class": "*"}), d)
    jobs = (good, bad, plain, sized)
    await run.until(lambda: all(em.job_state(j) == "finished" for j in jobs))
    await run.until(lambda: not run.stack.in_flight)
    assert (await run.stop()).ok
    assert kubelet.errors == []

    assert em.job(good).exit_status == 0  # acquired and finished by the pod's agent
    pod = pod_of(fake_kube, good)
    tests = containers(pod)["tests"]
    assert tests["image"] == "golang:1.23"
    assert tests["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert env_of(tests)["BUILDKITE_COMMAND"] == "go test ./..."
    assert list(containers(pod)) == ["tests", "agent", "checkout"]
    redis = containers(pod, "initContainers")["redis"]
    assert redis["restartPolicy"] == "Always"  # a native sidecar: ends with the job
    assert env_of(containers(pod)["agent"])["BUILDKITE_GIT_CLONE_FLAGS"] == "--depth=1"
    assert pod["metadata"]["labels"]["team"] == "web"

    info = em.job(bad)  # only the malformed step failed, naming the field
    assert info.finish is not None
    assert info.finish.signal_reason == "stack_error"
    assert "podSpecPatch.containers[0].resource" in (info.finish.detail or "")
    assert em.job(plain).exit_status == 0
    plain_pod = pod_of(fake_kube, plain)
    assert env_of(containers(plain_pod)["container-0"])["BUILDKITE_COMMAND"] == "echo plain"
    sized_pod = pod_of(fake_kube, sized)  # the resource class its agent tag names
    assert containers(sized_pod)["container-0"]["resources"]["requests"] == {"cpu": "4"}
    assert sized_pod["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "big"}
    assert em.job(sized).exit_status == 0
    created = fake_kube.items("jobs", NS)
    assert len(created) == 3  # nothing was created for the bad step
    for job in created:  # what the cluster received is valid, strictly
        validate(job)


async def test_a_stack_that_prohibits_the_plugin_fails_those_jobs_and_runs_the_rest(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    fake_kube.kubelet = AgentKubelet()
    d = make_dispatcher(fake_kube, tmp_path, stacks_emulator, prohibit_kubernetes_plugin=True)
    with_plugin = em.create_job(env=STEP.job_env())
    without = em.create_job(
        env={
            "BUILDKITE_PLUGINS": json.dumps(
                [{"github.com/buildkite-plugins/docker-buildkite-plugin#v5.11.0": {"image": "x"}}]
            )
        }
    )
    run = Run(async_stacks_client, stack_config(), d)
    await run.until(lambda: all(em.job_state(j) == "finished" for j in (with_plugin, without)))
    await run.until(lambda: not run.stack.in_flight)
    assert (await run.stop()).ok
    info = em.job(with_plugin)
    assert info.finish is not None
    assert info.finish.signal_reason == "stack_error"
    assert "prohibits the kubernetes plugin" in (info.finish.detail or "")
    assert em.job(without).exit_status == 0
    assert len(fake_kube.items("jobs", NS)) == 1


async def test_a_request_without_details_has_them_fetched(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    asked: list[str] = []

    async def job_details(uuid: str) -> Job:
        asked.append(uuid)
        return Job(id=uuid, env=STEP.job_env(), command="make test")

    d = KubernetesDispatcher(kube_config(fake_kube, tmp_path), stack_key="k8s",
                             job_details=job_details)  # fmt: skip
    await d.start(RecordingSink())
    try:
        req = request(U1)
        assert req.details is None  # e.g. adopted work whose fetch failed
        await d.dispatch(req)
        assert asked == [U1]
        job = fake_kube.items("jobs", NS)[0]
        assert "tests" in containers(job)
    finally:
        await d.shutdown(0)


async def test_the_configured_dispatcher_fetches_details_with_a_client_of_its_own(
    stacks_emulator: EmulatorServer, async_stacks_client: AsyncClient
) -> None:
    em = stacks_emulator.emulator
    await async_stacks_client.register_stack("k8s", queue_key=DEFAULT_QUEUE_KEY)
    uuid = em.create_job(env=STEP.job_env(), command="make test")
    source = ApiJobDetails("k8s", stacks_emulator.base_url,
                           environ={"BUILDKITE_CLUSTER_TOKEN": stacks_emulator.token})  # fmt: skip
    try:
        details = await source(uuid)
    finally:
        await source.aclose()
    assert details.command == "make test"
    assert "kubernetes-buildkite-plugin" in details.env["BUILDKITE_PLUGINS"]
