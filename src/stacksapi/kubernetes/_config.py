"""``KubernetesConfig``: the ``[kubernetes]`` table of a stack config, checked when built.

Like :class:`~stacksapi.stack.StackConfig`, every value is checked up front so a bad file fails
at start with the key and the rule (``kubernetes.pending_timeout: must be a number from 1.0 to
86400.0 (got 0)``). The pod template, ``pod-spec-patch`` and the parameter blocks
(``default-checkout-params``, ``agent-config``, ``resource-classes``…) are checked field by field
against the Kubernetes models here too, so a misspelt field fails at load rather than at the
first job. :meth:`KubernetesConfig.from_mapping` also accepts agent-stack-k8s's setting names
(see ``_compat``). No token ever lives here: job acquisition tokens go into per-job Secrets; the
optional explicit agent token is referenced by Secret name only.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

from lightkube.models.core_v1 import PodSpec, Volume

from stacksapi.stack import ConfigError

from ._compat import translate
from ._params import (
    AGENT_CONFIG,
    CHECKOUT,
    COMMAND,
    METADATA,
    RESOURCE_CLASS,
    SIDECAR,
    Partial,
    parse,
)
from ._shape import ShapeError, check, quantity

__all__ = ["DEFAULT_AGENT_IMAGE", "PULL_POLICIES", "RESERVED_ENV", "KubernetesConfig"]

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_BLOCKS: Mapping[str, Mapping[str, Any]] = {
    "agent_config": AGENT_CONFIG,
    "default_checkout_params": CHECKOUT,
    "default_command_params": COMMAND,
    "default_sidecar_params": SIDECAR,
    "default_metadata": METADATA,
}

DEFAULT_AGENT_IMAGE = "buildkite/agent:3"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*)?$")
RESERVED_ENV = frozenset({"BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB"})


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(key: str, value: object, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise ConfigError(key, f"must be a number from {low} to {high} (got {_show(value)})")


def _integer(key: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"must be an integer from {low} to {high} (got {_show(value)})")


def _text(key: str, value: object, *, optional: bool = False, limit: int = 4096) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ConfigError(key, f"must be a string of 1 to {limit} characters (got {_show(value)})")


def _string_map(key: str, value: object, limit: int = 256) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or len(value) > limit:
        raise ConfigError(key, f"must be a table of at most {limit} strings (got {_show(value)})")
    for k, v in value.items():
        if not isinstance(k, str) or not k or not isinstance(v, str) or len(v) > 65536:
            raise ConfigError(f"{key}.{k}", "must be a string of at most 65536 characters")
    return MappingProxyType(dict(value))


@dataclasses.dataclass(frozen=True, kw_only=True, eq=True)
class KubernetesConfig:
    """Settings of :class:`~stacksapi.kubernetes.KubernetesDispatcher`. See docs/kubernetes.md.

    ``pod_template`` is YAML: a ``PodTemplateSpec`` (``metadata`` + ``spec``) or a bare
    ``PodSpec``, applied to every pod like ``pod_spec_patch``. Durations are seconds. The
    fields after ``events_quoted`` carry agent-stack-k8s's settings of the same names.
    """

    namespace: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    pod_template: str | None = None
    pod_template_file: str | None = None
    agent_image: str = DEFAULT_AGENT_IMAGE
    agent_container: str = "agent"
    agent_command: tuple[str, ...] = ("buildkite-agent", "start")
    agent_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    agent_token_secret: str | None = None
    job_name_prefix: str = "buildkite-"
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ttl_seconds_after_finished: int = 600
    active_deadline_seconds: int = 6 * 3600
    image_pull_grace: float = 120.0
    pending_timeout: float = 600.0
    check_interval: float = 1.0
    api_qps: float = 10.0
    api_burst: int = 20
    api_retries: int = 5
    events_quoted: int = 10
    create_concurrency: int = 8
    native_sidecars: bool | str = "auto"
    agent_token_secret_key: str = "token"  # noqa: S105 - a key name, not a token
    pod_spec_patch: Mapping[str, Any] | str | None = None
    agent_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_checkout_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_command_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_sidecar_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resource_classes: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    default_resource_class_name: str | None = None
    default_image_pull_policy: str | None = None
    default_image_check_pull_policy: str | None = None
    skip_image_check_containers: bool = False
    image_check_container_cpu_limit: str = "200m"
    image_check_container_memory_limit: str = "128Mi"
    default_termination_grace_period_seconds: int = 60
    workspace_volume: Mapping[str, Any] | None = None
    workspace_mount_sub_path_expr: str | None = None
    additional_redacted_vars: tuple[str, ...] = ()
    prohibit_kubernetes_plugin: bool = False
    allow_pod_spec_patch_unsafe_command_modification: bool = False

    def __post_init__(self) -> None:
        p = "kubernetes"
        if self.namespace is not None and not _DNS_LABEL.match(str(self.namespace)):
            raise ConfigError(
                f"{p}.namespace", f"must be a DNS label (got {_show(self.namespace)})"
            )
        for name in ("kubeconfig", "context", "pod_template", "pod_template_file"):
            _text(f"{p}.{name}", getattr(self, name), optional=True, limit=1_000_000)
        if self.pod_template is not None and self.pod_template_file is not None:
            raise ConfigError(
                f"{p}.pod_template", "give pod_template or pod_template_file, not both"
            )
        _text(f"{p}.agent_image", self.agent_image)
        if not _DNS_LABEL.match(str(self.agent_container)):
            raise ConfigError(f"{p}.agent_container", "must be a DNS label (lowercase, digits, -)")
        command: Any = self.agent_command
        if isinstance(command, str) or not isinstance(command, list | tuple) or not command:
            raise ConfigError(f"{p}.agent_command", "must be a non-empty list of strings")
        for word in command:
            _text(f"{p}.agent_command", word)
        object.__setattr__(self, "agent_command", tuple(command))
        object.__setattr__(self, "agent_env", _string_map(f"{p}.agent_env", self.agent_env))
        for name in self.agent_env:
            if name in RESERVED_ENV:
                raise ConfigError(f"{p}.agent_env.{name}", "is set by the dispatcher for each job")
        if self.agent_token_secret is not None and not _DNS_LABEL.match(self.agent_token_secret):
            raise ConfigError(f"{p}.agent_token_secret", "must be the name of a Secret")
        prefix = self.job_name_prefix
        if not isinstance(prefix, str) or len(prefix) > 20 or not _PREFIX.match(prefix):
            raise ConfigError(
                f"{p}.job_name_prefix", f"must be 1 to 20 of [a-z0-9-] (got {_show(prefix)})"
            )
        object.__setattr__(self, "labels", _string_map(f"{p}.labels", self.labels))
        object.__setattr__(self, "annotations", _string_map(f"{p}.annotations", self.annotations))
        _integer(f"{p}.ttl_seconds_after_finished", self.ttl_seconds_after_finished, 0, 30 * 86400)
        _integer(f"{p}.active_deadline_seconds", self.active_deadline_seconds, 1, 30 * 86400)
        _number(f"{p}.image_pull_grace", self.image_pull_grace, 0.0, 86400.0)
        _number(f"{p}.pending_timeout", self.pending_timeout, 0.1, 86400.0)
        _number(f"{p}.check_interval", self.check_interval, 0.05, 60.0)
        _number(f"{p}.api_qps", self.api_qps, 0.1, 10000.0)
        _integer(f"{p}.api_burst", self.api_burst, 1, 10000)
        _integer(f"{p}.api_retries", self.api_retries, 0, 20)
        _integer(f"{p}.events_quoted", self.events_quoted, 1, 100)
        _integer(f"{p}.create_concurrency", self.create_concurrency, 1, 256)
        if not isinstance(self.native_sidecars, bool) and self.native_sidecars != "auto":
            raise ConfigError(f"{p}.native_sidecars", f'must be true, false or "auto" '
                              f"(got {_show(self.native_sidecars)})")  # fmt: skip
        self.template()  # parse and type-check now: fail at load, not at the first job
        self._check_pod_settings(p)

    def _check_pod_settings(self, p: str) -> None:
        """The agent-stack-k8s settings: blocks checked field by field, enums, limits."""
        if not isinstance(self.agent_token_secret_key, str) or not self.agent_token_secret_key:
            raise ConfigError(f"{p}.agent_token_secret_key", "must be a non-empty string")
        patch = self.pod_spec_patch
        if isinstance(patch, str):
            patch = _parse_template(f"{p}.pod_spec_patch", patch, bare=True).get("spec", {})
        self._set(p, "pod_spec_patch", patch, Partial(PodSpec), optional=True)
        for name, schema in _BLOCKS.items():
            self._set(p, name, getattr(self, name), schema)
        classes = self.resource_classes
        if not isinstance(classes, Mapping):
            raise ConfigError(f"{p}.resource_classes", "must be a table of resource classes")
        parsed: dict[str, Any] = {}
        for name, value in classes.items():
            try:
                parsed[str(name)] = MappingProxyType(parse(value, RESOURCE_CLASS, ""))
            except ShapeError as exc:
                raise ConfigError(f"{p}.resource_classes.{name}.{exc.field}", exc.message) from None
        object.__setattr__(self, "resource_classes", MappingProxyType(parsed))
        default = self.default_resource_class_name
        if default is not None and default not in classes:
            raise ConfigError(f"{p}.default_resource_class_name", f"no resource class {default!r}")
        for key in ("default_image_pull_policy", "default_image_check_pull_policy"):
            value = getattr(self, key)
            if value is not None and value not in PULL_POLICIES:
                raise ConfigError(f"{p}.{key}", f"must be one of {', '.join(PULL_POLICIES)}")
        for key in ("skip_image_check_containers", "prohibit_kubernetes_plugin",
                    "allow_pod_spec_patch_unsafe_command_modification"):  # fmt: skip
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{p}.{key}", "must be true or false")
        for key in ("image_check_container_cpu_limit", "image_check_container_memory_limit"):
            try:
                quantity(getattr(self, key), key)
            except ShapeError as exc:
                raise ConfigError(f"{p}.{key}", exc.message) from None
            object.__setattr__(self, key, str(getattr(self, key)))
        _integer(f"{p}.default_termination_grace_period_seconds",
                 self.default_termination_grace_period_seconds, 0, 86400)  # fmt: skip
        self._set(p, "workspace_volume", self.workspace_volume, Volume, optional=True)
        _text(f"{p}.workspace_mount_sub_path_expr", self.workspace_mount_sub_path_expr,
              optional=True)  # fmt: skip
        names: Any = self.additional_redacted_vars
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"{p}.additional_redacted_vars", "must be a list of names")
        object.__setattr__(self, "additional_redacted_vars", tuple(names))

    def _set(self, p: str, name: str, value: Any, schema: Any, *, optional: bool = False) -> None:
        """Check one block (``schema``: a parameter schema or a model) and freeze it."""
        if value is None and optional:
            return
        try:
            if isinstance(schema, Mapping):
                checked = parse(value, schema, "")
            else:
                model = schema.model if isinstance(schema, Partial) else schema
                checked = check(value, model, "", partial=isinstance(schema, Partial))
        except ShapeError as exc:
            raise ConfigError(f"{p}.{name}.{exc.field}".rstrip("."), exc.message) from None
        object.__setattr__(self, name, MappingProxyType(checked))

    def template(self) -> dict[str, Any]:
        """The pod template as a ``PodTemplateSpec`` mapping (``{}`` when none is configured)."""
        if self.pod_template_file is not None:
            key = "kubernetes.pod_template_file"
            try:
                text = Path(self.pod_template_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(key, f"cannot read it: {exc.strerror or exc}") from None
        else:
            key, text = "kubernetes.pod_template", self.pod_template or ""
        return _parse_template(key, text)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Build from the parsed ``[kubernetes]`` table; unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise ConfigError("kubernetes", "must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        data = translate(data, known)
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(str(name), sorted(known), n=1)
                hint = f"; did you mean kubernetes.{close[0]}?" if close else ""
                raise ConfigError(f"kubernetes.{name}", f"unknown key{hint}")
        return cls(**dict(data))


def _parse_template(key: str, text: str, *, bare: bool = False) -> dict[str, Any]:
    if not text.strip():
        return {}
    import msgspec
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(key, f"is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(key, "must be a mapping (a PodTemplateSpec or a PodSpec)")
    if bare or ("spec" not in doc and "metadata" not in doc):
        doc = {"spec": doc}  # a bare PodSpec
        if bare:
            return doc
    spec = doc.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise ConfigError(key, "spec must be a mapping")
    spec.setdefault("containers", [])
    from lightkube.models.core_v1 import PodTemplateSpec

    try:
        PodTemplateSpec.from_dict(doc)
    except msgspec.ValidationError as exc:
        raise ConfigError(key, f"is not a valid pod template: {exc}") from None
    return doc
