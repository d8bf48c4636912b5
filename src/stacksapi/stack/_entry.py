"""Wiring a stack from a config file: used by ``python -m stacksapi.stack`` and the CLI.

The cluster token comes from ``BUILDKITE_CLUSTER_TOKEN`` (never the file), the base URL from the
config's ``base_url``, else ``STACKSAPI_BASE_URL``, else Buildkite's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from stacksapi._async_client import AsyncClient
from stacksapi._errors import StacksAPIError

from ._config import ConfigError, StackConfig
from ._dispatcher import Dispatcher
from ._events import EventCallback
from ._exit import StackExit
from ._logging import configure_logging
from ._runtime import Stack
from ._subprocess import SubprocessDispatcher

__all__ = ["load_dispatcher", "main", "run_stack"]


async def run_stack(
    config: StackConfig,
    *,
    dispatcher: Dispatcher | None = None,
    on_event: EventCallback | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    install_signal_handlers: bool = True,
) -> StackExit:
    """Open an :class:`AsyncClient`, run a :class:`Stack` until stopped, close the client.

    ``dispatcher`` defaults to the one named by ``config.dispatcher`` (``MODULE:NAME``, see
    :func:`load_dispatcher`), else a :class:`SubprocessDispatcher` built from ``config.subprocess``.
    With ``install_signal_handlers`` SIGINT and SIGTERM request a graceful stop.
    """
    env = os.environ if environ is None else environ
    base_url = config.base_url or env.get("STACKSAPI_BASE_URL") or None
    kwargs: dict[str, Any] = {"base_url": base_url} if base_url else {}
    if dispatcher is None and config.dispatcher:
        try:
            dispatcher = load_dispatcher(config.dispatcher, config, key="stack.dispatcher")
        except ConfigError as exc:
            return StackExit(f"bad configuration: {exc}", exc)
    async with AsyncClient(token or env.get("BUILDKITE_CLUSTER_TOKEN"), **kwargs) as client:
        stack = Stack(
            client, config, dispatcher or SubprocessDispatcher(config.subprocess), on_event=on_event
        )
        if install_signal_handlers:
            return await stack._run_with_signals()
        return await stack.run_async()


def load_dispatcher(spec: str, config: StackConfig, *, key: str = "--dispatcher") -> Dispatcher:
    """Import ``module:name`` and call it with ``config`` to build a dispatcher.

    ``key`` names the setting in errors (``--dispatcher`` or ``stack.dispatcher``)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(key, f"expected MODULE:NAME (got {spec!r})")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(key, f"cannot load {spec!r}: {exc}") from None
    dispatcher = factory(config)
    if not isinstance(dispatcher, Dispatcher):
        raise ConfigError(key, f"{spec!r} did not return a Dispatcher")
    return dispatcher


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stacksapi.stack --config FILE``: run until SIGINT/SIGTERM; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m stacksapi.stack", description=main.__doc__)
    parser.add_argument("--config", required=True, help="TOML file with [stack] and [subprocess]")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO: one line per job milestone",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one object a line, with job_uuid and event as fields (default text)",
    )
    parser.add_argument(
        "--dispatcher",
        metavar="MODULE:NAME",
        help="a callable taking the StackConfig and returning a Dispatcher "
        "(default: stack.dispatcher, else SubprocessDispatcher)",
    )
    parser.add_argument(
        "--drain",
        action="store_true",
        help='a final stop: tear down work still running at shutdown (stack.on_shutdown = "drain")',
    )
    args = parser.parse_args(argv)
    configure_logging(args.log_level, fmt=args.log_format)
    try:
        config = StackConfig.from_toml(args.config).with_env(os.environ)
        if args.drain:
            config = config.with_overrides(on_shutdown="drain")
        dispatcher = load_dispatcher(args.dispatcher, config) if args.dispatcher else None
        result = asyncio.run(run_stack(config, dispatcher=dispatcher))
    except (ConfigError, StacksAPIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    if not result.ok:
        print(f"error: {result.reason}", file=sys.stderr)
    return result.exit_code
