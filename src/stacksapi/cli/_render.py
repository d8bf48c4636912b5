"""Printing results: JSON for scripts, rich tables for people, secrets masked in both.

A :class:`~stacksapi.Secret` is written as ``**********`` unless the command was given
``--show-secrets``; environment values whose name says they are secret, and any token-shaped
string, are masked the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click
import msgspec
from rich.console import Console
from rich.table import Table

from stacksapi._models import MASKED, Secret

from ._common import redact

__all__ = [
    "MASK",
    "cell",
    "console",
    "emit_json",
    "emit_kv",
    "emit_table",
    "mask_env",
    "mask_secret_fields",
    "to_plain",
]

MASK = MASKED
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE", re.IGNORECASE)
_SECRET_FIELD = re.compile(
    r'("[^"\\]*(?:TOKEN|SECRET|PASSWORD|PASSWD|PRIVATE)[^"\\]*"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr); plain text, 120 columns, when not a terminal."""
    out = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 120
    return out


def to_plain(obj: object, *, show_secrets: bool = False) -> Any:
    """``obj`` (models, lists, dicts) as JSON-ready builtins, secrets masked unless asked."""

    def enc_hook(value: Any) -> Any:
        if isinstance(value, Secret):
            return value.get_secret_value() if show_secrets else MASK
        raise NotImplementedError(f"cannot show {type(value).__name__}")

    return msgspec.to_builtins(obj, enc_hook=enc_hook)


def mask_env(env: Mapping[str, str], *, show_secrets: bool) -> dict[str, str]:
    """A job's environment with secret-looking values masked (unless ``show_secrets``)."""
    if show_secrets:
        return dict(env)
    return {k: (MASK if _SECRET_NAME.search(k) else redact(v)) for k, v in env.items()}


def mask_secret_fields(text: str) -> str:
    """JSON text with the string value of every secret-looking key masked (``-vv`` bodies)."""
    return _SECRET_FIELD.sub(lambda m: f'{m.group(1)}"{MASK}"', text)


def emit_json(obj: object, *, show_secrets: bool = False) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    text = json.dumps(to_plain(obj, show_secrets=show_secrets), indent=2, ensure_ascii=False)
    if not show_secrets:
        text = redact(text)
    click.echo(text)


def cell(value: object) -> str:
    """One value as table text: ``-`` for nothing, lists joined, token shapes masked."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, Secret):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value) or "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    return redact(str(value))


def emit_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    caption: str | None = None,
) -> None:
    """Print a rich table on stdout."""
    table = Table(title=title, caption=caption, caption_justify="left")
    for i, name in enumerate(columns):
        # The first column holds ids (uuids): never fold them, people copy them.
        table.add_column(name, overflow="fold", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    console().print(table)


def emit_kv(pairs: Mapping[str, object], *, title: str | None = None) -> None:
    """Print one object as a two-column field/value table."""
    emit_table(("field", "value"), pairs.items(), title=title)
