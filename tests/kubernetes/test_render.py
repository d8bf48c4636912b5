"""Rendering: golden Job and Secret, typed-model round trips, names and labels, config errors.

Regenerate the golden files after an intended change with ``STACKSAPI_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Secret as KubeSecret

from stacksapi import Build, Pipeline, ScheduledJob, Secret, Step
from stacksapi.kubernetes import (
    KubernetesConfig,
    job_name,
    render_job,
    render_secret,
    secret_name,
    stack_selector,
)
from stacksapi.kubernetes._render import label_value, owner_reference
from stacksapi.stack import ConfigError, DispatchRequest

from .catalogue import validate

GOLDEN = Path(__file__).parent / "golden"
UUID = "0190f1e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b"
TOKEN = "bkjat_golden_token_never_in_the_job"

TEMPLATE = """
metadata:
  labels: {team: ci}
  annotations: {cluster-autoscaler.kubernetes.io/safe-to-evict: "false"}
spec:
  serviceAccountName: buildkite-jobs
  nodeSelector: {kubernetes.io/arch: amd64}
  tolerations: [{key: ci, operator: Exists, effect: NoSchedule}]
  initContainers:
  - {name: clone, image: "alpine/git:2.45", command: [git, --version]}
  containers:
  - name: agent
    resources: {requests: {cpu: "1", memory: 2Gi}}
    env: [{name: BUILDKITE_AGENT_TOKEN, value: leaked-by-mistake}, {name: KEEP, value: "1"}]
  - {name: docker, image: "docker:27-dind", securityContext: {privileged: true}}
"""


def config(**changes: Any) -> KubernetesConfig:
    values: dict[str, Any] = {
        "pod_template": TEMPLATE,
        "agent_image": "buildkite/agent:3.80",
        "agent_env": {"BUILDKITE_AGENT_ENDPOINT": "https://agent.buildkite.com/v3"},
        "labels": {"environment": "prod"},
        "annotations": {"owner": "platform"},
        "ttl_seconds_after_finished": 300,
        "active_deadline_seconds": 7200,
    }
    values.update(changes)
    return KubernetesConfig(**values)


def dispatch_request(token: str | None = TOKEN) -> DispatchRequest:
    job = ScheduledJob(
        id=UUID,
        priority=3,
        scheduled_at=dt.datetime(2026, 11, 30, 1, 2, 3, tzinfo=dt.UTC),
        pipeline=Pipeline(slug="web-app", uuid="0190-pipe"),
        build=Build(uuid="0190-build", number=1234, branch="main"),
        step=Step(key="tests"),
    )
    return DispatchRequest(
        job, "linux-k8s", "builders", Secret(token) if token else None, {"BUILDKITE_X": "1"}
    )


def check_golden(name: str, manifest: dict[str, Any]) -> None:
    text = yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False)
    path = GOLDEN / name
    if os.environ.get("STACKSAPI_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; STACKSAPI_UPDATE_GOLDEN=1 to accept"


def test_golden_job() -> None:
    manifest = render_job(config(), dispatch_request(), "ci")
    validate(manifest)
    check_golden("job.yaml", manifest)
    assert TOKEN not in json.dumps(manifest)
    assert "leaked-by-mistake" not in json.dumps(manifest)  # the template cannot set the token


def test_golden_secret() -> None:
    owner = owner_reference(job_name(config(), UUID), "5b1f7c2e-job-uid")
    manifest = render_secret(config(), dispatch_request(), "ci", owner)
    validate(manifest)
    check_golden("secret.yaml", manifest)
    assert base64.b64decode(manifest["data"]["token"]).decode() == TOKEN


def test_rendered_objects_load_into_the_typed_models_unchanged() -> None:
    job = render_job(config(), dispatch_request(), "ci")
    typed = Job.from_dict(job)
    assert isinstance(typed, Job)
    assert typed.to_dict() == job  # no field dropped or renamed on the way
    assert typed.spec is not None
    assert typed.spec.template.spec is not None
    assert typed.spec.template.spec.restartPolicy == "Never"
    secret = render_secret(config(), dispatch_request(), "ci")
    assert KubeSecret.from_dict(secret).to_dict() == secret


def test_the_template_patches_the_pod_and_completes_the_agent_container() -> None:
    cfg = KubernetesConfig(pod_template="containers: [{name: build, image: 'golang:1.23'}]")
    spec = render_job(cfg, dispatch_request(), "ci")["spec"]["template"]["spec"]
    names = [c["name"] for c in spec["containers"]]
    assert names == ["container-0", "agent", "checkout", "build"]
    agent = spec["containers"][1]
    assert agent["image"] == "buildkite/agent:3"
    assert agent["command"] == ["buildkite-agent", "start"]
    env = {e["name"]: e for e in agent["env"]}
    assert env["BUILDKITE_AGENT_ACQUIRE_JOB"]["value"] == UUID
    assert env["BUILDKITE_AGENT_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": secret_name(cfg, UUID),
        "key": "token",
    }
    bare = render_job(KubernetesConfig(), dispatch_request(), "ci")["spec"]["template"]["spec"]
    assert [c["name"] for c in bare["containers"]] == ["container-0", "agent", "checkout"]


def test_names_and_labels_are_valid_and_deterministic() -> None:
    cfg = KubernetesConfig()
    assert job_name(cfg, UUID) == f"buildkite-{UUID}"
    assert job_name(cfg, UUID) == job_name(KubernetesConfig(), UUID)
    odd = job_name(cfg, "Weird_ID/With:Chars" * 5)
    assert len(odd) <= 52
    assert odd.replace("-", "").isalnum()
    assert odd.islower()
    assert job_name(cfg, "A") != job_name(cfg, "a")  # changed names carry a hash
    long_key = "k" * 80
    value = label_value(long_key)
    assert len(value) <= 63
    assert value != label_value("k" * 79)
    assert stack_selector("linux-k8s") == {
        "app.kubernetes.io/managed-by": "stacksapi",
        "stacksapi/stack-key": "linux-k8s",
    }
    assert label_value("-x-") != "-x-"
    assert label_value("web-app") == "web-app"


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"namespace": "Bad_NS"}, "kubernetes.namespace", "DNS label"),
        ({"pod_template": "a: [b"}, "kubernetes.pod_template", "not valid YAML"),
        ({"pod_template": "containers: 3"}, "kubernetes.pod_template", "not a valid pod template"),
        ({"pod_template": "- a\n- b"}, "kubernetes.pod_template", "must be a mapping"),
        ({"pod_template_file": "/nonexistent/t.yaml"}, "kubernetes.pod_template_file", "cannot"),
        ({"agent_env": {"BUILDKITE_AGENT_TOKEN": "x"}},
         "kubernetes.agent_env.BUILDKITE_AGENT_TOKEN", "set by the dispatcher"),
        ({"agent_command": "buildkite-agent start"}, "kubernetes.agent_command", "list"),
        ({"job_name_prefix": "UPPER-"}, "kubernetes.job_name_prefix", "[a-z0-9-]"),
        ({"pending_timeout": 0}, "kubernetes.pending_timeout", "from 0.1"),
        ({"api_qps": float("nan")}, "kubernetes.api_qps", "number"),
        ({"ttl_seconds_after_finished": True}, "kubernetes.ttl_seconds_after_finished", "integer"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(changes: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        KubernetesConfig(**changes)
    assert info.value.key == key
    assert words in str(info.value)


def test_unknown_keys_get_a_hint_and_template_files_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kubernetes\.namespce: unknown key; did you mean"):
        KubernetesConfig.from_mapping({"namespce": "ci"})
    path = tmp_path / "pod.yaml"
    path.write_text("containers: [{name: build, image: 'golang:1.23'}]\n")
    cfg = KubernetesConfig.from_mapping({"pod_template_file": str(path)})
    assert cfg.template()["spec"]["containers"][0]["name"] == "build"
