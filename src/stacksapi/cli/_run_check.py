"""``stacksapi run --check``: what a run would use, and the dispatcher tried; nothing registered.

Printed: the effective base URL and where it comes from, whether a token is set (never the
token), the stack settings, the settings of the chosen dispatcher only (``[subprocess]`` for the
default one, the dispatcher's own table otherwise), then one line per thing the dispatcher's
check tried. Exit 0 when every check passed, 1 when one failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from ._common import DEFAULT_BASE_URL, EXIT_API_ERROR
from ._render import console, emit_kv, mask_env

__all__ = ["run_check"]


def run_check(config: Any, dispatcher: Any, *, token: str | None) -> int:
    """Print the effective settings and the dispatcher check; the exit code."""
    from stacksapi.stack import SubprocessDispatcher, check_dispatcher

    if config.base_url:
        base_url, source = config.base_url, "stack.base_url or --base-url"
    elif os.environ.get("STACKSAPI_BASE_URL"):
        base_url, source = os.environ["STACKSAPI_BASE_URL"], "STACKSAPI_BASE_URL"
    else:
        base_url, source = DEFAULT_BASE_URL, "Buildkite's"
    flat: dict[str, object] = {
        "base_url": f"{base_url} ({source})",
        "token": "set" if token else "not set (set BUILDKITE_CLUSTER_TOKEN or pass --token)",
    }
    flat.update(_settings(config))
    emit_kv(flat, title="stack configuration (valid)")
    chosen = dispatcher or SubprocessDispatcher(config.subprocess)
    results = asyncio.run(check_dispatcher(chosen))
    out = console()
    out.print(f"dispatcher check ({type(chosen).__name__}):", highlight=False, markup=False)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        out.print(f"  {mark} {result.what}", highlight=False, markup=False, soft_wrap=True)
    return 0 if all(r.ok for r in results) else EXIT_API_ERROR


def _settings(config: Any) -> dict[str, object]:
    flat: dict[str, object] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in {"subprocess", "extensions", "base_url"}:
            continue
        flat[f"stack.{f.name}"] = dict(value) if f.name in {"metadata", "tags"} else value
    if config.dispatcher is None:  # the default SubprocessDispatcher
        for g in dataclasses.fields(config.subprocess):
            value = getattr(config.subprocess, g.name)
            if g.name == "env":
                value = mask_env(value, show_secrets=False)
            flat[f"subprocess.{g.name}"] = value
    else:
        for table, values in config.extensions.items():
            for key, value in values.items():
                shown = mask_env(value, show_secrets=False) if isinstance(value, Mapping) else value
                flat[f"{table}.{key}"] = shown
    return flat
