"""The dispatcher stays correct under watch races, bursts, cancels and sidecars.

Each test replays one failure found in review against the fake API server over real HTTP: a
re-dispatch adopting a finished Job of an earlier dispatch, a late relist declaring a live Job
deleted, a burst creating every Job before any Secret, a cancel racing a create retry, and an
ordinary sidecar keeping a pod alive after its agent exited. Last, a fresh acquisition token
reaching a pod whose agent has not started (the runtime's ``TokenRefresher``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stacksapi import AsyncClient, Secret
from stacksapi.emulator import EmulatorServer
from stacksapi.kubernetes import job_name, secret_name

from .kube_fake import FakeKube, now_iso
from .kube_helpers import (
    NS,
    AgentKubelet,
    RecordingSink,
    Run,
    agent_endpoint,
    container_status,
    dispatcher,
    eventually,
    request,
    stack_config,
)

pytestmark = pytest.mark.anyio

U1 = "0190bbbb-0000-4000-8000-000000000001"


@pytest.mark.parametrize("succeeded", [True, False], ids=["complete", "failed"])
async def test_a_redispatch_replaces_the_finished_job_of_an_earlier_dispatch(
    fake_kube: FakeKube, tmp_path: Path, succeeded: bool
) -> None:
    d = dispatcher(fake_kube, tmp_path)
    sink = RecordingSink()
    await d.start(sink)
    name = job_name(d.config, U1)
    await d.dispatch(request(U1, "bkjat_first_dispatch"))
    first = fake_kube.get("jobs", NS, name)
    assert first is not None
    fake_kube.finish_job(NS, name, succeeded=succeeded)  # then it lives on for its TTL
    await eventually(lambda: len(sink.ended) == 1)
    await d.dispatch(request(U1, "bkjat_second_dispatch"))  # the job came back; reserved again
    job = fake_kube.get("jobs", NS, name)
    assert job is not None
    assert job["metadata"]["uid"] != first["metadata"]["uid"]  # replaced, not adopted
    assert "conditions" not in (job.get("status") or {})
    assert fake_kube.secret_value(NS, secret_name(d.config, U1), "token") == "bkjat_second_dispatch"
    pods = [p for p in fake_kube.items("pods")
            if p["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]]  # fmt: skip
    assert len(pods) == 1  # the new Job runs a pod: an agent gets its chance
    assert len(sink.ended) == 1  # nothing reported for the new dispatch yet
    fake_kube.finish_job(NS, name, succeeded=True)
    await eventually(lambda: len(sink.ended) == 2)
    assert sink.ended[1].succeeded
    await d.shutdown(0)


async def test_a_relist_answered_after_a_create_does_not_declare_the_new_job_deleted(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    d = dispatcher(fake_kube, tmp_path)
    sink = RecordingSink()
    await d.start(sink)
    release = fake_kube.hold_lists("jobs")
    fake_kube.compact()  # the watch's version is now too old: it must list again (410)
    fake_kube.drop_watches()
    await eventually(fake_kube.list_held.is_set)  # that list's snapshot is taken
    await d.dispatch(request(U1))  # created after the snapshot, before the list is handled
    release.set()
    name = job_name(d.config, U1)
    fake_kube.finish_job(NS, name, succeeded=True)  # what the watch from the list sees later
    await eventually(lambda: len(sink.ended) == 1)
    assert sink.ended[0].error is None, sink.ended[0].error
    assert sink.ended[0].succeeded
    await d.shutdown(0)


async def test_a_burst_creates_each_jobs_secret_before_its_pod_can_start(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    d = dispatcher(fake_kube, tmp_path, api_qps=200.0, api_burst=5, create_concurrency=4)
    await d.start(RecordingSink())
    uuids = [f"0190cccc-0000-4000-8000-{i:012d}" for i in range(40)]
    await asyncio.gather(*(d.dispatch(request(u)) for u in uuids))
    order = [(kind, plural, obj["metadata"]["name"]) for _, plural, _, kind, obj
             in fake_kube.history if plural in ("jobs", "secrets", "pods")]  # fmt: skip
    born = {(p, n): i for i, (kind, p, n) in enumerate(order) if kind == "ADDED"}
    for uuid in uuids:
        job, secret = job_name(d.config, uuid), secret_name(d.config, uuid)
        pod = next(n for (p, n) in born if p == "pods" and n.startswith(f"{job}-"))
        assert born[("secrets", secret)] < born[("pods", pod)]  # never a pod without its Secret
        # Created together: few other jobs' objects come between this job's first and last.
        between = [o for o in order[born[("jobs", job)]:born[("pods", pod)]]
                   if o[0] == "ADDED" and not o[2].startswith(job)]  # fmt: skip
        assert len(between) <= 3 * 4, (uuid, len(between))
    open_, most = set(), 0  # jobs created but not yet released: the slots in use
    for kind, plural, name in order:
        if kind == "ADDED" and plural == "jobs":
            open_.add(name)
        elif kind == "ADDED" and plural == "pods":
            open_.discard(name.rsplit("-", 1)[0])
        most = max(most, len(open_))
    assert most == 4  # create_concurrency: bounded, and used
    assert len(fake_kube.items("pods")) == len(uuids)
    await d.shutdown(0)


async def test_a_cancel_during_a_create_retry_leaves_nothing_behind(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    d = dispatcher(fake_kube, tmp_path, api_retries=5)
    sink = RecordingSink()
    await d.start(sink)
    fake_kube.fail("POST", "jobs", 503, times=2)
    dispatching = asyncio.create_task(d.dispatch(request(U1)))
    await eventually(lambda: fake_kube.count("POST", "jobs") >= 1)  # failed once, retrying
    await d.cancel(U1, "the job was canceled")
    await dispatching  # no error: the work was cancelled, not impossible
    await eventually(lambda: len(sink.ended) == 1)
    assert sink.ended[0].job_uuid == U1
    assert not sink.ended[0].succeeded
    assert fake_kube.items("jobs") == []
    assert fake_kube.items("secrets") == []
    assert fake_kube.items("pods") == []
    await d.shutdown(0)


@pytest.mark.parametrize(
    ("version", "setting", "native"),
    [((1, 28), "auto", False), ((1, 29), "auto", True), ((1, 31), False, False)],
    ids=["old-cluster", "native-sidecars", "native-turned-off"],
)
async def test_a_jobs_end_is_its_agents_end_even_with_a_sidecar(
    stacks_emulator: EmulatorServer,
    async_stacks_client: AsyncClient,
    fake_kube: FakeKube,
    tmp_path: Path,
    version: tuple[int, int],
    setting: object,
    native: bool,
) -> None:
    em = stacks_emulator.emulator
    fake_kube.server_version = version
    fake_kube.kubelet = AgentKubelet(linger=True)  # an ordinary sidecar runs until stopped
    template = "containers:\n- name: cache\n  image: redis:7\n"
    endpoint = agent_endpoint(stacks_emulator)
    d = dispatcher(fake_kube, tmp_path, agent_env=endpoint, pod_template=template,
                   native_sidecars=setting)  # fmt: skip
    uuid = em.create_job()
    run = Run(async_stacks_client, stack_config(), d)
    name = job_name(d.config, uuid)
    await run.until(lambda: fake_kube.get("jobs", NS, name) is not None)
    spec = fake_kube.get("jobs", NS, name)["spec"]["template"]["spec"]  # type: ignore[index]
    sidecars = [c["name"] for c in spec.get("initContainers", [])
                if c.get("restartPolicy") == "Always"]  # fmt: skip
    assert sidecars == (["cache"] if native else [])
    await run.until(lambda: em.job_state(uuid) == "finished")
    await run.until(lambda: not run.stack.in_flight)  # capacity freed once the agent is done
    assert (await run.stop()).ok
    assert em.job(uuid).exit_status == 0
    if native:  # the pod ended by itself: the Job completed
        job = fake_kube.get("jobs", NS, name)
        assert job is not None
        assert job["status"]["conditions"][0]["type"] == "Complete"
    else:  # the dispatcher ended the Job: nothing keeps running
        assert fake_kube.get("jobs", NS, name) is None
        assert fake_kube.items("pods") == []


async def test_a_fresh_token_reaches_a_pod_whose_agent_has_not_started(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    d = dispatcher(fake_kube, tmp_path)
    await d.start(RecordingSink())
    await d.dispatch(request(U1, "bkjat_first_token"))
    pod = fake_kube.items("pods")[0]
    await eventually(lambda: d._tracked[U1].pod is not None)  # the watch has seen the pod
    assert await d.refresh_token(U1, Secret("bkjat_fresh_token"))
    secret = secret_name(d.config, U1)
    assert fake_kube.secret_value(NS, secret, "token") == "bkjat_fresh_token"
    agent = next(c for c in pod["spec"]["containers"] if c["name"] == "agent")
    running = container_status(agent, {"running": {"startedAt": now_iso()}})
    fake_kube.update_pod(NS, pod["metadata"]["name"],
                         {"phase": "Running", "containerStatuses": [running]})  # fmt: skip
    await eventually(lambda: d._tracked[U1].running)
    assert not await d.refresh_token(U1, Secret("bkjat_too_late"))  # it read its token already
    assert fake_kube.secret_value(NS, secret, "token") == "bkjat_fresh_token"
    assert not await d.refresh_token("0190bbbb-0000-4000-8000-00000000dead", Secret("bkjat_x"))
    await d.shutdown(0)


async def test_a_declared_native_sidecar_is_made_ordinary_on_an_older_cluster(
    fake_kube: FakeKube, tmp_path: Path
) -> None:
    fake_kube.server_version = (1, 28)
    template = ("initContainers:\n- name: clone\n  image: git\n"
                "- name: proxy\n  image: envoy\n  restartPolicy: Always\n")  # fmt: skip
    d = dispatcher(fake_kube, tmp_path, pod_template=template)
    await d.start(RecordingSink())
    await d.dispatch(request(U1))
    spec = fake_kube.get("jobs", NS, job_name(d.config, U1))["spec"]["template"]["spec"]  # type: ignore[index]
    # The template's init container stays one (after the stack's own copy-agent); the declared
    # native sidecar becomes an ordinary container beside the job's.
    inits = [c["name"] for c in spec["initContainers"]]
    assert "clone" in inits
    assert "proxy" not in inits
    (proxy,) = (c for c in spec["containers"] if c["name"] == "proxy")
    assert "restartPolicy" not in proxy
    assert "agent" in [c["name"] for c in spec["containers"]]
    await d.shutdown(0)
