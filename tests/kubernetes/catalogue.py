"""A catalogue of real-world steps written for agent-stack-k8s, and how to render them.

Each entry is a pipeline step (its ``kubernetes`` plugin, its env such as ``BUILDKITE_IMAGE``,
its agent tags) plus the controller settings it runs under. The golden tests render each one;
the end-to-end test runs some of them through the emulator and the fake cluster.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import kubernetes_validate

from stacksapi import Build, Job, Pipeline, ScheduledJob, Secret, Step
from stacksapi.kubernetes import KubernetesConfig, render_job
from stacksapi.stack import DispatchRequest

UUID = "0190f1e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b"
TOKEN = "bkjat_catalogue_token_never_in_the_job"
KUBERNETES_VERSION = "1.33"
PLUGIN_SOURCE = "github.com/buildkite-plugins/kubernetes-buildkite-plugin"


@dataclasses.dataclass(frozen=True)
class Step_:
    """One step of the catalogue."""

    plugin: Mapping[str, Any] | None = None
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rules: tuple[str, ...] = ("queue=kubernetes",)
    command: str = "make test"
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def job_env(self) -> dict[str, str]:
        env = {
            "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/web/builds/1234",
            "BUILDKITE_BRANCH": "main",
            "BUILDKITE_REPO": "git@github.com:acme/web.git",
            "BUILDKITE_PIPELINE_SLUG": "web",
            **self.env,
        }
        if self.plugin is not None:
            plugins = [
                {"github.com/buildkite-plugins/docker-buildkite-plugin#v5.11.0": {}},
                {PLUGIN_SOURCE: self.plugin},
            ]
            env["BUILDKITE_PLUGINS"] = json.dumps(plugins)
        return env


# fmt: off
STEPS: dict[str, Step_] = {
    "no-plugin": Step_(),
    "per-step-image": Step_(env={"BUILDKITE_IMAGE": "golang:1.23"}, command="go test ./..."),
    "podspec-two-containers": Step_(
        plugin={
            "podSpec": {
                "containers": [
                    {"name": "unit", "image": "golang:1.23", "command": ["go test ./..."]},
                    {
                        "image": "golangci/golangci-lint:v1.61",
                        "command": ["golangci-lint run"],
                        "args": ["--timeout", "5m"],
                    },
                ]
            }
        }
    ),
    "podspecpatch-resources-env": Step_(
        plugin={
            "podSpecPatch": {
                "containers": [
                    {
                        "name": "container-0",
                        "resources": {
                            "requests": {"cpu": "2", "memory": "4Gi"},
                            "limits": {"memory": "4Gi"},
                        },
                        "env": [{"name": "GOFLAGS", "value": "-mod=vendor"}],
                    },
                    {"name": "agent", "resources": {"requests": {"cpu": "100m"}}},
                ]
            }
        },
        env={"BUILDKITE_IMAGE": "golang:1.23"},
        config={
            "pod-spec-patch": {
                "serviceAccountName": "ci-builds",
                "containers": [
                    {
                        "name": "container-0",
                        "env": [
                            {"name": "GOFLAGS", "value": "-mod=mod"},
                            {"name": "CI", "value": "true"},
                        ],
                    }
                ],
            }
        },
    ),
    "sidecars": Step_(
        plugin={
            "sidecars": [
                {"image": "redis:7", "ports": [{"containerPort": 6379}]},
                {
                    "name": "postgres",
                    "image": "postgres:16",
                    "env": [{"name": "POSTGRES_PASSWORD", "value": "test"}],
                },
            ],
            "sidecarParams": {"envFrom": [{"configMapRef": {"name": "sidecar-env"}}]},
        },
        config={
            "default-sidecar-params": {
                "extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}]
            },
            "pod-spec-patch": {"volumes": [{"name": "cache", "emptyDir": {}}]},
        },
    ),
    "extra-volume-mounts": Step_(
        plugin={
            "podSpec": {
                "containers": [{"image": "node:22", "command": ["npm ci && npm test"]}],
                "volumes": [
                    {"name": "npm-cache", "persistentVolumeClaim": {"claimName": "npm-cache"}}
                ],
            },
            "extraVolumeMounts": [{"name": "npm-cache", "mountPath": "/root/.npm"}],
        }
    ),
    "skip-checkout": Step_(plugin={"checkout": {"skip": True}}),
    "git-credentials": Step_(
        plugin={
            "checkout": {
                "gitCredentialsSecret": {"secretName": "my-git-credentials"},
                "cloneFlags": "--depth=1",
                "fetchFlags": "--depth=1",
            },
            "gitEnvFrom": [{"secretRef": {"name": "git-ssh-key"}}],
        },
        config={
            "default-checkout-params": {
                "cleanFlags": "-ffxdq",
                "envFrom": [{"secretRef": {"name": "git-env"}}],
            }
        },
    ),
    "resource-class": Step_(
        rules=("queue=kubernetes", "resource_class=large"),
        config={
            "resource-classes": {
                "small": {"resource": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                "large": {
                    "resource": {
                        "requests": {"cpu": "4", "memory": "16Gi"},
                        "limits": {"memory": "16Gi"},
                    },
                    "nodeSelector": {"node.kubernetes.io/instance-type": "m7i.4xlarge"},
                },
            },
            "default-resource-class-name": "small",
        },
    ),
    "hooks-pull-policies-secrets": Step_(
        plugin={
            "metadata": {"labels": {"team": "web"}, "annotations": {"cost-centre": "1234"}},
            "commandParams": {
                "interposer": "vector",
                "envFrom": [{"secretRef": {"name": "npm-token"}}],
            },
            "podSpec": {
                "containers": [
                    {"image": "node:22", "command": ["npm"], "args": ["run", "build && test"]}
                ]
            },
        },
        config={
            "image": "ghcr.io/acme/agent@sha256:" + "ab" * 32,
            "default-image-pull-policy": "IfNotPresent",
            "default-image-check-pull-policy": "Always",
            "agent-config": {
                "hooks-path": "/buildkite/hooks",
                "hooksVolume": {
                    "name": "buildkite-hooks",
                    "configMap": {"name": "agent-hooks", "defaultMode": 493},
                },
            },
            "pod-spec-patch": {"imagePullSecrets": [{"name": "registry-credentials"}]},
            "default-metadata": {"labels": {"platform": "ci"}},
            "job-ttl": "5m",
        },
    ),
}

# a malformed plugin -> the field the stack_error names
MALFORMED: dict[str, tuple[Any, str]] = {
    "misspelt-field": ({"podSpecPatch": {"containers": [{"name": "container-0",
                        "resources": {"limit": {"cpu": "1"}}}]}},
                       "podSpecPatch.containers[0].resources.limit"),
    "wrong-type": ({"podSpec": {"containers": [{"image": 3}]}}, "podSpec.containers[0].image"),
    "bad-quantity": ({"podSpecPatch": {"containers": [{"name": "container-0", "resources":
                      {"requests": {"cpu": "two"}}}]}},
                     "podSpecPatch.containers[0].resources.requests.cpu"),
    "unknown-option": ({"chekout": {"skip": True}}, "chekout"),
    "bad-interposer": ({"commandParams": {"interposer": "fancy"}}, "commandParams.interposer"),
    "not-a-mapping": ({"sidecars": {"image": "redis"}}, "sidecars"),
    "agent-command-patched": ({"podSpecPatch": {"containers": [{"name": "agent",
                               "command": ["sh", "-c", "evil"]}]}},
                              "podSpecPatch.containers[0].command"),
    "bad-image": ({"podSpec": {"containers": [{"image": "Not An Image"}]}},
                  "containers[0].image"),
    "same-name": ({"sidecars": [{"name": "agent", "image": "redis:7"}]},
                  "containers[1].name"),
    "bad-label": ({"metadata": {"labels": {"team": "web app"}}}, "metadata.labels.team"),
    "no-such-volume": ({"extraVolumeMounts": [{"name": "cache", "mountPath": "/cache"}]},
                       "containers[0].volumeMounts[1]"),
}


# fmt: on


def config_for(step: Step_, **changes: Any) -> KubernetesConfig:
    base = {
        "image": "buildkite/agent:3.80",
        "agent_env": {"BUILDKITE_AGENT_ENDPOINT": "https://agent.buildkite.com/v3"},
    }
    return KubernetesConfig.from_mapping({**base, **step.config, **changes})


def request_for(step: Step_, uuid: str = UUID) -> tuple[DispatchRequest, Job]:
    job = ScheduledJob(
        id=uuid,
        priority=3,
        agent_query_rules=step.rules,
        scheduled_at=dt.datetime(2026, 11, 30, 1, 2, 3, tzinfo=dt.UTC),
        pipeline=Pipeline(slug="web", uuid="0190-pipe"),
        build=Build(uuid="0190-build", number=1234, branch="main"),
        step=Step(key="tests"),
    )
    details = Job(id=uuid, env=step.job_env(), command=step.command)
    return DispatchRequest(job, "k8s", "kubernetes", Secret(TOKEN)), details


def render(step: Step_, **changes: Any) -> dict[str, Any]:
    request, details = request_for(step)
    return render_job(config_for(step, **changes), request, "ci", details)


def validate(manifest: Mapping[str, Any]) -> None:
    """Strict validation against the Kubernetes schemas (unknown fields are errors)."""
    kubernetes_validate.validate(dict(manifest), KUBERNETES_VERSION, strict=True)


def containers(manifest: Mapping[str, Any], key: str = "containers") -> dict[str, Any]:
    return {c["name"]: c for c in manifest["spec"]["template"]["spec"].get(key, [])}


def env_of(container: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
