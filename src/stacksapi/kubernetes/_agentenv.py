"""Container environment helpers, and what ``agent-config`` and checkout params add to containers.

The names of the variables and the default paths are those the Buildkite agent reads in a
Kubernetes pod (``BUILDKITE_HOOKS_PATH``, ``BUILDKITE_GIT_CLONE_FLAGS``…), so a team's
``agent-config`` and ``default-checkout-params`` mean here what they meant in agent-stack-k8s.
Functions take plain container mappings and change them in place.
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "add_env_from",
    "add_mounts",
    "agent_config_env",
    "agent_config_mounts",
    "agent_config_volumes",
    "checkout_env",
    "set_env",
]

Container = dict[str, Any]

# agent-config key -> (variable, kind): str, bool, list (comma-joined), not (negated bool)
_AGENT_ENV: tuple[tuple[str, str, str], ...] = (
    ("endpoint", "BUILDKITE_AGENT_ENDPOINT", "str"),
    ("no-http2", "BUILDKITE_NO_HTTP2", "bool"),
    ("experiment", "BUILDKITE_AGENT_EXPERIMENT", "list"),
    ("shell", "BUILDKITE_SHELL", "str"),
    ("no-color", "BUILDKITE_AGENT_NO_COLOR", "bool"),
    ("strict-single-hooks", "BUILDKITE_STRICT_SINGLE_HOOKS", "bool"),
    ("no-multipart-artifact-upload", "BUILDKITE_NO_MULTIPART_ARTIFACT_UPLOAD", "bool"),
    ("trace-context-encoding", "BUILDKITE_TRACE_CONTEXT_ENCODING", "str"),
    ("tracing-backend", "BUILDKITE_TRACING_BACKEND", "str"),
    ("tracing-service-name", "BUILDKITE_TRACING_SERVICE_NAME", "str"),
    ("tracing-propagate-traceparent", "BUILDKITE_TRACING_PROPAGATE_TRACEPARENT", "bool"),
    ("disable-warnings-for", "BUILDKITE_AGENT_DISABLE_WARNINGS_FOR", "list"),
    ("debug-signing", "BUILDKITE_AGENT_DEBUG_SIGNING", "bool"),
    ("git-skip-fetch-existing-commits", "BUILDKITE_GIT_SKIP_FETCH_EXISTING_COMMITS", "bool"),
    ("container-start-timeout", "BUILDKITE_KUBERNETES_CONTAINER_START_TIMEOUT", "str"),
    ("hooks-path", "BUILDKITE_HOOKS_PATH", "str"),
    ("plugins-path", "BUILDKITE_PLUGINS_PATH", "str"),
    ("no-pty", "BUILDKITE_NO_PTY", "bool"),
    ("no-command-eval", "BUILDKITE_NO_COMMAND_EVAL", "bool"),
    ("no-local-hooks", "BUILDKITE_NO_LOCAL_HOOKS", "bool"),
    ("no-plugins", "BUILDKITE_NO_PLUGINS", "bool"),
    ("plugin-validation", "BUILDKITE_NO_PLUGIN_VALIDATION", "not"),
    ("signing-jwks-key-id", "BUILDKITE_AGENT_SIGNING_JWKS_KEY_ID", "str"),
    ("verification-failure-behavior", "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR",
     "str"),
)  # fmt: skip
_CHECKOUT_ENV: tuple[tuple[str, str, str], ...] = (
    ("checkoutFlags", "BUILDKITE_GIT_CHECKOUT_FLAGS", "str"),
    ("cleanFlags", "BUILDKITE_GIT_CLEAN_FLAGS", "str"),
    ("cloneFlags", "BUILDKITE_GIT_CLONE_FLAGS", "str"),
    ("fetchFlags", "BUILDKITE_GIT_FETCH_FLAGS", "str"),
    ("noSubmodules", "BUILDKITE_NO_GIT_SUBMODULES", "bool"),
    ("submoduleCloneConfig", "BUILDKITE_GIT_SUBMODULE_CLONE_CONFIG", "list"),
)
_MIRRORS_ENV: tuple[tuple[str, str, str], ...] = (
    ("path", "BUILDKITE_GIT_MIRRORS_PATH", "str"),
    ("cloneFlags", "BUILDKITE_GIT_CLONE_MIRROR_FLAGS", "str"),
    ("lockTimeout", "BUILDKITE_GIT_MIRRORS_LOCK_TIMEOUT", "int"),
    ("skipUpdate", "BUILDKITE_GIT_MIRRORS_SKIP_UPDATE", "bool"),
)
MIRRORS_PATH = "/buildkite/git-mirrors"
_SIGNING_DIR, _VERIFY_DIR = "/buildkite/signing-jwks", "/buildkite/verification-jwks"


def set_env(container: Container, name: str, value: str) -> None:
    """Set ``name`` in the container's env: replace its value, or append it."""
    env = container.setdefault("env", [])
    for var in env:
        if var.get("name") == name:
            var.pop("valueFrom", None)
            var["value"] = value
            return
    env.append({"name": name, "value": value})


def add_mounts(container: Container, mounts: Iterable[Mapping[str, Any]]) -> None:
    """Append volume mounts (copies) to a container."""
    container.setdefault("volumeMounts", []).extend(copy.deepcopy(dict(m)) for m in mounts)


def add_env_from(container: Container, sources: Iterable[Mapping[str, Any]]) -> None:
    """Append ``envFrom`` sources (copies) to a container."""
    container.setdefault("envFrom", []).extend(copy.deepcopy(dict(m)) for m in sources)


def _apply(container: Container, block: Mapping[str, Any], table: Any) -> None:
    for key, name, kind in table:
        value = block.get(key)
        if value is None or (kind == "list" and not value):
            continue
        if kind == "bool":
            text = "true" if value else "false"
        elif kind == "not":
            text = "false" if value else "true"
        elif kind == "list":
            text = ",".join(value)
        elif kind == "int":
            if value <= 0:
                continue
            text = str(value)
        else:
            text = value if isinstance(value, str) else f"{value}s"
        set_env(container, name, text)


def _jwks(file: str | None, default_dir: str) -> tuple[str, str]:
    """The key file's full path and the directory to mount its volume on."""
    file = file or "key"
    if posixpath.isabs(file):
        return file, posixpath.dirname(file)
    return posixpath.join(default_dir, file), default_dir


def agent_config_volumes(agent_config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pod volumes ``agent-config`` brings: hooks, additional hooks, plugins, JWKS keys."""
    volumes = [agent_config.get("hooksVolume")]
    volumes += [h.get("volume") for h in agent_config.get("additional-hooks", [])]
    volumes += [agent_config.get(k) for k in ("pluginsVolume", "signingJWKSVolume",
                                              "verificationJWKSVolume")]  # fmt: skip
    return [dict(v) for v in volumes if v]


def agent_config_mounts(
    container: Container, agent_config: Mapping[str, Any], *, signing: bool = False
) -> None:
    """Mount the hooks, additional hooks and plugins volumes (and the signing key: commands)."""
    mounts = []
    if hooks := agent_config.get("hooksVolume"):
        path = agent_config.get("hooks-path", "/workspace/hooks")
        mounts.append({"name": hooks["name"], "mountPath": path})
    for hook in agent_config.get("additional-hooks", []):
        if hook.get("volume") and hook.get("path"):
            mounts.append({"name": hook["volume"]["name"], "mountPath": hook["path"]})
    if plugins := agent_config.get("pluginsVolume"):
        path = agent_config.get("plugins-path", "/workspace/plugins")
        mounts.append({"name": plugins["name"], "mountPath": path})
    if signing and (key := agent_config.get("signingJWKSVolume")):
        _, where = _jwks(agent_config.get("signing-jwks-file"), _SIGNING_DIR)
        mounts.append({"name": key["name"], "mountPath": where})
    add_mounts(container, mounts)


def agent_config_env(container: Container, agent_config: Mapping[str, Any]) -> None:
    """What ``agent-config`` sets on the agent container: variables and key mounts."""
    _apply(container, agent_config, _AGENT_ENV)
    if agent_config.get("hooksVolume") and "hooks-path" not in agent_config:
        set_env(container, "BUILDKITE_HOOKS_PATH", "/workspace/hooks")
    extra = list(agent_config.get("additional-hooks-paths", []))
    extra += [h["path"] for h in agent_config.get("additional-hooks", []) if h.get("path")]
    if extra:
        set_env(container, "BUILDKITE_ADDITIONAL_HOOKS_PATHS", ",".join(extra))
    agent_config_mounts(container, agent_config)
    for key, volume, default_dir, variable in (
        ("signing-jwks-file", "signingJWKSVolume", _SIGNING_DIR,
         "BUILDKITE_AGENT_SIGNING_JWKS_FILE"),
        ("verification-jwks-file", "verificationJWKSVolume", _VERIFY_DIR,
         "BUILDKITE_AGENT_VERIFICATION_JWKS_FILE"),
    ):  # fmt: skip
        file = agent_config.get(key)
        if agent_config.get(volume):
            file, where = _jwks(file, default_dir)
            add_mounts(container, [{"name": agent_config[volume]["name"], "mountPath": where}])
        if file:
            set_env(container, variable, file)
    verifies = ("verification-jwks-file", "verificationJWKSVolume", "verification-failure-behavior")
    if not any(agent_config.get(k) for k in verifies):  # the agent's own default is to block
        set_env(container, "BUILDKITE_AGENT_JOB_VERIFICATION_NO_SIGNATURE_BEHAVIOR", "warn")


def checkout_env(container: Container, params: Mapping[str, Any]) -> None:
    """The git flags and mirror settings of checkout params, given to the agent container."""
    _apply(container, params, _CHECKOUT_ENV)
    mirrors = dict(params.get("gitMirrors") or {})
    if mirrors.get("volume") and not mirrors.get("path"):
        mirrors["path"] = MIRRORS_PATH
    _apply(container, mirrors, _MIRRORS_ENV)
