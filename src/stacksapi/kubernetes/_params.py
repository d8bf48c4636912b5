"""The parameter blocks shared by the ``[kubernetes]`` table and a step's ``kubernetes`` plugin.

Checkout, command and sidecar parameters, pod metadata, resource classes and the agent
configuration have the same names and shapes as in Buildkite's agent-stack-k8s (camelCase inside
the blocks, kebab-case in ``agent-config``), so a team's existing values and pipelines carry
over. Each block is described by a *schema* (field name to type, or to a nested schema) and
parsed by :func:`parse` into a plain ``dict`` after a strict check: an unknown or mistyped
field raises :class:`~._shape.ShapeError` naming it.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from lightkube.models.core_v1 import (
    Container,
    EnvFromSource,
    PodSpec,
    ResourceRequirements,
    SecretVolumeSource,
    Volume,
    VolumeMount,
)

from ._shape import ShapeError, check, check_labels, show

__all__ = [
    "AGENT_CONFIG",
    "CHECKOUT",
    "COMMAND",
    "INTERPOSERS",
    "METADATA",
    "PLUGIN_PODSPEC",
    "RESOURCE_CLASS",
    "SIDECAR",
    "SIDECARS",
    "Partial",
    "last_given",
    "parse",
]


@dataclasses.dataclass(frozen=True)
class Partial:
    """A model checked as a patch (or a spec to be completed): required fields may lack."""

    model: Any
    many: bool = False  # a list of them


INTERPOSERS = ("buildkite", "vector", "legacy")

CHECKOUT: Mapping[str, Any] = {
    "skip": bool,
    "checkoutFlags": str,
    "cleanFlags": str,
    "cloneFlags": str,
    "fetchFlags": str,
    "noSubmodules": bool,
    "submoduleCloneConfig": list[str],
    "gitMirrors": {
        "path": str,
        "volume": Volume,
        "cloneFlags": str,
        "lockTimeout": int,
        "skipUpdate": bool,
    },
    "gitCredentialsSecret": SecretVolumeSource,
    "envFrom": list[EnvFromSource],
    "extraVolumeMounts": list[VolumeMount],
}
COMMAND: Mapping[str, Any] = {
    "interposer": str,
    "envFrom": list[EnvFromSource],
    "extraVolumeMounts": list[VolumeMount],
}
SIDECAR: Mapping[str, Any] = {
    "envFrom": list[EnvFromSource],
    "extraVolumeMounts": list[VolumeMount],
}
METADATA: Mapping[str, Any] = {"labels": dict[str, str], "annotations": dict[str, str]}
RESOURCE_CLASS: Mapping[str, Any] = {
    "resource": ResourceRequirements,
    "podResource": ResourceRequirements,
    "nodeSelector": dict[str, str],
}
AGENT_CONFIG: Mapping[str, Any] = {
    "endpoint": str,
    "no-http2": bool,
    "experiment": list[str],
    "shell": str,
    "no-color": bool,
    "strict-single-hooks": bool,
    "no-multipart-artifact-upload": bool,
    "trace-context-encoding": str,
    "tracing-backend": str,
    "tracing-service-name": str,
    "tracing-propagate-traceparent": bool,
    "disable-warnings-for": list[str],
    "debug-signing": bool,
    "git-skip-fetch-existing-commits": bool,
    "container-start-timeout": str | int,
    "no-pty": bool,
    "no-command-eval": bool,
    "no-local-hooks": bool,
    "no-plugins": bool,
    "plugin-validation": bool,
    "signing-jwks-file": str,
    "signing-jwks-key-id": str,
    "signingJWKSVolume": Volume,
    "hooks-path": str,
    "hooksVolume": Volume,
    "additional-hooks-paths": list[str],
    "additional-hooks": list[dict[str, Any]],
    "plugins-path": str,
    "pluginsVolume": Volume,
    "verification-jwks-file": str,
    "verification-failure-behavior": str,
    "verificationJWKSVolume": Volume,
}
PLUGIN_PODSPEC = Partial(PodSpec)
SIDECARS = Partial(Container, many=True)  # names are given when missing


def last_given(blocks: Sequence[Mapping[str, Any]], key: str, default: Any = None) -> Any:
    """``key`` of the last block that gives it (blocks in order: the stack's, then the step's)."""
    return next((b[key] for b in reversed(blocks) if b.get(key) not in (None, "")), default)


def _field(value: Any, tp: Any, path: str) -> Any:
    if isinstance(tp, Mapping):
        return parse(value, tp, path)
    if isinstance(tp, Partial):
        return check(value, list[tp.model] if tp.many else tp.model, path, partial=True)
    return check(value, tp, path)


def parse(value: Any, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``value`` checked against ``schema``; ``None`` is an empty block."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ShapeError(path, f"must be a mapping (got {show(value)})")
    out: dict[str, Any] = {}
    for key, element in value.items():
        where = f"{path}.{key}" if path else str(key)
        tp = schema.get(key) if isinstance(key, str) else None
        if tp is None:
            close = difflib.get_close_matches(str(key), sorted(schema), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ShapeError(where, f"unknown field{hint}")
        if element is None:
            continue
        out[key] = _field(element, tp, where)
    prefix = f"{path}." if path else ""
    if schema is METADATA and "labels" in out:
        check_labels(out["labels"], f"{prefix}labels")
    if "interposer" in out and out["interposer"] not in ("", *INTERPOSERS):
        raise ShapeError(f"{prefix}interposer", f"must be one of {', '.join(INTERPOSERS)}")
    for i, hook in enumerate(out.get("additional-hooks", [])):
        parse(hook, {"path": str, "volume": Volume}, f"{prefix}additional-hooks[{i}]")
    return out
