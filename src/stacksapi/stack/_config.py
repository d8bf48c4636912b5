"""Stack configuration: typed, frozen, loadable from TOML, overridable by flags and environment.

Every value is checked when the object is built, so a bad file fails at start with an error that
names the key and the rule (``stack.max_in_flight: must be an integer from 1 to 100000 (got 0)``)
instead of failing later inside the loop. Tokens never live here: the cluster token comes from
``BUILDKITE_CLUSTER_TOKEN`` and an explicit agent token from the variable named by
``subprocess.agent_token_env``.

When ``stack.dispatcher`` names a dispatcher, top-level tables other than ``[stack]`` and
``[subprocess]`` (``[kubernetes]``) are kept, as parsed, in ``StackConfig.extensions`` for it to
check; without one, or when the name is close to a known one (``[subproces]``), they are rejected.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self

from stacksapi._models import DEFAULT_QUEUE_KEY

__all__ = [
    "DEFAULT_AGENT_COMMAND",
    "SHUTDOWN_POLICIES",
    "ConfigError",
    "StackConfig",
    "SubprocessConfig",
]

DEFAULT_AGENT_COMMAND: tuple[str, ...] = ("buildkite-agent", "start", "--acquire-job", "{job_uuid}")
"""The agent command template: argv words, ``{job_uuid}`` and friends filled in, no shell."""

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range. ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_int(key: str, value: object, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(key, f"must be an integer from {low} to {high} (got {_describe(value)})")


def _check_float(key: str, value: object, low: float, high: float) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    try:
        number = float(value) if ok else math.nan  # type: ignore[arg-type]
    except OverflowError:  # an integer past 1e308 (TOML integers have no bound in tomllib)
        number = math.inf
    if not ok or not math.isfinite(number) or not low <= number <= high:
        raise ConfigError(key, f"must be a number from {low} to {high} (got {_describe(value)})")


def _check_bool(key: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false (got {_describe(value)})")


def _check_str(key: str, value: object, *, optional: bool = False, nonempty: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or (nonempty and not value):
        raise ConfigError(key, f"must be a non-empty string (got {_describe(value)})")


def _check_str_map(key: str, value: object, *, max_keys: int, max_key: int, max_value: int) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a table of strings (got {_describe(value)})")
    if len(value) > max_keys:
        raise ConfigError(key, f"at most {max_keys} entries (got {len(value)})")
    for k, v in value.items():
        if not isinstance(k, str) or not k or len(k) > max_key:
            raise ConfigError(key, f"keys must be strings of 1 to {max_key} characters ({k!r})")
        if not isinstance(v, str) or len(v) > max_value:
            raise ConfigError(f"{key}.{k}", f"must be a string of at most {max_value} characters")


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


SHUTDOWN_POLICIES = ("kill", "leave")
"""Deprecated ``subprocess.on_shutdown`` values: ``kill`` means ``stack.on_shutdown = "drain"``,
``leave`` means ``stack.on_shutdown = "leave"`` (used only when ``stack.on_shutdown`` is unset)."""

STACK_SHUTDOWN_POLICIES = ("leave", "drain")
"""``stack.on_shutdown``: ``leave`` (default) leaves work still provisioning or running to the next
stack started with the same key, which adopts it; ``drain`` (a final stop) waits up to
``shutdown_grace`` for agents to finish, then tears the rest down."""


@dataclasses.dataclass(frozen=True, kw_only=True, eq=True)
class SubprocessConfig:
    """Settings of :class:`~stacksapi.stack.SubprocessDispatcher` (the ``[subprocess]`` table).

    ``command`` is a list of argv words or one string split like a shell would (no shell runs).
    Placeholders: ``{job_uuid}``, ``{stack_key}``, ``{queue_key}``, ``{work_dir}``.
    """

    command: tuple[str, ...] = DEFAULT_AGENT_COMMAND
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inherit_env: bool = True
    work_dir: str | None = None
    log_dir: str | None = None
    agent_token_env: str | None = None
    kill_grace: float = 5.0
    output_tail_lines: int = 20
    on_shutdown: str | None = None

    def __post_init__(self) -> None:
        p = "subprocess"
        command: Any = self.command
        if isinstance(command, str):
            try:
                command = tuple(shlex.split(command))
            except ValueError as exc:
                raise ConfigError(f"{p}.command", f"cannot split the string: {exc}") from None
        if not isinstance(command, list | tuple) or not command:
            raise ConfigError(f"{p}.command", "must be a non-empty list of strings or a string")
        for word in command:
            _check_str(f"{p}.command", word, nonempty=False)
        _check_template(f"{p}.command", command)
        object.__setattr__(self, "command", tuple(command))
        _check_str_map(f"{p}.env", self.env, max_keys=1000, max_key=256, max_value=65536)
        for name in self.env:
            if name in {"BUILDKITE_AGENT_TOKEN", "BUILDKITE_AGENT_ACQUIRE_JOB"}:
                raise ConfigError(f"{p}.env.{name}", "is set by the dispatcher for each job")
        object.__setattr__(self, "env", _frozen_map(self.env))
        _check_bool(f"{p}.inherit_env", self.inherit_env)
        _check_str(f"{p}.work_dir", self.work_dir, optional=True)
        _check_str(f"{p}.log_dir", self.log_dir, optional=True)
        _check_str(f"{p}.agent_token_env", self.agent_token_env, optional=True)
        _check_float(f"{p}.kill_grace", self.kill_grace, 0.0, 3600.0)
        _check_int(f"{p}.output_tail_lines", self.output_tail_lines, 1, 1000)
        if self.on_shutdown is not None and self.on_shutdown not in SHUTDOWN_POLICIES:
            raise ConfigError(
                f"{p}.on_shutdown",
                f"must be one of {', '.join(SHUTDOWN_POLICIES)}"
                f" (got {_describe(self.on_shutdown)})",
            )


_TEMPLATE_FIELDS = {"job_uuid": "u", "stack_key": "k", "queue_key": "q", "work_dir": "w"}


def _check_template(key: str, words: Any) -> None:
    for word in words:
        try:
            word.format_map(_TEMPLATE_FIELDS)
        except (KeyError, IndexError, ValueError) as exc:
            known = ", ".join("{" + f + "}" for f in _TEMPLATE_FIELDS)
            raise ConfigError(key, f"bad placeholder in {word!r} ({exc}); known: {known}") from None


@dataclasses.dataclass(frozen=True, kw_only=True, eq=True)
class StackConfig:
    """Everything the :class:`~stacksapi.stack.StackRunner` loop needs (the ``[stack]`` table).

    Only ``key`` is required. Durations are seconds. See ``docs/stack.md`` for each key.
    """

    key: str
    queue_key: str = DEFAULT_QUEUE_KEY
    type: str = "custom"
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_in_flight: int = 10
    poll_interval: float = 1.0
    page_size: int = 100
    max_pages: int = 5
    reservation_expiry_seconds: int = 300
    renew_margin_seconds: float | None = None
    issue_tokens: bool = True
    token_lifetime_seconds: int | None = None
    state_check_interval: float = 2.0
    notifications: bool = True
    shutdown_grace: float = 30.0
    on_shutdown: str | None = None
    provisioning_timeout: float = 600.0
    dispatch_concurrency: int = 16
    fetch_job_details: bool = True
    rate_limit_fraction: float = 0.9
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    base_url: str | None = None
    dispatcher: str | None = None
    breaker_threshold: int = 3
    breaker_backoff_seconds: float = 5.0
    job_memory: int = 10_000
    subprocess: SubprocessConfig = dataclasses.field(default_factory=SubprocessConfig)
    extensions: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        p = "stack"
        _check_str(f"{p}.key", self.key)
        if len(self.key.encode()) > 80 or not set(self.key) <= _KEY_CHARS:
            raise ConfigError(f"{p}.key", f"must be 1 to 80 of [A-Za-z0-9_-] (got {self.key!r})")
        _check_str(f"{p}.queue_key", self.queue_key)
        _check_str(f"{p}.type", self.type)
        _check_str_map(f"{p}.metadata", self.metadata, max_keys=100, max_key=64, max_value=256)
        _check_str_map(f"{p}.tags", self.tags, max_keys=1000, max_key=256, max_value=1024)
        object.__setattr__(self, "metadata", _frozen_map(self.metadata))
        object.__setattr__(self, "tags", _frozen_map(self.tags))
        _check_int(f"{p}.max_in_flight", self.max_in_flight, 1, 100_000)
        _check_float(f"{p}.poll_interval", self.poll_interval, 0.01, 3600.0)
        _check_int(f"{p}.page_size", self.page_size, 1, 1000)
        _check_int(f"{p}.max_pages", self.max_pages, 1, 100)
        _check_int(f"{p}.reservation_expiry_seconds", self.reservation_expiry_seconds, 10, 3600)
        if self.renew_margin_seconds is not None:
            limit = self.reservation_expiry_seconds - 0.1
            _check_float(f"{p}.renew_margin_seconds", self.renew_margin_seconds, 1.0, limit)
        _check_bool(f"{p}.issue_tokens", self.issue_tokens)
        _check_int(
            f"{p}.token_lifetime_seconds", self.token_lifetime_seconds, 1, 3600, optional=True
        )
        _check_float(f"{p}.state_check_interval", self.state_check_interval, 0.05, 3600.0)
        _check_bool(f"{p}.notifications", self.notifications)
        _check_float(f"{p}.shutdown_grace", self.shutdown_grace, 0.0, 86400.0)
        if self.on_shutdown is not None and self.on_shutdown not in STACK_SHUTDOWN_POLICIES:
            raise ConfigError(
                f"{p}.on_shutdown",
                f"must be one of {', '.join(STACK_SHUTDOWN_POLICIES)}"
                f" (got {_describe(self.on_shutdown)})",
            )
        _check_float(f"{p}.provisioning_timeout", self.provisioning_timeout, 1.0, 86400.0)
        _check_int(f"{p}.dispatch_concurrency", self.dispatch_concurrency, 1, 10_000)
        _check_bool(f"{p}.fetch_job_details", self.fetch_job_details)
        _check_float(f"{p}.rate_limit_fraction", self.rate_limit_fraction, 0.05, 1.0)
        _check_int(f"{p}.metrics_port", self.metrics_port, 0, 65535, optional=True)
        _check_str(f"{p}.metrics_host", self.metrics_host)
        _check_str(f"{p}.base_url", self.base_url, optional=True)
        _check_str(f"{p}.dispatcher", self.dispatcher, optional=True)
        if self.dispatcher is not None and ":" not in self.dispatcher:
            raise ConfigError(f"{p}.dispatcher", f"expected MODULE:NAME (got {self.dispatcher!r})")
        _check_int(f"{p}.breaker_threshold", self.breaker_threshold, 0, 1000)
        _check_float(f"{p}.breaker_backoff_seconds", self.breaker_backoff_seconds, 0.1, 3600.0)
        _check_int(f"{p}.job_memory", self.job_memory, 100, 10_000_000)
        if not isinstance(self.subprocess, SubprocessConfig):
            raise ConfigError("subprocess", "must be a SubprocessConfig")
        if not isinstance(self.extensions, Mapping) or not all(
            isinstance(v, Mapping) for v in self.extensions.values()
        ):
            raise ConfigError("extensions", "must map table names to tables")
        object.__setattr__(self, "extensions", MappingProxyType(dict(self.extensions)))

    @property
    def shutdown_policy(self) -> str:
        """``stack.on_shutdown``, else what the deprecated ``subprocess.on_shutdown`` implies,
        else ``leave``."""
        if self.on_shutdown is not None:
            return self.on_shutdown
        return "drain" if self.subprocess.on_shutdown == "kill" else "leave"

    @property
    def renew_margin(self) -> float:
        """Seconds before expiry at which a reservation is renewed (default: a third of it)."""
        if self.renew_margin_seconds is not None:
            return float(self.renew_margin_seconds)
        return self.reservation_expiry_seconds / 3

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> Self:
        """Build from a parsed document with ``[stack]`` and optional ``[subprocess]`` tables.

        Other tables go to ``extensions`` (see the module docstring)."""
        stack_table = data.get("stack")
        with_dispatcher = isinstance(stack_table, Mapping) and bool(stack_table.get("dispatcher"))
        extensions = _extension_tables(data) if with_dispatcher else {}
        _reject_unknown(data, {"stack", "subprocess", *extensions}, prefix="", source=source)
        stack = data.get("stack")
        if not isinstance(stack, Mapping):
            raise ConfigError(
                "stack", f"a [stack] table with at least `key` is required ({source})"
            )
        known = _field_names(cls) - {"subprocess", "extensions"}
        _reject_unknown(stack, known, prefix="stack.", source=source)
        if "key" not in stack:
            raise ConfigError("stack.key", f"is required ({source})")
        sub = data.get("subprocess", {})
        if not isinstance(sub, Mapping):
            raise ConfigError("subprocess", "must be a table")
        _reject_unknown(sub, _field_names(SubprocessConfig), prefix="subprocess.", source=source)
        return cls(**dict(stack), subprocess=SubprocessConfig(**dict(sub)), extensions=extensions)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Self:
        """Load a TOML file; errors name the file and the key."""
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError("config", f"cannot read {file}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{file} is not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=str(file))

    def with_overrides(self, **changes: Any) -> Self:
        """A copy with some values replaced (``None`` values are ignored, as unset flags are).

        ``subprocess`` may be a :class:`SubprocessConfig` or a mapping of its fields to change.
        """
        changes = {k: v for k, v in changes.items() if v is not None}
        _reject_unknown(changes, _field_names(type(self)), prefix="stack.", source="overrides")
        sub = changes.get("subprocess")
        if isinstance(sub, Mapping):
            _reject_unknown(sub, _field_names(SubprocessConfig), prefix="subprocess.", source="")
            changes["subprocess"] = dataclasses.replace(self.subprocess, **dict(sub))
        return dataclasses.replace(self, **changes)

    def with_env(self, environ: Mapping[str, str], *, prefix: str = "STACKSAPI_STACK_") -> Self:
        """A copy with scalars from ``<prefix><KEY>`` variables (``..._MAX_IN_FLIGHT=4``)."""
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            raw = environ.get(prefix + f.name.upper())
            if raw is None or f.name in {"metadata", "tags", "subprocess", "extensions"}:
                continue
            changes[f.name] = _parse_scalar(f.name, raw, getattr(self, f.name), f.type)
        return self.with_overrides(**changes)


def _parse_scalar(name: str, raw: str, current: object, annotation: object) -> object:
    kind = str(annotation)
    try:
        if "bool" in kind:
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except ValueError:
        raise ConfigError(f"stack.{name}", f"cannot parse {raw!r} as {kind}") from None
    del current
    return raw


def _extension_tables(data: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Top-level tables for dispatchers: any table but the known ones and their near-typos."""
    known = ["stack", "subprocess"]
    extensions: dict[str, Mapping[str, Any]] = {}
    for name, value in data.items():
        if name in known or not isinstance(value, Mapping):
            continue
        if difflib.get_close_matches(str(name), known, n=1, cutoff=0.75):
            continue  # left for _reject_unknown: "did you mean ...?"
        extensions[str(name)] = value
    return extensions


def _field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


_NO_TOKENS_IN_FILES = (
    "tokens never go in a config file (files get copied, shared and committed): the cluster "
    "token comes from BUILDKITE_CLUSTER_TOKEN (or stacksapi run --token); an explicit agent "
    "token from the variable that subprocess.agent_token_env names"
)


def _reject_unknown(data: Mapping[str, Any], known: set[str], *, prefix: str, source: str) -> None:
    for name in data:
        if name not in known and "token" in str(name).lower():
            raise ConfigError(f"{prefix}{name}", _NO_TOKENS_IN_FILES)
        if name not in known:
            close = difflib.get_close_matches(str(name), sorted(known), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            where = f" in {source}" if source else ""
            raise ConfigError(f"{prefix}{name}", f"unknown key{where}{hint}")
