"""Sans-IO parts: the stuck-pod verdicts, the event quoting, and the client-side rate limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from lightkube.resources.core_v1 import Event, Pod

from stacksapi.kubernetes import pod_problem
from stacksapi.kubernetes._kube import TokenBucket
from stacksapi.kubernetes._podcheck import describe_events

from .kube_fake import FakeKube
from .kube_helpers import RecordingSink, dispatcher, request


def pod(status: dict[str, Any]) -> Pod:
    return msgspec.convert({"metadata": {"name": "p"}, "spec": {"containers": []},
                            "status": status}, Pod)  # fmt: skip


def waiting(name: str, reason: str, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": reason, "message": message}}
    return {"name": name, "image": f"{name}:1", "imageID": "", "ready": False,
            "restartCount": 0, "state": state}  # fmt: skip


def verdict(p: Pod, seen: dict[str, float], now: float) -> str | None:
    found = pod_problem(p, seen, now, image_pull_grace=10, pending_timeout=100)
    return None if found is None else f"{found.kind}: {found.summary}"


def test_an_image_pull_problem_waits_out_its_grace_then_reports() -> None:
    seen: dict[str, float] = {}
    status = waiting("agent", "ImagePullBackOff", "Back-off pulling")
    stuck = pod({"phase": "Pending", "containerStatuses": [status]})
    assert verdict(stuck, seen, 1000.0) is None
    assert verdict(stuck, seen, 1009.0) is None
    assert verdict(stuck, seen, 1010.0) == (
        "image-pull: container agent could not pull image 'agent:1' for 10s "
        "(ImagePullBackOff: Back-off pulling)"
    )
    recovered = pod({"phase": "Pending", "containerStatuses": []})
    assert verdict(recovered, seen, 1011.0) is None
    assert "waiting:agent" not in seen  # the clock restarts if it comes back


def test_fatal_reasons_and_failed_init_containers_report_at_once() -> None:
    bad_name = pod({"phase": "Pending", "containerStatuses": [waiting("a", "InvalidImageName")]})
    assert (verdict(bad_name, {}, 0.0) or "").startswith("image-pull: container a")
    clone = waiting("clone", "x")
    clone["state"] = {"terminated": {"exitCode": 128, "reason": "Error", "message": "denied\n"}}
    failed_init = pod({"phase": "Pending", "initContainerStatuses": [clone]})
    assert verdict(failed_init, {}, 0.0) == (
        "init-failed: init container clone failed (exit 128, Error): denied"
    )
    config_error = pod({"phase": "Pending", "containerStatuses": [
        waiting("agent", "CreateContainerConfigError", 'secret "x" not found')]})  # fmt: skip
    assert verdict(config_error, {}, 0.0) is None  # the Secret may be a moment late
    assert (verdict(config_error, {"waiting:agent": 0.0}, 10.0) or "").startswith(
        "config: container agent could not start"
    )


def test_pending_past_the_timeout_names_the_scheduling_reason() -> None:
    seen: dict[str, float] = {}
    pending = pod({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/2 nodes are available"}]})  # fmt: skip
    assert verdict(pending, seen, 0.0) is None
    assert verdict(pending, seen, 100.0) == (
        "pending: pod pending for 100s (Unschedulable: 0/2 nodes are available)"
    )
    assert verdict(pod({"phase": "Running"}), seen, 200.0) is None
    assert "pending" not in seen


def test_events_are_quoted_one_line_each_newest_last() -> None:
    events = [
        msgspec.convert({"metadata": {"name": f"e{i}"}, "involvedObject": {"name": "p"},
                         "type": "Warning", "reason": "Failed", "message": f"try\n {i}",
                         "count": i}, Event)
        for i in range(1, 5)
    ]  # fmt: skip
    assert describe_events(events, 2) == "Warning Failed: try 3 (x3)\nWarning Failed: try 4 (x4)"


@pytest.mark.anyio
async def test_the_token_bucket_spaces_requests_beyond_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(4.0, 2, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        await bucket.take()
    assert slept == [0.25, 0.25, 0.25, 0.25]  # 2 at once, then 4 per second
    now[0] += 10  # idle: the bucket refills up to the burst, no further
    for _ in range(3):
        await bucket.take()
    assert slept[4:] == [0.25]


@pytest.mark.anyio
async def test_a_conflicting_secret_update_is_retried(fake_kube: FakeKube, tmp_path: Path) -> None:
    first, second = dispatcher(fake_kube, tmp_path), dispatcher(fake_kube, tmp_path)
    await first.start(RecordingSink())
    await second.start(RecordingSink())
    uuid = "0190aaaa-0000-4000-8000-0000000000c1"
    await first.dispatch(request(uuid, "bkjat_one"))
    fake_kube.fail("PATCH", "secrets", 409, times=1)  # another writer got there first
    await second.dispatch(request(uuid, "bkjat_two"))
    assert fake_kube.count("PATCH", "secrets") == 0  # counted by path: the name, not the kind
    name = fake_kube.items("secrets")[0]["metadata"]["name"]
    assert fake_kube.count("PATCH", name) == 2
    assert fake_kube.secret_value("ci", name, "token") == "bkjat_two"
    for d in (first, second):
        await d.shutdown(0)
