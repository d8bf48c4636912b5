"""Against a real cluster: runs only when ``KUBECONFIG`` is set (skipped with the reason otherwise).

It proves the dispatcher end to end on a user's cluster without Buildkite: a Job whose "agent"
is a busybox shell that checks it got the job uuid and a token from the Secret, then exits 0
(the stack's ``pod_spec_patch`` strips the pod down to that one container);
and a Job whose image cannot be pulled, which must be torn down with the events quoted.
``STACKSAPI_K8S_TEST_NAMESPACE`` picks the namespace (default ``default``); everything created is
labelled with a fresh stack key and deleted at the end.
"""

from __future__ import annotations

import os
import secrets
import uuid as uuidlib
from pathlib import Path

import pytest
from lightkube.resources.core_v1 import Secret as KubeSecret

from stacksapi.kubernetes import KubernetesConfig, KubernetesDispatcher, job_name, secret_name

from .kube_helpers import RecordingSink, eventually, request

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"),
        reason="KUBECONFIG is not set: set it (and optionally STACKSAPI_K8S_TEST_NAMESPACE) "
        "to run the dispatcher against a real cluster",
    ),
]


def cluster_dispatcher(**changes: object) -> KubernetesDispatcher:
    key = f"stacksapi-test-{secrets.token_hex(4)}"
    values: dict[str, object] = {
        "kubeconfig": os.environ["KUBECONFIG"].split(os.pathsep)[0],
        "namespace": os.environ.get("STACKSAPI_K8S_TEST_NAMESPACE", "default"),
        "agent_image": "busybox:1.36",
        "agent_command": ["sh", "-c", 'test -n "$BUILDKITE_AGENT_ACQUIRE_JOB" && '
                          'test "${BUILDKITE_AGENT_TOKEN#bkjat_}" != "$BUILDKITE_AGENT_TOKEN"'],
        "ttl_seconds_after_finished": 60,
        "check_interval": 1.0,
        "image_pull_grace": 20.0,
        "pending_timeout": 240.0,
        # busybox has no buildkite-agent: keep only the agent container (and a no-op copy-agent)
        "skip_image_check_containers": True,
        "default_checkout_params": {"skip": True},
        "allow_pod_spec_patch_unsafe_command_modification": True,
        "pod_spec_patch": {"initContainers": [{"name": "copy-agent", "command": ["true"],
                                               "args": []}],
                           "containers": [{"name": "container-0", "$patch": "delete"}]},
    }  # fmt: skip
    values.update(changes)
    return KubernetesDispatcher(KubernetesConfig(**values), stack_key=key)  # type: ignore[arg-type]


@pytest.mark.timeout(600)
async def test_a_job_runs_on_the_cluster_and_a_bad_image_is_torn_down(tmp_path: Path) -> None:
    del tmp_path
    good, bad = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    d = cluster_dispatcher()
    sink = RecordingSink()
    assert await d.start(sink) == []
    try:
        await d.dispatch(request(good, key=d.stack_key))
        secret = await d.api.client.get(
            KubeSecret, secret_name(d.config, good), namespace=d.namespace
        )
        assert secret.metadata is not None
        owners = secret.metadata.ownerReferences or []
        assert [o.kind for o in owners] == ["Job"]
        await eventually(lambda: any(e.job_uuid == good for e in sink.ended), limit=300)
        ended = next(e for e in sink.ended if e.job_uuid == good)
        assert ended.succeeded, ended

        broken = cluster_dispatcher(agent_image="registry.invalid/stacksapi/missing:0")
        broken_sink = RecordingSink()
        await broken.start(broken_sink)
        try:
            await broken.dispatch(request(bad, key=broken.stack_key))
            await eventually(lambda: len(broken_sink.ended) == 1, limit=300)
            failure = broken_sink.ended[0]
            assert failure.error is not None
            assert "could not pull image" in failure.error
            assert "registry.invalid/stacksapi/missing:0" in failure.output
        finally:
            await broken.shutdown(0)
    finally:
        await d.api.delete_job(job_name(d.config, good))  # do not wait for the TTL
        await d.shutdown(0)
