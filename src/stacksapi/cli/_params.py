"""Options and parameter types the commands share: the stack, the queue, job ids, times."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

from stacksapi._models import DEFAULT_QUEUE_KEY

__all__ = [
    "ISO_8601",
    "QUEUE_ENV",
    "SIGNAL_REASONS",
    "STACK_ENV",
    "IsoTime",
    "lookup_queue_option",
    "parse_iso_8601",
    "queue_option",
    "stack_named_option",
    "stack_option",
    "uuids_argument",
]

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
    """Any ISO 8601 date-time: fractions of a second (``.`` or ``,``), ``Z`` or an offset, ``T``
    or a space, in either case (RFC 3339 allows ``t`` and ``z``), the basic format
    (``20260304T050607Z``), an ordinal date (``2026-063``) and ``24:00`` (the end of a day).
    Without an offset it is UTC, so the value is always timezone-aware."""

    name = "ISO 8601 time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dt.datetime:
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        text = str(value).strip()
        try:
            parsed = parse_iso_8601(text)
        except ValueError:
            self.fail(
                f"{text!r} is not an ISO 8601 time (e.g. 2026-03-04T05:06:07.123Z or "
                "2026-03-04T05:06:07+02:00)",
                param,
                ctx,
            )
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


_ORDINAL = re.compile(r"^(\d{4})-?(\d{3})(?=$|T| )")
_END_OF_DAY = re.compile(r"(?<=[T ])24(?::?00(?::?00(?:[.,]0+)?)?)?(?=$|[Z+-])")


def parse_iso_8601(text: str) -> dt.datetime:
    """``text`` as a datetime: what ``fromisoformat`` reads, plus the ISO 8601 forms it does not
    (lower-case ``t``/``z``, ordinal dates, ``24:00``). ``ValueError`` when it is none of them."""
    text = text.upper()
    if ordinal := _ORDINAL.match(text):
        year, day = int(ordinal[1]), int(ordinal[2])
        date = dt.date(year, 1, 1) + dt.timedelta(days=day - 1)
        if date.year != year:  # day 0, or 366 of a common year
            raise ValueError(f"day {day} of {year}")
        text = date.isoformat() + text[ordinal.end() :]
    text, end_of_day = _END_OF_DAY.subn("00:00:00", text)
    parsed = dt.datetime.fromisoformat(text)
    return parsed + dt.timedelta(days=1) if end_of_day else parsed


ISO_8601 = IsoTime()

STACK_ENV = "STACKSAPI_STACK_KEY"
QUEUE_ENV = "STACKSAPI_QUEUE_KEY"

stack_option = click.option(
    "--stack",
    "stack_key",
    envvar=STACK_ENV,
    show_envvar=True,
    required=True,
    metavar="KEY",
    help="The stack's key, as registered.",
)
queue_option = click.option(
    "--queue",
    "queue_key",
    envvar=QUEUE_ENV,
    show_envvar=True,
    default=DEFAULT_QUEUE_KEY,
    show_default=True,
    metavar="KEY",
    help="The self-hosted queue (__default__ is the cluster's default queue).",
)
stack_named_option = click.option(
    "--stack",
    "stack_option",
    envvar=STACK_ENV,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="The stack's key (or give it as the KEY argument).",
)
uuids_argument = click.argument("job_uuids", nargs=-1, required=True, metavar="JOB_ID...")
lookup_queue_option = click.option(
    "--queue",
    "lookup_queue",
    envvar=QUEUE_ENV,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="Queue whose scheduled jobs short ids are looked up in "
    "(default: the one this stack was last listed with here, else __default__).",
)
