"""Golden pods for a catalogue of agent-stack-k8s steps, each validated strictly.

Every rendered Job is compared with ``golden/pods/<step>.yaml`` (regenerate after an intended
change with ``STACKSAPI_UPDATE_GOLDEN=1``), validated against the Kubernetes schemas with
unknown fields forbidden, and checked for what its step asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version
from lightkube.resources.batch_v1 import Job as KubeJob

from stacksapi.kubernetes import render_secret
from stacksapi.kubernetes._containers import is_sidecar
from stacksapi.kubernetes._manifest import dispatch_job
from stacksapi.stack import DispatchError

from .catalogue import (
    MALFORMED,
    STEPS,
    TOKEN,
    Step_,
    config_for,
    containers,
    env_of,
    render,
    request_for,
    validate,
)

GOLDEN = Path(__file__).parent / "golden" / "pods"


def check_golden(name: str, manifest: dict[str, Any]) -> None:
    text = yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False)
    path = GOLDEN / f"{name}.yaml"
    if os.environ.get("STACKSAPI_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; STACKSAPI_UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize("name", sorted(STEPS))
def test_golden_pod(name: str) -> None:
    manifest = render(STEPS[name])
    validate(manifest)
    assert KubeJob.from_dict(manifest).to_dict() == manifest  # nothing lost in the typed model
    assert TOKEN not in json.dumps(manifest)
    check_golden(name, manifest)


def test_every_golden_file_has_a_step() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(STEPS)


def test_a_step_without_the_plugin_gets_command_agent_and_checkout_containers() -> None:
    manifest = render(STEPS["no-plugin"])
    spec = manifest["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["container-0", "agent", "checkout"]
    assert [c["name"] for c in spec["initContainers"]] == ["copy-agent"]
    command = containers(manifest)["container-0"]
    assert command["command"] == ["/workspace/tini-static"]
    assert env_of(command)["BUILDKITE_COMMAND"] == "make test"
    agent = env_of(containers(manifest)["agent"])
    assert agent["BUILDKITE_AGENT_ACQUIRE_JOB"] == "0190f1e2-3c4d-7e5f-8a9b-0c1d2e3f4a5b"
    assert agent["BUILDKITE_AGENT_TOKEN"]["secretKeyRef"]["key"] == "token"
    assert agent["BUILDKITE_CONTAINER_COUNT"] == "2"
    assert spec["restartPolicy"] == "Never"
    annotations = manifest["metadata"]["annotations"]
    assert annotations["buildkite.com/job-url"].endswith("/builds/1234#" + agent[
        "BUILDKITE_AGENT_ACQUIRE_JOB"])  # fmt: skip
    assert manifest["metadata"]["labels"]["tag.buildkite.com/queue"] == "kubernetes"


def test_the_step_image_runs_the_command_and_gets_an_image_check() -> None:
    manifest = render(STEPS["per-step-image"])
    assert containers(manifest)["container-0"]["image"] == "golang:1.23"
    assert containers(manifest)["agent"]["image"] == "buildkite/agent:3.80"
    checks = containers(manifest, "initContainers")
    assert checks["imagecheck-0"]["image"] == "golang:1.23"
    assert checks["imagecheck-0"]["args"] == ["--version"]


def test_each_podspec_container_runs_its_command_through_the_agent() -> None:
    manifest = render(STEPS["podspec-two-containers"])
    by_name = containers(manifest)
    assert list(by_name) == ["unit", "container-1", "agent", "checkout"]
    assert env_of(by_name["unit"])["BUILDKITE_COMMAND"] == "go test ./..."
    assert env_of(by_name["container-1"])["BUILDKITE_COMMAND"] == "golangci-lint run --timeout 5m"
    assert [env_of(c)["BUILDKITE_CONTAINER_ID"] for c in (by_name["unit"],
            by_name["container-1"])] == ["1", "2"]  # fmt: skip
    assert env_of(by_name["agent"])["BUILDKITE_CONTAINER_COUNT"] == "3"
    images = [c["image"] for c in containers(manifest, "initContainers").values()]
    assert images == ["buildkite/agent:3.80", "golang:1.23", "golangci/golangci-lint:v1.61"]


def test_patches_apply_controller_first_then_the_step() -> None:
    manifest = render(STEPS["podspecpatch-resources-env"])
    spec = manifest["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ci-builds"
    command = containers(manifest)["container-0"]
    assert command["image"] == "golang:1.23"
    assert command["resources"]["requests"] == {"cpu": "2", "memory": "4Gi"}
    assert env_of(command)["GOFLAGS"] == "-mod=vendor"  # the step's patch wins
    assert env_of(command)["CI"] == "true"  # merged by name, not replaced
    assert env_of(command)["BUILDKITE_COMMAND"] == "make test"  # untouched
    assert containers(manifest)["agent"]["resources"] == {"requests": {"cpu": "100m"}}


def test_sidecars_are_native_sidecars_with_the_shared_mounts() -> None:
    manifest = render(STEPS["sidecars"])
    init = containers(manifest, "initContainers")
    assert next(iter(init)) == "copy-agent"
    for name in ("sidecar-0", "postgres"):
        assert init[name]["restartPolicy"] == "Always"  # ended by Kubernetes with the job
        mounts = [m["mountPath"] for m in init[name]["volumeMounts"]]
        assert mounts == ["/cache", "/workspace"]
        assert init[name]["envFrom"] == [{"configMapRef": {"name": "sidecar-env"}}]
    annotations = manifest["spec"]["template"]["metadata"]["annotations"]
    assert annotations["buildkite.com/sidecar-0"] == "sidecar-0"
    assert annotations["buildkite.com/sidecar-1"] == "postgres"


def test_extra_volume_mounts_reach_every_job_container() -> None:
    manifest = render(STEPS["extra-volume-mounts"])
    for name in ("container-0", "agent", "checkout"):
        mounts = {m["mountPath"]: m["name"] for m in containers(manifest)[name]["volumeMounts"]}
        assert mounts["/root/.npm"] == "npm-cache"
    volumes = [v["name"] for v in manifest["spec"]["template"]["spec"]["volumes"]]
    assert volumes == ["npm-cache", "workspace"]


def test_a_skipped_checkout_has_no_checkout_container() -> None:
    manifest = render(STEPS["skip-checkout"])
    assert list(containers(manifest)) == ["container-0", "agent"]
    assert env_of(containers(manifest)["container-0"])["BUILDKITE_CONTAINER_ID"] == "0"


def test_git_credentials_come_from_a_secret_and_flags_reach_the_agent() -> None:
    manifest = render(STEPS["git-credentials"])
    spec = manifest["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["git-credentials-ro"]["secret"] == {"secretName": "my-git-credentials"}
    assert volumes["git-credentials"]["emptyDir"] == {"medium": "Memory"}
    checkout = containers(manifest)["checkout"]
    assert "credential.helper" in checkout["args"][0]
    assert checkout["envFrom"] == [{"secretRef": {"name": "git-env"}},
                                   {"secretRef": {"name": "git-ssh-key"}}]  # fmt: skip
    agent = env_of(containers(manifest)["agent"])
    assert agent["BUILDKITE_GIT_CLONE_FLAGS"] == "--depth=1"
    assert agent["BUILDKITE_GIT_FETCH_FLAGS"] == "--depth=1"
    assert agent["BUILDKITE_GIT_CLEAN_FLAGS"] == "-ffxdq"


def test_the_resource_class_tag_picks_resources_and_nodes() -> None:
    manifest = render(STEPS["resource-class"])
    spec = manifest["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"node.kubernetes.io/instance-type": "m7i.4xlarge"}
    assert containers(manifest)["container-0"]["resources"]["requests"]["cpu"] == "4"
    assert "resources" not in containers(manifest)["agent"]
    default = render(Step_(config=STEPS["resource-class"].config))  # no tag: the default class
    assert containers(default)["container-0"]["resources"]["requests"]["cpu"] == "500m"
    with pytest.raises(DispatchError, match=r"resource_class: no resource class 'huge'"):
        render(Step_(rules=("resource_class=huge",), config=STEPS["resource-class"].config))


def test_hooks_pull_policies_pull_secrets_and_metadata() -> None:
    manifest = render(STEPS["hooks-pull-policies-secrets"])
    spec = manifest["spec"]["template"]["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert manifest["spec"]["ttlSecondsAfterFinished"] == 300
    agent = containers(manifest)["agent"]
    assert agent["imagePullPolicy"] == "IfNotPresent"
    assert env_of(agent)["BUILDKITE_HOOKS_PATH"] == "/buildkite/hooks"
    for name in ("container-0", "agent", "checkout"):
        mounts = {m["name"]: m["mountPath"] for m in containers(manifest)[name]["volumeMounts"]}
        assert mounts["buildkite-hooks"] == "/buildkite/hooks"
    command = containers(manifest)["container-0"]
    assert env_of(command)["BUILDKITE_COMMAND"] == "npm run 'build && test'"
    assert command["envFrom"] == [{"secretRef": {"name": "npm-token"}}]
    checks = containers(manifest, "initContainers")
    assert checks["imagecheck-0"]["imagePullPolicy"] == "Always"
    labels = manifest["metadata"]["labels"]
    assert (labels["team"], labels["platform"]) == ("web", "ci")
    assert manifest["metadata"]["annotations"]["cost-centre"] == "1234"


def test_a_prohibited_plugin_is_a_stack_error_not_the_controller_spec() -> None:
    step = STEPS["sidecars"]
    with pytest.raises(DispatchError, match="prohibits the kubernetes plugin") as info:
        render(step, **{"prohibit-kubernetes-plugin": True})
    assert "not run" in str(info.value)
    validate(render(STEPS["no-plugin"], **{"prohibit-kubernetes-plugin": True}))  # no plugin


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_plugin_names_the_field(name: str) -> None:
    settings, field = MALFORMED[name]
    with pytest.raises(DispatchError) as info:
        render(Step_(plugin=settings))
    assert field in str(info.value)


def test_a_patched_step_command_becomes_its_buildkite_command() -> None:
    patch = {"podSpecPatch": {"containers": [{"name": "container-0", "command": ["make"],
                                              "args": ["lint", "it's"]}]}}  # fmt: skip
    command = containers(render(Step_(plugin=patch)))["container-0"]
    assert command["command"] == ["/workspace/tini-static"]  # still runs through the agent
    assert env_of(command)["BUILDKITE_COMMAND"] == "make lint 'it'\"'\"'s'"


def test_stack_containers_commands_are_guarded_unless_allowed() -> None:
    patch = {"initContainers": [{"name": "copy-agent", "command": ["true"]}]}
    with pytest.raises(DispatchError, match=r"pod_spec_patch\.initContainers\[0\]\.command"):
        render(Step_(), **{"pod-spec-patch": patch})
    allowed = render(
        Step_(),
        **{"pod-spec-patch": patch, "allow-pod-spec-patch-unsafe-command-modification": True},
    )
    assert containers(allowed, "initContainers")["copy-agent"]["command"] == ["true"]
    checkout = {"containers": [{"name": "checkout", "args": ["git clone"]}]}
    with pytest.raises(DispatchError, match="checkout hook or skip checkout"):
        render(Step_(plugin={"podSpecPatch": checkout}))
    token = {"containers": [{"name": "agent", "env": [{"name": "BUILDKITE_AGENT_TOKEN",
                                                       "value": "stolen"}]}]}  # fmt: skip
    with pytest.raises(DispatchError, match="token and job are set by the stack"):
        render(Step_(plugin={"podSpecPatch": token}))


def test_credentials_in_the_repository_url_stay_out_of_the_annotations() -> None:
    step = Step_(env={"BUILDKITE_REPO": "https://ci:ghp_secret123@github.com/acme/web.git"})
    manifest = render(step)
    assert "ghp_secret123" not in json.dumps(manifest)
    repo = manifest["metadata"]["annotations"]["buildkite.com/build-repo"]
    assert repo == "https://github.com/acme/web.git"


def test_without_image_checks_containers_keep_pulling_their_images() -> None:
    step = STEPS["per-step-image"]
    checked = render(step)
    assert containers(checked)["container-0"]["imagePullPolicy"] == "IfNotPresent"  # pre-pulled
    unchecked = render(step, **{"skip-image-check-containers": True})
    assert list(containers(unchecked, "initContainers")) == ["copy-agent"]
    assert containers(unchecked)["container-0"]["imagePullPolicy"] == "Always"


def test_a_non_root_pod_gets_its_workspace_and_checkout_as_that_user() -> None:
    plugin = {
        "podSpec": {
            "securityContext": {"runAsUser": 1000, "runAsGroup": 2000},
            "containers": [{"image": "node:22", "command": ["npm test"]}],
        }
    }
    manifest = render(Step_(plugin=plugin))
    validate(manifest)
    copy_agent = containers(manifest, "initContainers")["copy-agent"]
    assert "chown -R 1000:2000 /workspace" in copy_agent["args"][1]
    assert copy_agent["securityContext"]["runAsUser"] == 0
    checkout = containers(manifest)["checkout"]
    assert checkout["securityContext"] == {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False}
    script = checkout["args"][0]
    assert "-u 1000" in script
    assert (
        'su buildkite-agent -c "true && buildkite-agent-entrypoint kubernetes-bootstrap"' in script
    )


def test_the_render_benchmark_runs() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "bench_render.py"
    done = subprocess.run([sys.executable, str(bench), "--rounds", "2"], capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(f"{name} " in done.stdout for name in STEPS)
    assert "us per job" in done.stdout


def test_git_mirrors_deadline_and_agent_keys() -> None:
    mirrors = {"volume": {"name": "mirrors", "hostPath": {"path": "/var/mirrors"}},
               "lockTimeout": 300}  # fmt: skip
    config = {
        "default-checkout-params": {"gitMirrors": mirrors},
        "agent-config": {
            "signingJWKSVolume": {"name": "signing", "secret": {"secretName": "jwks"}},
            "signing-jwks-key-id": "ci-key",
            "verificationJWKSVolume": {"name": "verify", "secret": {"secretName": "jwks-pub"}},
            "verification-jwks-file": "public.json",
            "plugin-validation": True,
        },
    }
    manifest = render(Step_(plugin={"jobActiveDeadlineSeconds": 900}, config=config))
    validate(manifest)
    assert manifest["spec"]["activeDeadlineSeconds"] == 900
    volumes = [v["name"] for v in manifest["spec"]["template"]["spec"]["volumes"]]
    assert volumes == ["workspace", "signing", "verify", "mirrors"]
    checkout = {m["name"]: m["mountPath"] for m in containers(manifest)["checkout"]["volumeMounts"]}
    assert checkout["mirrors"] == "/buildkite/git-mirrors"
    agent = containers(manifest)["agent"]
    env = env_of(agent)
    assert env["BUILDKITE_GIT_MIRRORS_PATH"] == "/buildkite/git-mirrors"
    assert env["BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT"] == "300"
    assert env["BUILDKITE_AGENT_SIGNING_JWKS_FILE"] == "/buildkite/signing-jwks/key"
    assert env["BUILDKITE_AGENT_SIGNING_JWKS_KEY_ID"] == "ci-key"
    assert (
        env["BUILDKITE_AGENT_VERIFICATION_JWKS_FILE"] == "/buildkite/verification-jwks/public.json"
    )
    assert env["BUILDKITE_NO_PLUGIN_VALIDATION"] == "false"
    assert "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR" not in env
    mounts = {m["name"]: m["mountPath"] for m in agent["volumeMounts"]}
    assert mounts["verify"] == "/buildkite/verification-jwks"
    command = {m["name"] for m in containers(manifest)["container-0"]["volumeMounts"]}
    assert "signing" in command  # pipeline upload signs in the command container
    plain = env_of(containers(render(Step_(config={"agent-config": {"no-pty": True}})))["agent"])
    assert plain["BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR"] == "warn"
    assert plain["BUILDKITE_NO_PTY"] == "true"


def test_only_containers_beside_the_job_are_sidecars() -> None:
    cfg = {"pod-spec-patch": {"containers": [{"name": "dind", "image": "docker:27-dind"}]}}
    manifest = render(Step_(config=cfg))
    regular = manifest["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in regular if is_sidecar(c, "agent")] == ["dind"]


@pytest.mark.parametrize("name", sorted(STEPS))
@pytest.mark.parametrize(("native", "version"), [(False, "1.25"), (True, "1.29"), (True, None)])
def test_what_a_dispatch_sends_validates_on_every_supported_version(
    name: str, native: bool, version: str | None
) -> None:
    """Ordinary sidecars for the oldest supported cluster, native ones from 1.29 to the newest."""
    step = STEPS[name]
    request, details = request_for(step)
    config = config_for(step)
    job = dispatch_job(config, request, "ci", details, native_sidecars=native, dispatch_id="d")
    where = version or latest_version()
    for obj in (job, render_secret(config, request, "ci")):
        kubernetes_validate.validate(obj, where, strict=True)
    spec = job["spec"]["template"]["spec"]
    natives = [c for c in spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    assert bool(natives) == (native and bool(step.plugin and step.plugin.get("sidecars")))
