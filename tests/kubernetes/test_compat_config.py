"""agent-stack-k8s's controller settings in the ``[kubernetes]`` table: names, shapes, errors."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacksapi import Job
from stacksapi.kubernetes import KubernetesConfig, render_job, split_controller_config
from stacksapi.kubernetes._compat import go_duration
from stacksapi.stack import ConfigError, StackConfig
from stacksapi.stack._rules import serves_job

from .catalogue import Step_, request_for, validate

# the config: map of an agent-stack-k8s values.yaml, as a TOML [kubernetes] table
VALUES = """
[kubernetes]
namespace = "buildkite"
image = "ghcr.io/buildkite/agent:3.90.0"
job-prefix = "bk-"
job-ttl = "10m"
job-active-deadline-seconds = 7200
image-pull-backoff-grace-period = "30s"
pod-pending-timeout = "15m"
k8s-client-rate-limiter-qps = 20
k8s-client-rate-limiter-burst = 40
default-image-pull-policy = "IfNotPresent"
default-image-check-pull-policy = "Always"
skip-image-check-containers = false
image-check-container-cpu-limit = "300m"
image-check-container-memory-limit = "256Mi"
default-termination-grace-period-seconds = 90
prohibit-kubernetes-plugin = false
allow-pod-spec-patch-unsafe-command-modification = false
default-resource-class-name = "small"
additional-redacted-vars = ["*_API_KEY"]

[kubernetes.pod-spec-patch]
serviceAccountName = "buildkite-jobs"
[[kubernetes.pod-spec-patch.containers]]
name = "agent"
resources = { requests = { cpu = "250m" } }

[kubernetes.default-checkout-params]
cloneFlags = "--depth=1"
gitCredentialsSecret = { secretName = "git-creds" }

[kubernetes.default-command-params]
interposer = "vector"

[kubernetes.default-sidecar-params]
envFrom = [{ secretRef = { name = "sidecar-env" } }]

[kubernetes.default-metadata]
labels = { team = "platform" }

[kubernetes.agent-config]
endpoint = "https://agent.buildkite.com/v3"
hooks-path = "/buildkite/hooks"
hooksVolume = { name = "buildkite-hooks", configMap = { name = "agent-hooks" } }
no-command-eval = true

[kubernetes.resource-classes.small]
resource = { requests = { cpu = "500m", memory = "1Gi" } }
[kubernetes.resource-classes.large]
resource = { requests = { cpu = "4", memory = "16Gi" } }
nodeSelector = { "node.kubernetes.io/instance-type" = "m7i.4xlarge" }

[kubernetes.workspace-volume]
name = "workspace"
ephemeral = { volumeClaimTemplate = { spec = { accessModes = ["ReadWriteOnce"], resources = { requests = { storage = "20Gi" } } } } }
"""  # noqa: E501


def load(extra: dict[str, Any] | None = None) -> KubernetesConfig:
    table = tomllib.loads(VALUES)["kubernetes"]
    return KubernetesConfig.from_mapping({**table, **(extra or {})})


def test_their_names_and_shapes_load_into_ours() -> None:
    cfg = load()
    assert cfg.agent_image == "ghcr.io/buildkite/agent:3.90.0"
    assert cfg.job_name_prefix == "bk-"
    assert cfg.ttl_seconds_after_finished == 600
    assert cfg.active_deadline_seconds == 7200
    assert (cfg.image_pull_grace, cfg.pending_timeout) == (30.0, 900.0)
    assert (cfg.api_qps, cfg.api_burst) == (20, 40)
    assert cfg.default_termination_grace_period_seconds == 90
    assert isinstance(cfg.pod_spec_patch, Mapping)  # YAML text is parsed at load
    assert cfg.pod_spec_patch["serviceAccountName"] == "buildkite-jobs"
    assert cfg.default_checkout_params["cloneFlags"] == "--depth=1"
    assert cfg.agent_config["no-command-eval"] is True
    assert set(cfg.resource_classes) == {"small", "large"}
    assert cfg.workspace_volume is not None
    assert cfg.additional_redacted_vars == ("*_API_KEY",)


def test_go_durations() -> None:
    assert go_duration("k", "1h30m") == 5400
    assert go_duration("k", "500ms") == 0.5
    assert go_duration("k", 12) == 12
    with pytest.raises(ConfigError, match="duration"):
        go_duration("k", "10 minutes")


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ({"max-in-flight": 10}, "kubernetes.max-in-flight", "stack.max_in_flight"),
        ({"queue": "kubernetes"}, "kubernetes.queue", "stack.queue_key"),
        ({"log-level": "debug"}, "kubernetes.log-level", "no equivalent"),
        ({"agent_image": "x:1"}, "kubernetes.agent_image", "same setting as kubernetes.image"),
        ({"job-ttl": "ten minutes"}, "kubernetes.job-ttl", "duration"),
        ({"pod-spec-patch": {"containers": [{"name": "agent", "resource": {}}]}},
         "kubernetes.pod_spec_patch.containers[0].resource", "did you mean 'resources'"),
        ({"default-checkout-params": {"skip": "yes"}},
         "kubernetes.default_checkout_params.skip", "boolean"),
        ({"default-command-params": {"interposer": "shell"}},
         "kubernetes.default_command_params.interposer", "buildkite, vector, legacy"),
        ({"agent-config": {"hooks-volume": {}}}, "kubernetes.agent_config.hooks-volume",
         "did you mean 'hooksVolume'"),
        ({"resource-classes": {"big": {"resource": {"requests": {"cpu": "lots"}}}}},
         "kubernetes.resource_classes.big.resource.requests.cpu", "quantity"),
        ({"default-resource-class-name": "medium"}, "kubernetes.default_resource_class_name",
         "no resource class 'medium'"),
        ({"default-image-pull-policy": "Sometimes"}, "kubernetes.default_image_pull_policy",
         "Always"),
        ({"image-check-container-cpu-limit": "fast"},
         "kubernetes.image_check_container_cpu_limit", "quantity"),
        ({"workspace-volume": {"emptyDir": {}}}, "kubernetes.workspace_volume.name", "required"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(extra: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(extra)
    assert info.value.key == key
    assert words in str(info.value)


def test_pod_spec_patch_may_be_yaml_text() -> None:
    cfg = KubernetesConfig(pod_spec_patch="nodeSelector: {pool: ci}\n")
    assert cfg.pod_spec_patch == {"nodeSelector": {"pool": "ci"}}


def test_a_values_config_map_splits_into_stack_and_kubernetes_tables() -> None:
    values = {"tags": ["queue=ci", "os=linux"], "max-in-flight": 20, "poll-interval": "2s",
              "id": "linux-k8s", "log-level": "debug", "image": "buildkite/agent:3",
              "resource-classes": {"large": {"nodeSelector": {"pool": "big"}}}}  # fmt: skip
    stack, table = split_controller_config(values)
    assert stack == {"queue_key": "ci", "tags": {"resource_class": "*", "os": "linux"},
                     "max_in_flight": 20, "poll_interval": 2.0, "key": "linux-k8s"}  # fmt: skip
    assert table == {"image": "buildkite/agent:3", "resource-classes": values["resource-classes"]}
    assert StackConfig(**stack).queue_key == "ci"
    assert KubernetesConfig.from_mapping(table).agent_image == "buildkite/agent:3"


def test_the_migration_example_in_the_docs_renders() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
    blocks = re.findall(r"```(\w+)\n(.*?)```", doc, flags=re.S)
    toml_text = next(b for lang, b in blocks if lang == "toml" and 'job-ttl = "10m"' in b)
    yaml_text = next(b for lang, b in blocks if lang == "yaml" and "podSpec:" in b)
    tables = tomllib.loads(toml_text)
    stack = StackConfig(**tables["stack"])
    kube = KubernetesConfig.from_mapping(tables["kubernetes"])
    step = yaml.safe_load(yaml_text)["steps"][0]
    rules = tuple(f"{k}={v}" for k, v in step["agents"].items())
    assert serves_job(rules, stack.tags, stack.queue_key)  # the stack takes the job
    plugins = [{f"github.com/buildkite-plugins/{name}-buildkite-plugin": settings}
               for p in step["plugins"] for name, settings in p.items()]  # fmt: skip
    request, details = request_for(Step_(rules=rules))
    details = Job(id=details.id, env={"BUILDKITE_PLUGINS": json.dumps(plugins)},
                  command="go test ./...")  # fmt: skip
    manifest = render_job(kube, request, "ci", details)
    validate(manifest)
    spec = manifest["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "buildkite-jobs"
    assert spec["containers"][0]["image"] == "golang:1.23"
    assert spec["containers"][0]["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
