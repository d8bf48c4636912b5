"""agent-stack-k8s setting names in the ``[kubernetes]`` table: translated to ours, or explained.

A team moving from Buildkite's agent-stack-k8s brings its controller configuration (the Helm
chart's ``config:`` map). Every setting with the same meaning here is accepted under its own
name (``pod-spec-patch``, ``default-checkout-params``, ``image``, ``job-ttl``…) and translated to
the :class:`~._config.KubernetesConfig` field; durations may be Go-style strings (``"10m"``,
``"1h30m"``, ``"30s"``). Settings that belong to the ``[stack]`` table here, or that have no
meaning for this stack, are listed in :data:`STACK_SETTINGS` so the error can say where to go.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from stacksapi.stack import ConfigError

__all__ = ["ALIASES", "STACK_SETTINGS", "go_duration", "split_controller_config", "translate"]

_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def go_duration(key: str, value: object) -> float:
    """Seconds from a number of seconds or a Go duration string (``"1h30m"``, ``"500ms"``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if _PART.sub("", text) == "" or text == "0":
            return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
    raise ConfigError(key, f"must be seconds or a duration such as 30s, 10m, 1h (got {value!r})")


def _seconds(key: str, value: object) -> float:
    return go_duration(key, value)


def _whole_seconds(key: str, value: object) -> object:
    seconds = go_duration(key, value)
    return int(seconds) if seconds == int(seconds) else seconds


# their name -> (our field, converter of the value)
ALIASES: Mapping[str, tuple[str, Callable[[str, object], object] | None]] = {
    "image": ("agent_image", None),
    "job-prefix": ("job_name_prefix", None),
    "job-ttl": ("ttl_seconds_after_finished", _whole_seconds),
    "job-active-deadline-seconds": ("active_deadline_seconds", None),
    "image-pull-backoff-grace-period": ("image_pull_grace", _seconds),
    "pod-pending-timeout": ("pending_timeout", _seconds),
    "k8s-client-rate-limiter-qps": ("api_qps", None),
    "k8s-client-rate-limiter-burst": ("api_burst", None),
}

# their controller settings that are not about pods: where they live here (None: not needed)
STACK_SETTINGS: Mapping[str, str | None] = {
    "id": "stack.key",
    "queue": "stack.queue_key",
    "tags": "stack.tags",
    "max-in-flight": "stack.max_in_flight",
    "poll-interval": "stack.poll_interval",
    "pagination-page-size": "stack.page_size",
    "pagination-depth-limit": "stack.max_pages",
    "reservation-expiry-seconds": "stack.reservation_expiry_seconds",
    "prometheus-port": "stack.metrics_port",
    "enable-queue-pause": None,
    "job-creation-concurrency": None,
    "query-reset-interval": None,
    "work-queue-limit": None,
    "enable-completion-watcher": None,
    "job-cancel-checker-poll-interval": "stack.state_check_interval",
    "empty-job-grace-period": "kubernetes.pending_timeout",
    "http-timeout": None,
    "profiler-address": None,
    "log-format": None,
    "log-level": None,
    "log-http-payloads": None,
    "debug": None,
    "no-color": None,
    "graphql-endpoint": None,
    "integration-test-buildkite-token": None,
}


def translate(data: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    """``data`` with agent-stack-k8s names turned into field names of ``known``.

    Raises :class:`ConfigError` for a setting that belongs elsewhere, and for one given twice
    under two names (``image`` and ``agent_image``).
    """
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for name, given_value in data.items():
        key, value = str(name), given_value
        if key in STACK_SETTINGS:
            home = STACK_SETTINGS[key]
            where = f"set {home} instead" if home else "it has no equivalent in this stack"
            raise ConfigError(f"kubernetes.{key}", f"is not a pod setting here: {where}")
        field: str = key
        if key in ALIASES:
            field, convert = ALIASES[key]
            value = convert(f"kubernetes.{key}", value) if convert else value
        elif key.replace("-", "_") in known:
            field = key.replace("-", "_")
        if field in given:
            raise ConfigError(f"kubernetes.{key}", f"is the same setting as {given[field]}")
        given[field] = f"kubernetes.{key}"
        out[field] = value
    return out


_STACK_DURATIONS = frozenset({"poll-interval", "job-cancel-checker-poll-interval"})


def split_controller_config(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An agent-stack-k8s ``config:`` map as ``([stack] values, [kubernetes] table)``.

    For tools that take a team's values as they are (a Helm chart): the settings listed in
    :data:`STACK_SETTINGS` go to the ``[stack]`` keys they map to (``tags = ["queue=ci",
    "os=linux"]`` becomes ``queue_key`` and ``tags``; durations become seconds), those with no
    meaning here are dropped, the rest is the ``[kubernetes]`` table. With resource classes,
    ``resource_class = "*"`` joins the stack's tags so jobs naming a class are served (in
    agent-stack-k8s that tag never takes part in matching).
    """
    stack: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for name, value in data.items():
        key = str(name)
        home = STACK_SETTINGS.get(key, "")
        if home == "":
            table[key] = value
        elif home is not None and home.startswith("stack."):
            field = home.removeprefix("stack.")
            if key == "tags":
                tags = dict(str(t).split("=", 1) for t in value or [] if "=" in str(t))
                queue = tags.pop("queue", None)
                if queue is not None and "queue" not in data:
                    stack["queue_key"] = queue
                stack["tags"] = {**stack.get("tags", {}), **tags}
            elif key in _STACK_DURATIONS:
                stack[field] = go_duration(f"kubernetes.{key}", value)
            else:
                stack[field] = value
    if table.get("resource-classes") or table.get("resource_classes"):
        stack["tags"] = {"resource_class": "*", **stack.get("tags", {})}
    return stack, table
