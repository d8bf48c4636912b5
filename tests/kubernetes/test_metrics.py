"""The Kubernetes metrics are served on the stack's own ``/metrics``, next to the runtime's.

A real Stack with the KubernetesDispatcher and ``metrics_port`` set; the test scrapes the endpoint
over HTTP as Prometheus would and reads the figures the dispatcher added: API calls and errors
by verb, watch restarts, pods pending by reason, time from reservation to pod running.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from stacksapi import AsyncClient
from stacksapi.emulator import EmulatorServer

from .kube_fake import FakeKube
from .kube_helpers import (
    AgentKubelet,
    Run,
    agent_endpoint,
    dispatcher,
    eventually,
    stack_config,
)

pytestmark = pytest.mark.anyio


async def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx2.AsyncClient(timeout=10) as http:  # the server may share this event loop
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float:  # fmt: skip
    want = {("stack", "k8s"), *labels.items()}
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= ls)


async def test_kubernetes_metrics_join_the_stacks_metrics(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
) -> None:
    em = stacks_emulator.emulator
    kubelet = AgentKubelet(hold=True)
    fake_kube.kubelet = kubelet
    d = dispatcher(fake_kube, tmp_path, agent_env=agent_endpoint(stacks_emulator))
    fake_kube.fail("POST", "jobs", 503, times=1)  # one failed create, retried
    first = em.create_jobs(2)
    run = Run(async_stacks_client, stack_config(metrics_port=0), d)
    await run.until(lambda: all(em.job_state(j) == "accepted" for j in first))
    port = run.stack.metrics.port
    assert port is not None
    fake_kube.kubelet = AgentKubelet(unschedulable=True)  # the next pod stays pending
    stuck = em.create_job()
    await run.until(lambda: d.metrics.pending.get("Unschedulable") == 1)
    fake_kube.compact()  # the watches' versions are too old now: 410, list again
    fake_kube.drop_watches()
    await eventually(lambda: d.metrics.watch_restarts[("jobs", "expired")] >= 1)
    metrics = await scrape(port)
    assert value(metrics, "stacksapi_jobs_reserved_total") == 3  # the runtime's, same endpoint
    assert value(metrics, "stacksapi_kubernetes_api_calls_total", verb="create",
                 resource="jobs") == 4  # fmt: skip
    assert value(metrics, "stacksapi_kubernetes_api_errors_total", verb="create",
                 resource="jobs", code="503") == 1  # fmt: skip
    assert value(metrics, "stacksapi_kubernetes_api_calls_total", verb="create",
                 resource="secrets") == 3  # fmt: skip
    assert value(metrics, "stacksapi_kubernetes_api_calls_total", verb="patch",
                 resource="jobs") == 3  # each Job released once its Secret exists  # fmt: skip
    assert value(metrics, "stacksapi_kubernetes_watch_restarts_total", resource="jobs",
                 reason="expired") >= 1  # fmt: skip
    assert value(metrics, "stacksapi_kubernetes_pods_pending", reason="Unschedulable") == 1
    running = "stacksapi_kubernetes_reservation_to_pod_running_seconds_count"
    assert value(metrics, running) == 2
    kubelet.released.set()
    em.cancel_job(stuck)
    await run.until(lambda: not run.stack.in_flight)
    assert (await run.stop()).ok
