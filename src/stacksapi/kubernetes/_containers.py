"""The containers of a job's pod, one builder each.

The layout is agent-stack-k8s's, so pipelines written for it behave the same:

- **command containers** (the step's, or ``container-0``) run ``kubernetes-bootstrap`` through
  ``tini-static`` from the workspace; their own ``command``/``args`` become ``BUILDKITE_COMMAND``
  (joined by the command interposer);
- the **agent** container runs ``buildkite-agent start`` with ``BUILDKITE_KUBERNETES_EXEC``,
  acquires the job and drives the others over sockets under ``/workspace/sockets``;
- the **checkout** container clones the repository (unless checkout is skipped);
- the **copy-agent** init container puts ``buildkite-agent`` and ``tini-static`` into the
  workspace; **sidecars** are native sidecars (init containers that restart ``Always``), which
  Kubernetes stops when the job's containers have ended.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from ._agentenv import MIRRORS_PATH, add_env_from, add_mounts, agent_config_mounts, set_env
from ._params import last_given

__all__ = [
    "BOOTSTRAP_ARGS",
    "CHECKOUT",
    "COPY_AGENT",
    "IMAGECHECK_PREFIX",
    "TINI",
    "checkout_container",
    "command_container",
    "copy_agent_container",
    "interpose",
    "is_command_container",
    "is_sidecar",
    "sidecar_container",
]

Container = dict[str, Any]
CHECKOUT = "checkout"
COPY_AGENT = "copy-agent"
IMAGECHECK_PREFIX = "imagecheck-"
TINI = ["/workspace/tini-static"]
BOOTSTRAP_ARGS = ["--", "/workspace/buildkite-agent", "kubernetes-bootstrap"]
WORKSPACE = "/workspace"


def interpose(
    command: Sequence[str], args: Sequence[str], params: Sequence[Mapping[str, Any]]
) -> str:
    """A container's ``command`` and ``args`` as one ``BUILDKITE_COMMAND``.

    The interposer is the last one ``params`` (command params: the stack's, then the step's)
    name. ``buildkite`` (the default): command lines joined by newlines, args shell-quoted onto
    the last; ``vector``: everything shell-quoted as one command; ``legacy``: joined by spaces.
    """
    interposer = last_given(params, "interposer")
    if interposer == "vector":
        return shlex.join([*command, *args])
    if interposer == "legacy":
        return " ".join([*command, *args])
    text = "\n".join(command)
    return f"{text} {shlex.join(args)}" if args else text


def is_command_container(container: Mapping[str, Any]) -> bool:
    """Whether a container runs a step's command (it carries ``BUILDKITE_COMMAND``)."""
    return any(v.get("name") == "BUILDKITE_COMMAND" for v in container.get("env") or [])


def is_sidecar(container: Mapping[str, Any], agent: str) -> bool:
    """Whether a regular container runs beside the job rather than as part of it.

    The agent, the checkout and the command containers end when the job does; any other
    regular container (a daemon a template or patch adds) does not: it is a sidecar.
    """
    name = container.get("name")
    return name not in (agent, CHECKOUT) and not is_command_container(container)


def command_container(
    container: Container,
    index: int,
    *,
    step_command: str,
    first_id: int,
    params: Sequence[Mapping[str, Any]],
    agent_config: Mapping[str, Any],
    mounts: Sequence[Mapping[str, Any]],
    git_env_from: Sequence[Mapping[str, Any]],
) -> Container:
    """Rewrite one of the step's containers to run its command through the agent.

    ``params`` are the command params in order (the stack's defaults, then the step's).
    """
    command = step_command
    if container.get("command"):
        command = interpose(container["command"], container.get("args") or [], params)
    container["command"], container["args"] = list(TINI), list(BOOTSTRAP_ARGS)
    container.setdefault("env", []).extend([
        {"name": "BUILDKITE_BOOTSTRAP_PHASES", "value": "plugin,command"},
        {"name": "BUILDKITE_COMMAND", "value": command},
        {"name": "BUILDKITE_CONTAINER_ID", "value": str(index + first_id)},
    ])  # fmt: skip
    agent_config_mounts(container, agent_config, signing=True)
    for block in params:
        add_env_from(container, block.get("envFrom", []))
        add_mounts(container, block.get("extraVolumeMounts", []))
    container["name"] = container.get("name") or f"container-{index}"
    container["workingDir"] = container.get("workingDir") or WORKSPACE
    set_env(container, "BUILDKITE_SOCKETS_PATH", f"{WORKSPACE}/sockets/{container['name']}")
    add_mounts(container, mounts)
    add_env_from(container, git_env_from)
    return _tidy(container)


def sidecar_container(
    container: Container,
    index: int,
    *,
    params: Sequence[Mapping[str, Any]],
    mounts: Sequence[Mapping[str, Any]],
    git_env_from: Sequence[Mapping[str, Any]],
) -> Container:
    """A step's sidecar: the shared mounts and params, as a native sidecar init container."""
    container["name"] = container.get("name") or f"sidecar-{index}"
    default, *step = params
    add_env_from(container, default.get("envFrom", []))
    add_mounts(container, default.get("extraVolumeMounts", []))
    add_mounts(container, mounts)
    for block in step:
        add_env_from(container, block.get("envFrom", []))
        add_mounts(container, block.get("extraVolumeMounts", []))
    add_env_from(container, git_env_from)
    container["restartPolicy"] = "Always"
    return _tidy(container)


def _tidy(container: Container) -> Container:
    for key in ("env", "envFrom", "volumeMounts", "args"):
        if key in container and not container[key]:
            del container[key]
    return container


def _user(pod_spec: Mapping[str, Any]) -> tuple[int, int]:
    context = pod_spec.get("securityContext") or {}
    return int(context.get("runAsUser") or 0), int(context.get("runAsGroup") or 0)


_AS_ROOT = {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False}


def copy_agent_container(
    pod_spec: Mapping[str, Any], *, image: str, pull_policy: str, mount: Mapping[str, Any]
) -> Container:
    """The first init container: prepare the workspace, copy the agent and tini-static in."""
    uid, gid = _user(pod_spec)
    lines = []
    if uid:
        lines.append(f"chown -R {uid}:{gid} /workspace" if gid else f"chown -R {uid} /workspace")
    dirs = " ".join(f"/workspace/{d}" for d in ("build", "plugins", "sockets"))
    lines += [
        f"mkdir -p {dirs}",
        f"chmod 777 {dirs}",
        "cp /usr/local/bin/buildkite-agent /workspace/buildkite-agent",
        "for tini in /sbin/tini-static /usr/bin/tini-static; do",
        '  if [ -f "$tini" ]; then cp "$tini" /workspace/tini-static; exit 0; fi',
        "done",
        'echo "no tini-static in the agent image" >&2',
        "exit 1",
    ]
    container: Container = {
        "name": COPY_AGENT,
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["/bin/sh"],
        "args": ["-cefx", "\n".join(lines) + "\n"],
        "volumeMounts": [dict(mount)],
    }
    if uid:
        container["securityContext"] = dict(_AS_ROOT)
    return container


def _create_user(uid: int, gid: int) -> str:
    group = "buildkite-agent" if gid else "root"
    make_group = f"addgroup -g {gid} {group} 2>/dev/null || true" if gid else ":"
    make_group_gnu = f"groupadd -g {gid} {group} 2>/dev/null || true" if gid else ":"
    return "\n".join([
        "if adduser --help 2>&1 | grep -q BusyBox; then",
        f"  {make_group}",
        f"  adduser -D -u {uid} -G {group} -h /workspace buildkite-agent",
        "elif command -v useradd >/dev/null 2>&1; then",
        f"  {make_group_gnu}",
        f"  useradd -M -u {uid} -g {group} -d /workspace -s /bin/sh buildkite-agent",
        "else",
        '  echo "cannot create the checkout user: no adduser or useradd" >&2; exit 1',
        "fi",
    ])  # fmt: skip


def checkout_container(
    pod_spec: dict[str, Any],
    *,
    image: str,
    pull_policy: str,
    mounts: Sequence[Mapping[str, Any]],
    agent_config: Mapping[str, Any],
    params: Sequence[Mapping[str, Any]],
    git_env_from: Sequence[Mapping[str, Any]],
) -> Container:
    """The checkout container; adds its volumes (mirrors, git credentials) to ``pod_spec``.

    ``params`` are the checkout params in order (the stack's defaults, then the step's); the
    step's ``gitCredentialsSecret`` replaces the default one.
    """
    container: Container = {
        "name": CHECKOUT,
        "image": image,
        "imagePullPolicy": pull_policy,
        "workingDir": WORKSPACE,
        "volumeMounts": [dict(m) for m in mounts],
        "env": [
            {"name": "BUILDKITE_BOOTSTRAP_PHASES", "value": "plugin,checkout"},
            {"name": "BUILDKITE_CONTAINER_ID", "value": "0"},
            {"name": "BUILDKITE_SOCKETS_PATH", "value": f"{WORKSPACE}/sockets/checkout"},
        ],
    }
    agent_config_mounts(container, agent_config)
    volumes = pod_spec.setdefault("volumes", [])
    credentials = None
    for block in params:
        mirrors = block.get("gitMirrors") or {}
        if mirrors.get("volume"):
            volumes.append(dict(mirrors["volume"]))
            path = mirrors.get("path") or MIRRORS_PATH
            add_mounts(container, [{"name": mirrors["volume"]["name"], "mountPath": path}])
        add_env_from(container, block.get("envFrom", []))
        add_mounts(container, block.get("extraVolumeMounts", []))
        credentials = block.get("gitCredentialsSecret") or credentials
    add_env_from(container, git_env_from)
    git_config = "true"
    if credentials:
        volumes += [
            {"name": "git-credentials-ro", "secret": dict(credentials)},
            {"name": "git-credentials", "emptyDir": {"medium": "Memory"}},
        ]
        add_mounts(container, [
            {"name": "git-credentials-ro", "mountPath": "/buildkite/git-credentials-ro"},
            {"name": "git-credentials", "mountPath": "/buildkite/git-credentials"},
        ])  # fmt: skip
        store = "/buildkite/git-credentials/.git-credentials"
        git_config = (
            f"cp /buildkite/git-credentials-ro/.git-credentials {store} && "
            f"git config --global credential.helper 'store --file {store}'"
        )
    bootstrap = "buildkite-agent-entrypoint kubernetes-bootstrap"
    uid, gid = _user(pod_spec)
    if uid:  # create a user with the pod's uid, check out as that user
        container["securityContext"] = dict(_AS_ROOT)
        script = ["set -exuf", _create_user(uid, gid),
                  f'su buildkite-agent -c "{git_config} && {bootstrap}"']  # fmt: skip
    else:
        script = ["set -exuf", git_config, bootstrap]
    container["command"], container["args"] = ["/bin/sh", "-c"], ["\n".join(script)]
    return _tidy(container)
