"""The Helm chart: lint, render over several value sets, validate every object strictly.

Each value set under ``charts/stacksapi/ci/`` (and the defaults) is rendered with ``helm
template`` and every object is validated by ``kubernetes-validate`` in strict mode (unknown
fields fail) for the oldest Kubernetes version the chart supports and the newest the package
ships. The PodMonitor is a custom resource with no schema there; its shape is checked directly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import Version, all_versions

from stacksapi.kubernetes import split_controller_config
from stacksapi.stack import StackConfig

from .chart_helpers import (
    CHART,
    ROOT,
    VALUE_SETS,
    env_of,
    expand_env,
    merged_values,
    one,
    render,
    run_helm,
    template_args,
)

SETS = list(VALUE_SETS.items())
SET_IDS = list(VALUE_SETS)


def kube_versions() -> list[str]:
    """The oldest shipped version the chart supports (Chart.yaml kubeVersion) and the newest."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    floor = Version(chart["kubeVersion"].removeprefix(">=").removesuffix("-0"))
    shipped = [v for v in all_versions() if Version(v) >= floor]
    assert shipped, f"kubernetes-validate ships no version >= {floor}"
    return sorted({shipped[0], shipped[-1]}, key=Version)


KUBE_VERSIONS = kube_versions()


def test_the_validated_versions_span_what_the_chart_supports() -> None:
    assert KUBE_VERSIONS[0] == "1.25.0"
    assert Version(KUBE_VERSIONS[-1]) >= Version("1.37.0")


@pytest.mark.parametrize(("name", "values"), SETS, ids=SET_IDS)
def test_helm_lint_is_clean_in_strict_mode(helm: Path, name: str, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)] + (["-f", str(values)] if values else [])
    done = run_helm(helm, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize(("name", "values"), SETS, ids=SET_IDS)
def test_every_rendered_object_validates_strictly(
    helm: Path, name: str, values: Path | None, version: str
) -> None:
    objects = render(helm, values)
    kinds = sorted(o["kind"] for o in objects)
    assert {"ConfigMap", "Service", "StatefulSet"} <= set(kinds)
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            check_podmonitor(obj, objects)
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} on {version}: {where}: {exc}")


def check_podmonitor(monitor: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """The PodMonitor selects the controller pods and scrapes their named metrics port."""
    assert monitor["kind"] == "PodMonitor"
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    pod = one(objects, "StatefulSet")["spec"]["template"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize(("name", "values"), SETS, ids=SET_IDS)
def test_stack_toml_is_the_config_value_verbatim(
    helm: Path, name: str, values: Path | None
) -> None:
    """Every key of ``config`` reaches the file, unknown ones included, integers as integers.

    agent-stack-k8s settings given flat under ``config`` are sorted into the two tables exactly
    as ``split_controller_config`` sorts them.
    """
    configmap = one(render(helm, values), "ConfigMap")
    parsed = tomllib.loads(configmap["data"]["stack.toml"])
    config = merged_values(values)["config"]
    flat = {k: v for k, v in config.items() if k not in ("stack", "kubernetes")}
    stack_part, table = split_controller_config(flat)
    tags = {**config["stack"].get("tags", {}), **stack_part.get("tags", {})}
    expected = {"stack": {**config["stack"], **stack_part, **({"tags": tags} if tags else {})},
                "kubernetes": {**config["kubernetes"], **table}}  # fmt: skip
    assert parsed == expected
    stack = StackConfig.from_mapping(parsed)  # what the runtime loads at start
    assert type(parsed["stack"].get("max_in_flight", 1)) is int
    assert stack.dispatcher == "stacksapi.kubernetes:dispatcher"


def test_the_default_config_builds_the_kubernetes_dispatcher(helm: Path) -> None:
    from stacksapi.kubernetes import KubernetesDispatcher
    from stacksapi.stack._entry import load_dispatcher

    parsed = tomllib.loads(one(render(helm), "ConfigMap")["data"]["stack.toml"])
    config = StackConfig.from_mapping(parsed)
    assert config.dispatcher is not None
    built = load_dispatcher(config.dispatcher, config, key="stack.dispatcher")
    assert isinstance(built, KubernetesDispatcher)
    assert built.config.template()["spec"]["containers"][0]["name"] == "agent"
    assert config.max_in_flight == 20


def test_each_replica_gets_its_own_stable_key_from_its_pod_name(helm: Path) -> None:
    objects = render(helm, sets=["replicas=5"], release="ci")
    sts = one(objects, "StatefulSet")
    assert sts["spec"]["replicas"] == 5
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate"}
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    keys = []
    for ordinal in range(5):
        pod = f"{sts['metadata']['name']}-{ordinal}"  # the StatefulSet's pod names
        resolved = expand_env(env, pod)
        config = StackConfig(key="placeholder").with_env(resolved)
        keys.append(config.key)
    assert keys == [f"kubernetes-ci-stacksapi-{i}" for i in range(5)]
    # Stable: the same pod name always gives the same key (a restarted replica keeps it).
    assert expand_env(env, "ci-stacksapi-3") == expand_env(env, "ci-stacksapi-3")


def test_probes_and_metrics_are_wired_into_the_pod(helm: Path) -> None:
    objects = render(helm)
    pod = one(objects, "StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    env = env_of(container)
    assert env["STACKSAPI_STACK_METRICS_HOST"] == "0.0.0.0"  # all interfaces in the pod
    assert env["STACKSAPI_STACK_METRICS_PORT"] == "9090"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert not [o for o in objects if o["kind"] == "PodMonitor"]  # off by default
    monitored = render(helm, sets=["metrics.podMonitor.enabled=true"])
    assert one(monitored, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_without_metrics_there_is_no_port_and_no_probe(helm: Path) -> None:
    objects = render(helm, VALUE_SETS["minimal-values"])
    (container,) = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    assert "STACKSAPI_STACK_KEY" not in env_of(container)  # the configured key itself
    assert "ports" not in one(objects, "Service")["spec"]
    assert not [o for o in objects if o["kind"] in {"Role", "RoleBinding", "ServiceAccount"}]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["replicas=-1"], "replicas: Must be greater than or equal to 0"),
        (["metrics.port=0"], "metrics.port: Must be greater than or equal to 1"),
        (["colour=blue"], "Additional property colour is not allowed"),
        (["config.stack.dispatcher=mine:factory"], "config.stack.dispatcher: config.stack.dis"),
        (["config.stack.key=has space"], "config.stack.key: Does not match pattern"),
        (["config.colour.x=1"], "config: Additional property colour is not allowed"),
        (["image.pullPolicy=Sometimes"], "image.pullPolicy: image.pullPolicy must be one of"),
        (["replicas=2", "perReplicaKey=false"], "more than one replica needs perReplicaKey"),
        (["config.stack.key=" + "k" * 75], "makes stack keys of 87 characters (at most 80)"),
        (["config.poll-interval=soon"], "config.poll-interval: must be seconds or a duration"),
        (["config.max-in-flight=0"], "config.max-in-flight: Must be greater than or equal to 1"),
    ],
)
def test_bad_values_are_refused_naming_the_field(helm: Path, sets: list[str], message: str) -> None:
    done = run_helm(helm, *template_args(sets=sets))
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


def test_unknown_kubernetes_settings_pass_through(helm: Path) -> None:
    sets = ["config.kubernetes.prohibit-kubernetes-plugin=true", "config.kubernetes.new_knob=7"]
    parsed = tomllib.loads(one(render(helm, sets=sets), "ConfigMap")["data"]["stack.toml"])
    assert parsed["kubernetes"]["prohibit-kubernetes-plugin"] is True
    assert parsed["kubernetes"]["new_knob"] == 7


def test_a_config_change_rolls_the_pods(helm: Path) -> None:
    def checksum(*sets: str) -> str:
        sts = one(render(helm, sets=list(sets)), "StatefulSet")
        return str(sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() == checksum()
    assert checksum() != checksum("config.stack.max_in_flight=5")


def test_deploy_is_generated_from_the_chart_and_a_drift_is_caught(
    helm: Path, tmp_path: Path
) -> None:
    script = [sys.executable, str(ROOT / "scripts" / "render_deploy.py")]
    done = subprocess.run([*script, "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    rbac = copy / "rbac.yaml"
    rbac.write_text(rbac.read_text().replace('"delete"', '"delete", "deletecollection"'))
    args = [*script, "--check", "--out", str(copy)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "deploy/rbac.yaml is out of date with charts/stacksapi" in done.stderr


def test_the_chart_ships_this_version_of_the_controller() -> None:
    from stacksapi._version import __version__

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


@pytest.mark.parametrize(
    "setting", ["config.kubernetes.namespace=builds", "config.namespace=builds"]
)
def test_the_grants_are_where_the_jobs_are_created(helm: Path, setting: str) -> None:
    """Jobs in another namespace than the release's: the Role and its binding are there."""
    objects = render(helm, sets=[setting])
    role, binding = one(objects, "Role"), one(objects, "RoleBinding")
    assert role["metadata"]["namespace"] == "builds"
    assert binding["metadata"]["namespace"] == "builds"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "stacksapi", "namespace": "buildkite"}
    ]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.25", strict=True)
    default = render(helm)
    assert one(default, "Role")["metadata"]["namespace"] == "buildkite"


def test_the_install_notes_render_with_the_sorted_config(helm: Path, tmp_path: Path) -> None:
    """NOTES.txt (never rendered by ``helm template``) names the queue and the Jobs' namespace."""
    chart = tmp_path / "stacksapi"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "templates" / "notes-as-template.yaml")
    values = VALUE_SETS["agent-stack-k8s-controller-values"]
    assert values is not None
    args = ["template", "t", str(chart), "-f", str(values), "--set", "config.namespace=builds",
            "--show-only", "templates/notes-as-template.yaml"]  # fmt: skip
    done = run_helm(helm, *args)
    assert done.returncode == 0, done.stderr
    assert "Queue: kubernetes-big" in done.stdout
    assert "kubectl -n builds get jobs,pods" in done.stdout
