"""The ``kubernetes`` plugin of a step: found in the job's ``BUILDKITE_PLUGINS`` and checked.

Buildkite hands a job's plugins to the agent as JSON in ``BUILDKITE_PLUGINS``: a list of
one-entry mappings, plugin source to settings. A step that says ``plugins: [kubernetes: {...}]``
arrives as ``github.com/buildkite-plugins/kubernetes-buildkite-plugin``. This module finds that
entry and checks its settings (``podSpec``, ``podSpecPatch``, ``sidecars``, ``checkout``…) with
the same names and shapes agent-stack-k8s accepts. Anything malformed raises
:class:`PluginError` naming the field, so that job (and only that job) fails with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from lightkube.models.core_v1 import EnvFromSource, VolumeMount

from ._params import CHECKOUT, COMMAND, METADATA, PLUGIN_PODSPEC, SIDECAR, SIDECARS, parse
from ._shape import ShapeError, show

__all__ = [
    "PLUGIN",
    "PLUGINS_ENV",
    "PluginError",
    "PluginProhibited",
    "is_kubernetes_plugin",
    "kubernetes_plugin",
]

PLUGINS_ENV = "BUILDKITE_PLUGINS"
_SOURCE = re.compile(
    r"^(https?://|ssh://|git@)?(www\.)?github\.com[/:]buildkite-plugins/"
    r"kubernetes-buildkite-plugin(\.git)?(#.*)?$"
)
PLUGIN: Mapping[str, Any] = {
    "podSpec": PLUGIN_PODSPEC,
    "podSpecPatch": PLUGIN_PODSPEC,
    "podTemplate": str,
    "gitEnvFrom": list[EnvFromSource],
    "sidecars": SIDECARS,
    "metadata": METADATA,
    "extraVolumeMounts": list[VolumeMount],
    "checkout": CHECKOUT,
    "commandParams": COMMAND,
    "sidecarParams": SIDECAR,
    "jobActiveDeadlineSeconds": int,
}


class PluginError(ValueError):
    """The job's plugins cannot be used; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PluginProhibited(PluginError):
    """The step uses the ``kubernetes`` plugin on a stack that prohibits it."""


def is_kubernetes_plugin(source: str) -> bool:
    """Whether a plugin source names Buildkite's ``kubernetes`` plugin (any version pin)."""
    return source == "kubernetes" or bool(_SOURCE.match(source))


def kubernetes_plugin(env: Mapping[str, str], *, prohibited: bool = False) -> dict[str, Any] | None:
    """The checked settings of the step's ``kubernetes`` plugin, or ``None`` when it has none.

    Other plugins are left to the agent. Raises :class:`PluginError` when ``BUILDKITE_PLUGINS``
    is not a list of one-entry mappings, when the plugin is given twice, or when its settings
    are malformed (unknown or mistyped fields); :class:`PluginProhibited` (before looking at
    the settings) when ``prohibited`` and the step uses the plugin.
    """
    text = env.get(PLUGINS_ENV, "")
    if not text.strip():
        return None
    try:
        plugins = json.loads(text)
    except ValueError as exc:
        raise PluginError(PLUGINS_ENV, f"is not valid JSON ({exc})") from None
    except RecursionError:
        raise PluginError(PLUGINS_ENV, "is nested too deeply") from None
    if not isinstance(plugins, list):
        raise PluginError(PLUGINS_ENV, f"must be a list of plugins (got {show(plugins)})")
    found: dict[str, Any] | None = None
    for i, given in enumerate(plugins):
        plugin = {given: None} if isinstance(given, str) else given  # a plugin without settings
        if not isinstance(plugin, dict) or len(plugin) != 1:
            raise PluginError(
                f"{PLUGINS_ENV}[{i}]", f"must map one plugin to its settings (got {show(given)})"
            )
        ((source, settings),) = plugin.items()
        if not is_kubernetes_plugin(str(source)):
            continue
        if prohibited:
            raise PluginProhibited(
                "kubernetes", "this stack prohibits the kubernetes plugin, and the step uses it"
            )
        if found is not None:
            raise PluginError("kubernetes", "the plugin is given twice in one step")
        try:
            found = parse(settings, PLUGIN, "")
        except ShapeError as exc:  # a field of the settings, or the settings themselves
            raise PluginError(exc.field or "kubernetes", exc.message) from None
        except RecursionError:
            raise PluginError("kubernetes", "the settings are nested too deeply") from None
    if found is not None and "podTemplate" in found and "podSpec" not in found:
        raise PluginError(
            "podTemplate",
            "naming a PodTemplate object is not supported by this stack; "
            "put its spec in podSpec (or the stack's pod-spec-patch) instead",
        )
    return found
