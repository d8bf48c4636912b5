"""The chart takes an agent-stack-k8s team's settings as they are, and its jobs run as asked.

``ci/agent-stack-k8s-values.yaml`` holds a controller configuration in agent-stack-k8s's names
(``image``, ``job-ttl``, ``pod-spec-patch``, ``default-checkout-params``, ``resource-classes``…).
The chart renders it into ``stack.toml``; the dispatcher the controller would build from that
file renders a plugin step's pod, which validates strictly.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import yaml

from stacksapi import Job
from stacksapi.kubernetes import KubernetesDispatcher, render_job, split_controller_config
from stacksapi.stack import StackConfig
from stacksapi.stack._entry import load_dispatcher

from .chart_helpers import CHART, one, render, run_helm, template_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kubernetes.catalogue import PLUGIN_SOURCE, Step_, request_for, validate


def test_agent_stack_k8s_values_build_the_dispatcher_and_a_plugin_pod(helm: Path) -> None:
    values = CHART / "ci" / "agent-stack-k8s-values.yaml"
    parsed = tomllib.loads(one(render(helm, values), "ConfigMap")["data"]["stack.toml"])
    config = StackConfig.from_mapping(parsed)
    assert config.dispatcher is not None
    built = load_dispatcher(config.dispatcher, config, key="stack.dispatcher")
    assert isinstance(built, KubernetesDispatcher)
    kube = built.config
    assert (kube.agent_image, kube.ttl_seconds_after_finished) == ("ghcr.io/buildkite/agent:3", 600)
    step = Step_(rules=("queue=kubernetes", "resource_class=large"))
    request, details = request_for(step)
    plugin = {"sidecars": [{"image": "redis:7"}], "checkout": {"fetchFlags": "--depth=1"}}
    env = {"BUILDKITE_PLUGINS": json.dumps([{PLUGIN_SOURCE: plugin}])}
    manifest = render_job(kube, request, "buildkite", Job(id=details.id, env=env, command="x"))
    validate(manifest)
    spec = manifest["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "buildkite-jobs"
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert spec["nodeSelector"] == {"node.kubernetes.io/instance-type": "m7i.4xlarge"}
    assert [c["name"] for c in spec["initContainers"]][-1] == "sidecar-0"
    volumes = {v["name"] for v in spec["volumes"]}
    assert {"buildkite-hooks", "git-credentials-ro"} <= volumes
    assert manifest["metadata"]["labels"]["platform"] == "ci"


def test_an_agent_stack_k8s_config_map_is_taken_as_it_is(helm: Path) -> None:
    """Their ``config:`` map, flat: stack settings go to [stack], pod settings to [kubernetes]."""
    values = CHART / "ci" / "agent-stack-k8s-controller-values.yaml"
    parsed = tomllib.loads(one(render(helm, values), "ConfigMap")["data"]["stack.toml"])
    config = StackConfig.from_mapping(parsed)
    assert (config.queue_key, config.max_in_flight, config.poll_interval) == (
        "kubernetes-big",
        25,
        2,
    )
    assert config.reservation_expiry_seconds == 900
    assert config.tags == {"os": "linux", "resource_class": "*"}
    assert config.dispatcher is not None
    built = load_dispatcher(config.dispatcher, config, key="stack.dispatcher")
    assert isinstance(built, KubernetesDispatcher)
    kube = built.config
    assert (kube.agent_image, kube.ttl_seconds_after_finished) == ("ghcr.io/buildkite/agent:3", 600)
    assert kube.pending_timeout == 900
    assert kube.default_checkout_params == {"cloneFlags": "--depth=1"}
    assert "resource-classes" in parsed["kubernetes"]
    assert "enable-completion-watcher" not in parsed["kubernetes"]  # no meaning here: dropped
    # the same split the Python helper makes
    flat = {k: v for k, v in yaml.safe_load(values.read_text())["config"].items()}
    stack, table = split_controller_config(flat)
    assert {k: parsed["stack"][k] for k in stack} == stack
    assert {k: parsed["kubernetes"][k] for k in table} == table


def test_a_misspelt_agent_stack_k8s_setting_is_refused_at_install(helm: Path) -> None:
    done = run_helm(helm, *template_args(sets=["config.max-in-flite=3"]))
    assert done.returncode != 0
    assert "config: Additional property max-in-flite is not allowed" in done.stderr


def test_their_token_values_give_the_controller_its_token(helm: Path) -> None:
    """``agentStackSecret`` (their Secret, key BUILDKITE_AGENT_TOKEN) or ``agentToken``."""
    values = CHART / "ci" / "agent-stack-k8s-controller-values.yaml"
    objects = render(helm, values)
    (container,) = one(objects, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    token = next(e for e in container["env"] if e["name"] == "BUILDKITE_CLUSTER_TOKEN")
    ref = {"name": "buildkite-agent-secrets", "key": "BUILDKITE_AGENT_TOKEN"}
    assert token["valueFrom"]["secretKeyRef"] == ref
    assert not [o for o in objects if o["kind"] == "Secret"]  # theirs exists already
    made = render(helm, sets=["agentToken=bkct_from_their_values"])
    secret = one(made, "Secret")
    (container,) = one(made, "StatefulSet")["spec"]["template"]["spec"]["containers"]
    token = next(e for e in container["env"] if e["name"] == "BUILDKITE_CLUSTER_TOKEN")
    ref = token["valueFrom"]["secretKeyRef"]
    assert secret["metadata"]["name"] == ref["name"]
    assert secret["stringData"] == {ref["key"]: "bkct_from_their_values"}
