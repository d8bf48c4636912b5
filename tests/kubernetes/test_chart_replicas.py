"""Replicas as the Helm chart runs them: real ``stacksapi run`` processes on the emulator.

Each replica is started the way its pod would be: the chart's rendered ``stack.toml`` and the
StatefulSet's environment, ``$(POD_NAME)`` expanded for the replica's ordinal pod name (only
the metrics address is moved to a free loopback port). Proven here: each replica registers its
own key and answers ``/readyz``; a replica killed with SIGKILL comes back under its old key and
adopts its predecessor's Jobs without creating any again; a crash loop leaves exactly one stack
per replica registered; scaling down deregisters the replica while its running jobs finish.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from stacksapi._models import DEFAULT_QUEUE_KEY
from stacksapi.emulator import EmulatorServer

from .kube_fake import FakeKube
from .kube_helpers import NS, AgentKubelet

pytestmark = pytest.mark.slow

RELEASE = "ci"


def chart_helpers() -> Any:
    from chart import chart_helpers as helpers  # tests/chart, next to this package

    return helpers


def wait_for(cond: Callable[[], bool], what: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit  # a safety limit, not a timing assertion
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One controller pod of the StatefulSet, played by a ``stacksapi run`` process."""

    def __init__(self, pod: str, env: dict[str, str], config: Path, logs: Path) -> None:
        self.pod, self.env, self.config, self.logs = pod, env, config, logs
        self.port = int(env["STACKSAPI_STACK_METRICS_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.logs / f"{self.pod}.{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        argv = [sys.executable, "-m", "stacksapi.cli", "run", "--config", str(self.config)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--log-format", "json"], env=self.env, stdout=out, stderr=out
            )

    def ready(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, self.log.read_text()
        try:
            response = httpx2.get(f"http://127.0.0.1:{self.port}/readyz", timeout=5)
        except httpx2.TransportError:
            return False
        return response.status_code == 200

    def metric(self, name: str) -> float:
        text = httpx2.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        line = next(x for x in text.splitlines() if x.startswith(name + "{"))
        return float(line.rsplit(" ", 1)[1])

    def adopted(self) -> set[str]:
        out = set()
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "adopted":
                    out.add(record["job_uuid"])
        return out

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no deregistration, no cleanup
        self.proc.wait(20)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)  # what the kubelet sends on scale-down
        return self.proc.wait(30)


@pytest.fixture
def replicas(
    stacks_emulator: EmulatorServer, fake_kube: FakeKube, tmp_path: Path
) -> Iterator[list[Replica]]:
    helpers = chart_helpers()
    helm = helpers.helm_binary()
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(fake_kube.kubeconfig(NS))
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "replicas": 2,
        "config": {
            "stack": {"base_url": stacks_emulator.base_url, "queue_key": DEFAULT_QUEUE_KEY,
                      "max_in_flight": 4, "poll_interval": 0.1,
                      "state_check_interval": 0.2, "shutdown_grace": 2.0},
            "kubernetes": {"kubeconfig": str(kubeconfig), "check_interval": 0.1,
                           "agent_env": {"BUILDKITE_AGENT_ENDPOINT":
                                         stacks_emulator.base_url.rstrip("/")}},
        },
    }))  # fmt: skip
    objects = helpers.render(helm, values, release=RELEASE, namespace=NS)
    config = tmp_path / "stack.toml"
    config.write_text(helpers.one(objects, "ConfigMap")["data"]["stack.toml"])
    sts = helpers.one(objects, "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    chart_env = helpers.env_of(container)
    base = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    base["BUILDKITE_CLUSTER_TOKEN"] = stacks_emulator.token  # the Secret's value
    started = []
    for ordinal in range(sts["spec"]["replicas"]):
        pod = f"{sts['metadata']['name']}-{ordinal}"
        env = {**base, **helpers.expand_env(chart_env, pod)}
        assert env["STACKSAPI_STACK_METRICS_HOST"] == "0.0.0.0"
        env["STACKSAPI_STACK_METRICS_HOST"] = "127.0.0.1"  # tests listen on loopback only
        env["STACKSAPI_STACK_METRICS_PORT"] = str(free_port())
        started.append(Replica(pod, env, config, tmp_path))
    try:
        yield started
    finally:
        for replica in started:
            if replica.proc is not None and replica.proc.poll() is None:
                replica.proc.kill()
                replica.proc.wait(20)


def jobs_by_key(fake: FakeKube) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for job in fake.items("jobs", NS):
        meta = job["metadata"]
        out.setdefault(meta["labels"]["stacksapi/stack-key"], set()).add(
            meta["annotations"]["stacksapi/job-uuid"]
        )
    return out


def test_replicas_keep_their_keys_adopt_after_a_crash_and_scale_down_cleanly(
    stacks_emulator: EmulatorServer, fake_kube: FakeKube, replicas: list[Replica]
) -> None:
    em = stacks_emulator.emulator
    kubelet = AgentKubelet(hold=True)  # agents take their jobs and run until released
    fake_kube.kubelet = kubelet
    first, second = replicas
    keys = [f"kubernetes-{RELEASE}-stacksapi-0", f"kubernetes-{RELEASE}-stacksapi-1"]
    # Replica 0 starts first and fills up (max_in_flight 4); replica 1 takes the rest.
    first.start()
    wait_for(first.ready, f"{first.pod} /readyz")
    early = [em.create_job() for _ in range(4)]
    wait_for(lambda: all(em.job_state(j) == "accepted" for j in early), "4 jobs accepted")
    second.start()
    wait_for(second.ready, f"{second.pod} /readyz")
    assert sorted(s.key for s in em.list_stacks()) == keys
    jobs = [*early, *(em.create_job() for _ in range(4))]
    wait_for(lambda: all(em.job_state(j) == "accepted" for j in jobs), "every job accepted")
    held = jobs_by_key(fake_kube)
    assert held == {keys[0]: set(early), keys[1]: set(jobs[4:])}  # one Job each, by key

    # A crash loop: replica 0 is killed three times and comes back each time.
    for _ in range(3):
        first.kill()
        first.start()
        wait_for(first.ready, f"{first.pod} /readyz after a restart")
    assert sorted(s.key for s in em.list_stacks()) == keys  # no trail of stale stacks
    assert first.adopted() == set(early)  # its predecessor's Jobs, under its key
    assert first.metric("stacksapi_jobs_in_flight") == 4
    assert fake_kube.count("POST", "jobs") == len(jobs)  # none created again

    # Scale down: replica 1 stops cleanly; the agents it started keep their jobs.
    assert second.terminate() == 0, second.log.read_text()
    assert sorted(s.key for s in em.list_stacks()) == keys[:1]
    kubelet.released.set()
    wait_for(lambda: all(em.job_state(j) == "finished" for j in jobs), "every job finished")
    assert all(em.job(j).exit_status == 0 for j in jobs)
    later = em.create_job()  # the remaining replica serves the queue alone
    wait_for(lambda: em.job_state(later) == "finished", "a job after the scale-down")
    assert later in jobs_by_key(fake_kube)[keys[0]]
    wait_for(lambda: first.metric("stacksapi_jobs_in_flight") == 0, "replica 0 idle")
    assert first.terminate() == 0
    assert em.list_stacks() == []
    assert kubelet.errors == []
    for replica in replicas:
        for n in range(1, replica.starts + 1):
            text = (replica.logs / f"{replica.pod}.{n}.log").read_text()
            assert stacks_emulator.token not in text
