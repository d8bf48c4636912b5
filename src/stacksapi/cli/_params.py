"""Parameter types of the command line: ISO 8601 times and Buildkite's signal reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

__all__ = ["ISO_8601", "SIGNAL_REASONS", "IsoTime"]

SIGNAL_REASONS = (
    "agent_incompatible",
    "agent_refused",
    "agent_stop",
    "cancel",
    "process_run_error",
    "signature_rejected",
    "stack_error",
)
"""The signal reasons Buildkite documents for a job (its ``JobEventSignalReason`` values)."""


class IsoTime(click.ParamType[dt.datetime]):
    """Any ISO 8601 date-time: fractions of a second, ``Z`` or an offset, ``T`` or a space,
    the basic format (``20260304T050607Z``) too: what Python's ``fromisoformat`` reads. Without
    an offset it is UTC, so the value is always timezone-aware."""

    name = "ISO 8601 time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        text = str(value).strip()
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is not an ISO 8601 time (e.g. 2026-03-04T05:06:07.123Z or "
                "2026-03-04T05:06:07+02:00)",
                param,
                ctx,
            )
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


ISO_8601 = IsoTime()
