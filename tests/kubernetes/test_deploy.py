"""Everything under ``deploy/`` loads into lightkube's typed models and fits together.

The RBAC is checked to be exactly the least privilege the dispatcher needs, the StatefulSet to
take the cluster token from a Secret and to run the configured stack under a per-replica key,
and the ConfigMap's ``stack.toml`` to build a real KubernetesDispatcher (the pod template
included). ``deploy/`` is generated from the Helm chart (``tests/chart`` checks it is current).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from lightkube import codecs
from lightkube.resources.apps_v1 import StatefulSet
from lightkube.resources.core_v1 import ConfigMap, Secret, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import Role, RoleBinding

from stacksapi.kubernetes import KubernetesDispatcher
from stacksapi.stack import StackConfig
from stacksapi.stack._entry import load_dispatcher

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted(DEPLOY.glob("*.yaml"))


def load(kind: type[Any]) -> list[Any]:
    out = []
    for path in MANIFESTS:
        out += [o for o in codecs.load_all_yaml(path.read_text()) if isinstance(o, kind)]
    return out


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_every_manifest_loads_into_typed_models(path: Path) -> None:
    objects = codecs.load_all_yaml(path.read_text())
    assert objects, f"{path.name} holds no object"
    for obj in objects:
        assert obj.metadata is not None
        assert obj.metadata.name
        assert type(obj).__module__.startswith("lightkube.resources")  # not a generic resource


def test_rbac_is_least_privilege_in_one_namespace() -> None:
    (role,) = load(Role)
    rules = {
        (group, resource): sorted(rule.verbs)
        for rule in role.rules
        for group in rule.apiGroups
        for resource in rule.resources
    }
    assert rules == {
        ("batch", "jobs"): sorted(["create", "get", "list", "watch", "delete"]),
        ("", "pods"): sorted(["get", "list", "watch"]),
        ("", "events"): sorted(["get", "list", "watch"]),
        ("", "secrets"): sorted(["create", "patch"]),
    }
    (binding,) = load(RoleBinding)
    (account,) = load(ServiceAccount)
    assert binding.roleRef.kind == "Role"
    assert binding.roleRef.name == role.metadata.name
    assert [(s.kind, s.name) for s in binding.subjects] == [
        ("ServiceAccount", account.metadata.name)
    ]
    namespaces = {o.metadata.namespace for o in (role, binding, account)}
    assert namespaces == {"buildkite"}


def test_the_statefulset_runs_the_configured_stack_with_the_token_from_a_secret() -> None:
    (deployment,) = load(StatefulSet)
    (account,) = load(ServiceAccount)
    (secret,) = load(Secret)
    pod = deployment.spec.template.spec
    assert pod.serviceAccountName == account.metadata.name
    (container,) = pod.containers
    assert container.command[:2] == ["stacksapi", "run"]
    token = next(e for e in container.env if e.name == "BUILDKITE_CLUSTER_TOKEN")
    assert token.value is None
    assert token.valueFrom.secretKeyRef.name == secret.metadata.name
    assert "REPLACE" in secret.stringData["token"]  # only a placeholder in the repository
    (configmap,) = load(ConfigMap)
    mount = next(v for v in container.volumeMounts if v.name == "config")
    config_path = container.command[container.command.index("--config") + 1]
    assert config_path == f"{mount.mountPath}/stack.toml"
    assert "stack.toml" in configmap.data
    key = next(e for e in container.env if e.name == "STACKSAPI_STACK_KEY")
    assert key.value == "kubernetes-$(POD_NAME)"  # one stable key per replica
    assert deployment.spec.serviceName == deployment.metadata.name


def test_the_shipped_stack_toml_builds_a_kubernetes_dispatcher() -> None:
    (configmap,) = load(ConfigMap)
    config = StackConfig.from_mapping(tomllib.loads(configmap.data["stack.toml"]))
    assert config.dispatcher is not None
    built = load_dispatcher(config.dispatcher, config, key="stack.dispatcher")
    assert isinstance(built, KubernetesDispatcher)
    assert built.config.template()["spec"]["containers"][0]["name"] == "agent"


def test_the_dockerfile_installs_the_extras_and_runs_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert '".[cli,kubernetes,metrics]"' in text  # /metrics needs prometheus-client
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["stacksapi"]' in text
