"""Building a job's PodSpec, in the order agent-stack-k8s documents.

1. start from the ``kubernetes`` plugin's ``podSpec``, or nothing (one container then runs the
   step's command in the configured image);
2. add the ``/workspace`` volume (and the ``agent-config`` hooks, plugins and key volumes);
3. mount ``/workspace`` and the plugin's ``extraVolumeMounts`` in every container;
4. rewrite the step's containers to run through the agent (``command``/``args`` become
   ``BUILDKITE_COMMAND``); add the plugin's sidecars; apply the resource class of the
   ``resource_class`` agent tag (or the default one);
5. add the ``agent`` container, then the ``checkout`` container unless checkout is skipped;
6. add ``copy-agent`` and an image-check init container per distinct image;
7. apply the stack's ``pod_template`` and ``pod-spec-patch``, then the step's ``image``
   (``BUILDKITE_IMAGE``) to its command containers, then the plugin's ``podSpecPatch``, as
   strategic merge patches; a patch may not change the command of a stack-provided container
   (unless ``allow-pod-spec-patch-unsafe-command-modification``), and a changed command of a
   step container becomes its ``BUILDKITE_COMMAND``;
8. drop ``checkout`` containers when checkout is skipped, and duplicate volume mounts.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ._agentenv import agent_config_env, agent_config_volumes, checkout_env, set_env
from ._config import RESERVED_ENV, KubernetesConfig
from ._containers import (
    BOOTSTRAP_ARGS,
    CHECKOUT,
    COPY_AGENT,
    IMAGECHECK_PREFIX,
    TINI,
    checkout_container,
    command_container,
    copy_agent_container,
    interpose,
    is_command_container,
    sidecar_container,
)
from ._imagecheck import default_pull_policy, image_checks, invalid_image
from ._params import last_given
from ._patch import strategic_merge

__all__ = ["BuiltPod", "PodError", "PodInputs", "build_pod_spec", "tags_of"]

# what the agent redacts by default; BUILDKITE_REDACTED_VARS replaces the list, so it repeats it
_AGENT_REDACTED = ("*_PASSWORD", "*_SECRET", "*_TOKEN", "*_PRIVATE_KEY", "*_ACCESS_KEY",
                   "*_SECRET_KEY", "*_CONNECTION_STRING")  # fmt: skip


class PodError(ValueError):
    """The pod cannot be built as asked; ``field`` names the setting or part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(frozen=True)
class PodInputs:
    """What the pod depends on: the job's command, env, agent tags and checked plugin."""

    command: str
    env: Mapping[str, str]
    rules: Sequence[str]
    plugin: Mapping[str, Any] | None


@dataclasses.dataclass(frozen=True)
class BuiltPod:
    """The PodSpec, and what goes on the pod's metadata (the sidecar annotations)."""

    spec: dict[str, Any]
    annotations: dict[str, str]


def tags_of(rules: Sequence[str]) -> dict[str, str]:
    """Agent tags from a job's agent query rules (``key=value``; others are ignored)."""
    return dict(rule.split("=", 1) for rule in rules if "=" in rule)


def build_pod_spec(
    config: KubernetesConfig, inputs: PodInputs, agent_env: Sequence[Mapping[str, Any]]
) -> BuiltPod:
    """The PodSpec for one job. ``agent_env`` is what the agent needs to acquire the job."""
    plugin = inputs.plugin or {}
    spec: dict[str, Any] = copy.deepcopy(dict(plugin.get("podSpec") or {}))
    checkouts = [config.default_checkout_params, plugin.get("checkout") or {}]
    skip_checkout = bool(last_given(checkouts, "skip", False))
    spec.setdefault(
        "terminationGracePeriodSeconds", config.default_termination_grace_period_seconds
    )
    workspace = dict(config.workspace_volume or {"name": "workspace", "emptyDir": {}})
    agent_config = config.agent_config
    spec.setdefault("volumes", []).extend([workspace, *agent_config_volumes(agent_config)])
    mount = {"name": workspace["name"], "mountPath": "/workspace"}
    if config.workspace_mount_sub_path_expr:
        mount["subPathExpr"] = config.workspace_mount_sub_path_expr
    mounts = [mount, *plugin.get("extraVolumeMounts", [])]
    git_env_from = list(plugin.get("gitEnvFrom", []))
    system = 0 if skip_checkout else 1
    command_params = [config.default_command_params, plugin.get("commandParams") or {}]
    containers = spec.get("containers") or [{"name": "container-0", "image": config.agent_image}]
    step_image = inputs.env.get("BUILDKITE_IMAGE")
    spec["containers"] = [
        command_container(copy.deepcopy(c), i, step_command=inputs.command, first_id=system,
                          params=command_params, agent_config=agent_config, mounts=mounts,
                          git_env_from=git_env_from)
        for i, c in enumerate(containers)
    ]  # fmt: skip
    for c in spec["containers"]:  # so the step's image gets its image check too
        c["image"] = step_image or c.get("image")
    annotations: dict[str, str] = {}
    sidecar_params = [config.default_sidecar_params, plugin.get("sidecarParams") or {}]
    for i, given in enumerate(plugin.get("sidecars", [])):
        sidecar = sidecar_container(copy.deepcopy(given), i, params=sidecar_params,
                                    mounts=mounts, git_env_from=git_env_from)  # fmt: skip
        annotations[f"buildkite.com/sidecar-{i}"] = sidecar["name"]
        spec.setdefault("initContainers", []).append(sidecar)
    tags = tags_of(inputs.rules)
    _resource_class(config, spec, tags)
    count = len(spec["containers"]) + system
    spec["containers"].append(
        _agent(
            config,
            spec,
            mounts=mounts,
            agent_env=agent_env,
            tags=tags,
            count=count,
            checkouts=checkouts,
        )
    )
    pull = config.default_image_pull_policy or default_pull_policy(config.agent_image)
    if not skip_checkout:
        spec["containers"].append(checkout_container(
            spec, image=config.agent_image, pull_policy=pull, mounts=mounts,
            agent_config=agent_config, params=checkouts, git_env_from=git_env_from))  # fmt: skip
    _check_images(spec)
    copy_agent = copy_agent_container(spec, image=config.agent_image, pull_policy=pull,
                                      mount=mount)  # fmt: skip
    user_init = spec.get("initContainers") or []
    checks = image_checks(
        spec["containers"], [copy_agent, *user_init],
        default_policy=config.default_image_pull_policy,
        check_policy=config.default_image_check_pull_policy, mount=mount,
        cpu_limit=config.image_check_container_cpu_limit,
        memory_limit=config.image_check_container_memory_limit,
        enabled=not config.skip_image_check_containers,
    )  # fmt: skip
    spec["initContainers"] = [copy_agent, *checks, *user_init]
    spec["restartPolicy"] = "Never"
    spec = _patches(config, spec, inputs, command_params)
    if skip_checkout:
        spec["containers"] = [c for c in spec["containers"] if c.get("name") != CHECKOUT]
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            _dedupe_mounts(c)
    _check_images(spec)
    _check_mounts(spec)
    return BuiltPod(spec, annotations)


def _agent(
    config: KubernetesConfig,
    spec: Mapping[str, Any],
    *,
    mounts: Sequence[Mapping[str, Any]],
    agent_env: Sequence[Mapping[str, Any]],
    tags: Mapping[str, str],
    count: int,
    checkouts: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The agent container: ``buildkite-agent start`` coordinating the pod's containers."""

    def field(path: str) -> dict[str, Any]:
        return {"fieldRef": {"fieldPath": path}}

    tag_text = ",".join(f"{k}={v}" for k, v in tags.items())

    agent: dict[str, Any] = {
        "name": config.agent_container,
        "image": config.agent_image,
        "command": list(config.agent_command),
        "imagePullPolicy": config.default_image_pull_policy
        or default_pull_policy(config.agent_image),
        "workingDir": "/workspace",
        "volumeMounts": [dict(m) for m in mounts],
        "env": [
            {"name": "BUILDKITE_KUBERNETES_EXEC", "value": "true"},
            {"name": "BUILDKITE_CONTAINER_COUNT", "value": str(count)},
            {"name": "BUILDKITE_AGENT_TAGS", "value": tag_text},
            {"name": "BUILDKITE_K8S_NODE", "valueFrom": field("spec.nodeName")},
            {"name": "BUILDKITE_K8S_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "BUILDKITE_K8S_SERVICE_ACCOUNT",
             "valueFrom": field("spec.serviceAccountName")},
            {"name": "BUILDKITE_BUILD_PATH", "value": "/workspace/build"},
            {"name": "BUILDKITE_HOOKS_PATH", "value": "/workspace/hooks"},
            {"name": "BUILDKITE_PLUGINS_PATH", "value": "/workspace/plugins"},
            {"name": "BUILDKITE_SOCKETS_PATH", "value": "/workspace/sockets/agent"},
            {"name": "BUILDKITE_SHELL", "value": "/bin/sh -ec"},
        ],
    }  # fmt: skip
    if config.additional_redacted_vars:
        redacted = [*_AGENT_REDACTED, *config.additional_redacted_vars]
        set_env(agent, "BUILDKITE_REDACTED_VARS", ",".join(redacted))
    grace = int(spec.get("terminationGracePeriodSeconds") or 0)
    set_env(agent, "BUILDKITE_CANCEL_GRACE_PERIOD", str(max(grace, 1)))
    set_env(agent, "BUILDKITE_SIGNAL_GRACE_PERIOD_SECONDS", str(max(0, grace - 10)))
    if config.agent_config:
        agent_config_env(agent, config.agent_config)
    for params in checkouts:
        checkout_env(agent, params)
    for var in agent_env:
        if "value" in var:
            set_env(agent, var["name"], var["value"])
        else:
            agent["env"] = [v for v in agent["env"] if v["name"] != var["name"]] + [dict(var)]
    return agent


def _resource_class(
    config: KubernetesConfig, spec: dict[str, Any], tags: Mapping[str, str]
) -> None:
    """Apply the ``resource_class`` tag's class (or the default one) to the pod."""
    name = tags.get("resource_class")
    where = "agent tag resource_class"
    if name is None:
        name, where = config.default_resource_class_name, "kubernetes.default_resource_class_name"
        if name is None:
            return
    rc = config.resource_classes.get(name)
    if rc is None:
        known = ", ".join(sorted(config.resource_classes)) or "none are configured"
        raise PodError(where, f"no resource class {name!r} (kubernetes.resource_classes: {known})")
    if rc.get("nodeSelector"):
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **rc["nodeSelector"]}
    for c in spec["containers"]:
        if rc.get("resource") and is_command_container(c):
            _add_resources(c, rc["resource"])
    if rc.get("podResource"):
        _add_resources(spec, rc["podResource"])


def _add_resources(target: dict[str, Any], requirements: Mapping[str, Any]) -> None:
    resources = target.setdefault("resources", {})
    for kind in ("requests", "limits"):
        if requirements.get(kind):
            resources[kind] = {**(resources.get(kind) or {}), **requirements[kind]}


def _check_images(spec: Mapping[str, Any]) -> None:
    for key in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(key) or []):
            why = invalid_image(c.get("image"))
            if why is not None:
                raise PodError(f"{key}[{i}].image", f"container {c.get('name')!r}: {why}")


def _check_mounts(spec: Mapping[str, Any]) -> None:
    """Names are unique and every mount names a volume of the pod (else Kubernetes rejects it)."""
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            if c.get("name") in seen:
                raise PodError(f"{key}[{i}].name", f"two containers are named {c.get('name')!r}")
            seen.add(c.get("name"))
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for key in ("containers", "initContainers"):
        for i, c in enumerate(spec.get(key) or []):
            for j, m in enumerate(c.get("volumeMounts") or []):
                if m.get("name") not in volumes:
                    raise PodError(
                        f"{key}[{i}].volumeMounts[{j}]",
                        f"container {c.get('name')!r} mounts volume {m.get('name')!r} on "
                        f"{m.get('mountPath')}, but the pod has no such volume",
                    )


def _dedupe_mounts(container: dict[str, Any]) -> None:
    seen: set[str] = set()
    kept = []
    for m in container.get("volumeMounts") or []:
        if m.get("mountPath") not in seen:
            seen.add(m.get("mountPath"))
            kept.append(m)
    if kept:
        container["volumeMounts"] = kept


def _patches(
    config: KubernetesConfig,
    spec: dict[str, Any],
    inputs: PodInputs,
    command_params: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    template = config.template().get("spec") or {}
    given: Any = config.pod_spec_patch or {}
    sources: list[tuple[str, Mapping[str, Any]]] = [
        ("kubernetes.pod_template", template), ("kubernetes.pod_spec_patch", given)]  # fmt: skip
    for name, patch in sources:
        if patch and (patch != {"containers": []}):
            spec = strategic_merge(spec, _guard(config, spec, patch, name, command_params))
    if image := inputs.env.get("BUILDKITE_IMAGE"):
        for c in spec["containers"]:
            if is_command_container(c):
                c["image"] = image
    step_patch = (inputs.plugin or {}).get("podSpecPatch")
    if step_patch:
        spec = strategic_merge(spec, _guard(config, spec, step_patch, "podSpecPatch",
                                            command_params))  # fmt: skip
    return spec


def _guard(
    config: KubernetesConfig,
    spec: Mapping[str, Any],
    patch: Mapping[str, Any],
    source: str,
    command_params: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """``patch``, checked: no command change to a stack container; step commands re-routed."""
    checked: dict[str, Any] = copy.deepcopy(dict(patch))
    allow = config.allow_pod_spec_patch_unsafe_command_modification
    ours = {config.agent_container: "", CHECKOUT: "; configure a checkout hook or skip checkout"}
    for i, c in enumerate(checked.get("containers") or []):
        if not isinstance(c, dict) or c.get("name") != config.agent_container:
            continue
        env = [v for v in c.get("env") or [] if v.get("name") not in RESERVED_ENV]
        if len(env) != len(c.get("env") or []) and source == "podSpecPatch":
            raise PodError(
                f"{source}.containers[{i}].env",
                "the agent's token and job are set by the stack, not by a patch",
            )
        c["env"] = env  # the stack's own template: dropped, as it always was
    for key in ("initContainers", "containers"):
        before = {c.get("name"): c for c in spec.get(key) or []}
        for i, c in enumerate(checked.get(key) or []):
            if not isinstance(c, dict) or not (c.get("command") or c.get("args")):
                continue
            name, old = c.get("name"), before.get(c.get("name"))
            if old is not None and (c.get("command"), c.get("args")) == (
                old.get("command"), old.get("args")
            ):  # fmt: skip
                continue
            stack_init = key == "initContainers" and (
                name == COPY_AGENT or str(name).startswith(IMAGECHECK_PREFIX)
            )
            if (stack_init or (key == "containers" and name in ours)) and not allow:
                hint = ours.get(str(name), "") if key == "containers" else ""
                raise PodError(
                    f"{source}.{key}[{i}].command",
                    f"the {name} container is the stack's own; its command and args cannot be "
                    f"patched{hint}",
                )
            step = old is not None and (old.get("command"), old.get("args")) == (
                TINI,
                BOOTSTRAP_ARGS,
            )
            if key == "containers" and step:
                command = interpose(c.pop("command", None) or [], c.pop("args", None) or [],
                                    command_params)  # fmt: skip
                c.setdefault("env", []).append({"name": "BUILDKITE_COMMAND", "value": command})
    return checked
