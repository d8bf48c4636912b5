"""KubernetesDispatcher on its own, against the fake API server over real HTTP (lightkube).

Duplicate creation, retries, watch breaks, stuck pods before and after the agent took the job,
Jobs that fail or vanish, and the errors a user sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from stacksapi.kubernetes import KubernetesDispatcher, job_name, secret_name
from stacksapi.stack import DispatchError, StackConfig

from .kube_fake import FakeKube
from .kube_helpers import (
    NS,
    AgentKubelet,
    RecordingSink,
    dispatcher,
    eventually,
    kube_config,
    request,
)

pytestmark = pytest.mark.anyio

U1 = "0190aaaa-0000-4000-8000-000000000001"
U2 = "0190aaaa-0000-4000-8000-000000000002"
TOKEN = "bkjat_test_token_1234567890"


async def test_a_duplicate_create_is_already_dispatched_not_an_error(
    fake_kube: FakeKube, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = dispatcher(fake_kube, tmp_path), dispatcher(fake_kube, tmp_path)
    sink1, sink2 = RecordingSink(), RecordingSink()
    assert await first.start(sink1) == []
    assert await second.start(sink2) == []  # both started before the Job existed
    await first.dispatch(request(U1, "bkjat_first"))
    with caplog.at_level(logging.INFO, logger="stacksapi.kubernetes"):
        await second.dispatch(request(U1, "bkjat_second"))  # 409 on the Job: adopt it
    assert "already dispatched" in caplog.text
    assert sink2.notes == [(U1, f"Kubernetes Job ci/{job_name(first.config, U1)} already existed; "
                                "adopted it")]  # fmt: skip
    assert "bkjat_" not in caplog.text
    assert len(fake_kube.items("jobs")) == 1
    assert fake_kube.count("POST", "jobs") == 2
    job = fake_kube.items("jobs")[0]
    secret = fake_kube.get("secrets", NS, secret_name(first.config, U1))
    assert secret is not None
    assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    assert fake_kube.secret_value(NS, secret["metadata"]["name"], "token") == "bkjat_second"
    fake_kube.finish_job(NS, job["metadata"]["name"], succeeded=True)
    await eventually(lambda: len(sink1.ended) == 1 and len(sink2.ended) == 1)
    assert sink1.ended[0].succeeded
    assert sink2.ended[0].succeeded
    for d in (first, second):
        await d.shutdown(0)


async def test_transient_errors_are_retried_and_a_rejection_is_a_dispatch_error(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    d = dispatcher(fake_kube, tmp_path, api_retries=3)
    await d.start(RecordingSink())
    fake_kube.fail("POST", "jobs", 503, times=2)
    fake_kube.fail("POST", "secrets", 429, times=1)
    await d.dispatch(request(U1))
    assert fake_kube.count("POST", "jobs") == 3
    assert fake_kube.count("POST", "secrets") == 2
    assert fake_kube.get("secrets", NS, secret_name(d.config, U1)) is not None
    fake_kube.fail("POST", "jobs", 403, times=1)
    with pytest.raises(DispatchError, match="cannot create Kubernetes Job ci/buildkite-") as info:
        await d.dispatch(request(U2))
    assert "403" in str(info.value)
    assert TOKEN not in str(info.value)
    fake_kube.fail("POST", "secrets", 500, times=99)
    with pytest.raises(DispatchError, match="500"):
        await d.dispatch(request(U2))
    assert fake_kube.get("jobs", NS, job_name(d.config, U2)) is None  # no Job left without token
    await d.shutdown(0)


async def test_watches_recover_by_listing_again(fake_kube: FakeKube, tmp_path: Path) -> None:
    d = dispatcher(fake_kube, tmp_path)
    sink = RecordingSink()
    await d.start(sink)
    await d.dispatch(request(U1))
    await d.dispatch(request(U2))
    assert d._watcher is not None
    listed = d._watcher.relists
    fake_kube.compact()  # the version the watch holds is now too old: 410 on reconnect
    fake_kube.delete("jobs", NS, job_name(d.config, U1))  # missed while the stream was down?
    fake_kube.drop_watches()
    await eventually(lambda: d._watcher is not None and d._watcher.relists > listed)
    await eventually(lambda: [e.job_uuid for e in sink.ended] == [U1])
    assert sink.ended[0].error == f"The Kubernetes Job ci/{job_name(d.config, U1)} was deleted"
    fake_kube.finish_job(NS, job_name(d.config, U2), succeeded=False)  # the new watch sees it
    await eventually(lambda: len(sink.ended) == 2)
    assert sink.ended[1].exit_status == 1
    assert "BackoffLimitExceeded" in sink.ended[1].output
    await d.shutdown(0)


async def test_a_stuck_pod_after_the_agent_took_the_job_only_notifies(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.kubelet = AgentKubelet(unpullable={"sidecar:missing"})
    template = "containers:\n- name: sidecar\n  image: sidecar:missing\n"
    d = dispatcher(fake_kube, tmp_path, pod_template=template)
    sink = RecordingSink(started={U1})
    await d.start(sink)
    await d.dispatch(request(U1))
    await eventually(lambda: any("could not pull image" in n for _, n in sink.notes))
    note = next(n for _, n in sink.notes if "could not pull" in n)
    assert "container sidecar could not pull image 'sidecar:missing'" in note
    assert sink.ended == []
    assert fake_kube.get("jobs", NS, job_name(d.config, U1)) is not None  # the agent owns it
    await d.shutdown(0)


@pytest.mark.parametrize(
    ("kubelet", "template", "pending", "words"),
    [
        (
            AgentKubelet(init_fails=True),
            "initContainers:\n- name: clone\n  image: git\ncontainers: []\n",
            30.0,  # reported at once, long before any timeout
            ["init container clone failed (exit 1, Error): clone failed",
             "Warning BackOff: init container clone failed"],
        ),
        (
            AgentKubelet(unschedulable=True),
            None,
            1.0,  # the fake kubelet (a thread) reports well within it
            ["pending for", "(Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.)",
             "Warning FailedScheduling: 0/3 nodes are available"],
        ),
    ],
    ids=["init-container-fails", "pending-past-timeout"],
)  # fmt: skip
async def test_a_stuck_pod_before_the_agent_took_the_job_ends_the_work_with_events(
    fake_kube: FakeKube,
    tmp_path: Path,
    kubelet: AgentKubelet,
    template: str | None,
    pending: float,
    words: list[str],
) -> None:
    fake_kube.kubelet = kubelet
    d = dispatcher(fake_kube, tmp_path, pod_template=template, pending_timeout=pending)
    sink = RecordingSink()
    await d.start(sink)
    await d.dispatch(request(U1))
    await eventually(lambda: len(sink.ended) == 1)
    ended = sink.ended[0]
    assert ended.exit_status is None
    assert not ended.succeeded
    text = f"{ended.error}\n{ended.output}"
    for word in words:
        assert word in text
    assert fake_kube.items("jobs") == []
    await d.shutdown(0)


async def test_cancel_and_errors_a_user_sees(fake_kube: FakeKube, tmp_path: Path) -> None:
    d = dispatcher(fake_kube, tmp_path)
    sink = RecordingSink()
    await d.start(sink)
    await d.cancel(U2, "the job was canceled")  # never dispatched here: ended at once
    assert sink.ended[-1].job_uuid == U2
    await d.dispatch(request(U1))
    with pytest.raises(DispatchError, match="already being watched"):
        await d.dispatch(request(U1))
    fake_kube.delete("jobs", NS, job_name(d.config, U1))  # gone before the cancel
    await eventually(lambda: len(sink.ended) == 2)
    no_token = request(U2)
    object.__setattr__(no_token, "token", None)
    with pytest.raises(DispatchError, match=r"kubernetes\.agent_token_secret"):
        await d.dispatch(no_token)
    await d.shutdown(0)


async def test_issue_tokens_off_uses_the_named_agent_token_secret(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    d = dispatcher(fake_kube, tmp_path, agent_token_secret="buildkite-agent-token")
    await d.start(RecordingSink())
    req = request(U1)
    object.__setattr__(req, "token", None)
    await d.dispatch(req)
    job = fake_kube.items("jobs")[0]
    containers = job["spec"]["template"]["spec"]["containers"]
    env = next(c for c in containers if c["name"] == "agent")["env"]
    ref = next(e for e in env if e["name"] == "BUILDKITE_AGENT_TOKEN")["valueFrom"]
    assert ref == {"secretKeyRef": {"name": "buildkite-agent-token", "key": "token"}}
    assert fake_kube.items("secrets") == []
    await d.shutdown(0)


async def test_start_fails_clearly_without_a_cluster(tmp_path: Path) -> None:
    d = dispatcher_from(tmp_path / "missing-kubeconfig")
    with pytest.raises(RuntimeError, match="cannot load the Kubernetes configuration"):
        await d.start(RecordingSink())


def dispatcher_from(path: Path) -> KubernetesDispatcher:
    cfg = StackConfig.from_mapping(
        {
            "stack": {"key": "k8s", "dispatcher": "stacksapi.kubernetes:dispatcher"},
            "kubernetes": {"kubeconfig": str(path), "namespace": "ci"},
        }
    )
    return KubernetesDispatcher.from_stack_config(cfg)


async def test_a_controller_starting_leaves_a_job_another_is_creating_and_clears_a_cut_short_one(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    """Two controllers with one key (a mistake, survived): one starts while the other is between
    creating a Job (suspended) and releasing it. The Job is not a leftover: it is left alone, and
    its dispatch goes through. A suspended Job that nobody releases is a creation cut short (the
    controller died): it is deleted once it has stayed suspended past the grace."""
    first = await MidCreation.begin(fake_kube, tmp_path)
    leftover = first.leftover(U2)  # nobody will release it
    second = KubernetesDispatcher(kube_config(fake_kube, tmp_path), stack_key="k8s",
                                  suspended_grace=6.0)  # fmt: skip
    assert await second.start(RecordingSink()) == []
    assert fake_kube.get("jobs", NS, first.name) is not None  # not deleted under the first
    first.gate.set()
    await first.creating  # released: its pod runs
    job = fake_kube.get("jobs", NS, first.name)
    assert job is not None
    assert not job["spec"].get("suspend")
    await eventually(lambda: fake_kube.get("jobs", NS, leftover) is None)  # after the grace
    assert fake_kube.get("jobs", NS, first.name) is not None  # the released one stays
    for d in (first.dispatcher, second):
        await d.shutdown(0)


async def test_a_suspended_job_older_than_the_grace_is_deleted_at_start(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    first = await MidCreation.begin(fake_kube, tmp_path)
    leftover = first.leftover(U2, created=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    second = dispatcher(fake_kube, tmp_path)
    await second.start(RecordingSink())  # the grace is 60 s: this Job is far older
    await eventually(lambda: fake_kube.get("jobs", NS, leftover) is None, 5)
    first.abandon()
    for d in (first.dispatcher, second):
        await d.shutdown(0)


async def test_a_leftover_that_a_dispatch_here_took_over_is_not_deleted(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    """A suspended leftover found at start is the Job a later dispatch of the same job meets
    (409): the dispatch takes it over. If the grace ends while that dispatch is still releasing
    it, the Job is this process's own work now, and stays."""
    first = await MidCreation.begin(fake_kube, tmp_path)
    leftover = first.leftover(U2)
    first.abandon()  # the first controller is gone
    second = KubernetesDispatcher(kube_config(fake_kube, tmp_path), stack_key="k8s",
                                  suspended_grace=3.0)  # fmt: skip
    await second.start(RecordingSink())
    release = fake_kube.hold("PATCH", "jobs")  # the take-over's release waits
    taking_over = asyncio.create_task(second.dispatch(request(U2, "bkjat_second")))
    await eventually(lambda: fake_kube.count("GET", leftover) >= 2)  # the 409's look, the grace's
    deletes = fake_kube.count("DELETE", leftover)
    release.set()
    await taking_over
    job = fake_kube.get("jobs", NS, leftover)
    assert job is not None
    assert not job["spec"].get("suspend")
    assert deletes == 0
    assert fake_kube.count("DELETE", leftover) == 0
    for d in (first.dispatcher, second):
        await d.shutdown(0)


@dataclasses.dataclass
class MidCreation:
    """A controller between creating its Job for ``U1`` (suspended) and releasing it: the fake
    holds its Secret's creation until ``gate`` is set."""

    fake: FakeKube
    dispatcher: KubernetesDispatcher
    gate: threading.Event
    creating: asyncio.Task[None]
    name: str

    @classmethod
    async def begin(cls, fake: FakeKube, tmp_path: Path) -> MidCreation:
        first = dispatcher(fake, tmp_path)
        await first.start(RecordingSink())
        gate = fake.hold("POST", "secrets")
        creating = asyncio.create_task(first.dispatch(request(U1)))
        name = job_name(first.config, U1)
        await eventually(lambda: fake.get("jobs", NS, name) is not None)
        return cls(fake, first, gate, creating, name)

    def leftover(self, uuid: str, *, created: dt.datetime | None = None) -> str:
        """Store a suspended Job for ``uuid`` like this one (as a dispatch creates it); its name."""
        job = self.fake.get("jobs", NS, self.name)
        assert job is not None
        text = json.dumps(job).replace(self.name, job_name(self.dispatcher.config, uuid))
        copy: dict[str, Any] = json.loads(text.replace(U1, uuid))
        for field in ("uid", "resourceVersion", "creationTimestamp"):
            copy["metadata"].pop(field, None)
        if created is not None:
            copy["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert copy["spec"]["suspend"] is True
        return str(self.fake.store("jobs", NS, copy, created=True)["metadata"]["name"])

    def abandon(self) -> None:
        """The controller dies mid-creation."""
        self.creating.cancel()
        self.gate.set()
