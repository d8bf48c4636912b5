"""What the CLI logs to stderr: waits always, one line per API call with ``-v``, details ``-vv``.

Without ``-v`` only warnings show (a retry with its backoff, a rate-limit wait, a cropped
text), so a command never waits in silence. ``-v`` adds one line per API call (method, path,
status, attempt, time) and the stack runtime's steps; ``-vv`` adds every detail, request and
response bodies included. Everything passes through the client's redaction first, and a body's
secret-looking fields (``API_SECRET``, ``DB_PASSWORD``, …) are masked as ``jobs get`` masks them.

``-v`` is counted before or after the subcommand (``stacksapi -v jobs list`` and
``stacksapi jobs list -v`` are the same); the total lives in the root context's ``meta``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import click

from ._render import mask_secret_fields

__all__ = [
    "add_verbose_option",
    "events_printed",
    "hand_over",
    "setup",
    "start",
    "suspended",
    "verbosity",
]

_META_KEY = "stacksapi.verbosity"
_LOGGER = "stacksapi"


def verbosity() -> int:
    """How many ``-v`` the running command was given (0 outside a command)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return 0
    value = ctx.find_root().meta.get(_META_KEY, 0)
    return value if isinstance(value, int) else 0


def _is_api_call(record: logging.LogRecord) -> bool:
    """The client's one-line summary of an HTTP attempt (not a body dump)."""
    return getattr(record, "http_method", None) is not None


class _CliHandler(logging.Handler):
    """Writes to the current stderr (click's, so a test runner captures it) at a verbosity."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.level_of_detail = 0
        self.paused = False
        self.events_printed = False  # ``run`` prints each runtime event as a line of its own

    def filter(self, record: logging.LogRecord) -> bool:
        if self.paused:
            return False
        if self.events_printed and self.level_of_detail == 0 and hasattr(record, "event"):
            return False  # already a line on stdout: no warning says it twice
        if record.levelno >= logging.WARNING or self.level_of_detail >= 2:
            return True
        return self.level_of_detail == 1 and (
            record.levelno >= logging.INFO or _is_api_call(record)
        )

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if getattr(record, "payload", None) is not None:  # a body: as `jobs get` shows env
            message = mask_secret_fields(message)
        if self.level_of_detail < 2:
            message = " ".join(message.split())  # one line each, up to -v
        warning = "warning: " if record.levelno >= logging.WARNING else ""
        if self.level_of_detail == 0:
            return f"{warning}{message}"
        clock = logging.Formatter("%(asctime)s", "%H:%M:%S").format(record)
        if self.level_of_detail == 1:
            return f"{clock} {warning}{message}"
        return f"{clock}.{int(record.msecs):03d} {record.levelname:<7} {record.name}: {message}"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # a closed stderr must not break the command
            self.handleError(record)


def _handler() -> _CliHandler:
    logger = logging.getLogger(_LOGGER)
    for handler in logger.handlers:
        if isinstance(handler, _CliHandler):
            return handler
    handler = _CliHandler()
    logger.addHandler(handler)
    return handler


def start(level: int) -> None:
    """The group's ``-v`` count: the starting verbosity of this command line."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.find_root().meta[_META_KEY] = level
    setup(level)


def setup(level: int) -> None:
    """Show the ``stacksapi`` loggers on stderr at ``level`` (the number of ``-v``)."""
    handler = _handler()
    handler.level_of_detail = level
    handler.paused = False
    handler.events_printed = False
    logger = logging.getLogger(_LOGGER)
    # The client writes its per-call lines at DEBUG; nothing is formatted unless shown.
    logger.setLevel(logging.DEBUG if level else logging.NOTSET)
    # httpcore2's DEBUG trace prints raw response headers, unredacted: never shown.
    logging.getLogger("httpcore2").setLevel(logging.INFO)


def hand_over() -> None:
    """Leave logging to a handler configured elsewhere (``run --log-format``): no double lines."""
    logger = logging.getLogger(_LOGGER)
    logger.setLevel(logging.NOTSET)  # that handler's level decides, -v or not
    for handler in list(logger.handlers):
        if isinstance(handler, _CliHandler):
            logger.removeHandler(handler)


def events_printed() -> None:
    """The command prints the stack runtime's events itself: its event logs only with -v."""
    _handler().events_printed = True


@contextlib.contextmanager
def suspended() -> Iterator[None]:
    """Nothing from the CLI's handler meanwhile (the demo's live view tells the story)."""
    handler = _handler()
    handler.paused = True
    try:
        yield
    finally:
        handler.paused = False


def _count(ctx: click.Context, _param: click.Parameter, value: int) -> None:
    if value:
        root = ctx.find_root()
        root.meta[_META_KEY] = root.meta.get(_META_KEY, 0) + value
        setup(root.meta[_META_KEY])


def add_verbose_option(command: click.Command) -> None:
    """Give ``command`` (and every group and command under it) its own ``-v``/``--verbose``."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_verbose_option(sub)
    if command.context_settings.get("ignore_unknown_options"):
        return  # passes its arguments on unchanged (``emulator agent``)
    if any("--verbose" in p.opts for p in command.params):
        return
    command.params.append(
        click.Option(
            ["--verbose", "-v"],
            count=True,
            expose_value=False,
            is_eager=True,
            callback=_count,
            help="Log to stderr: -v one line per API call, -vv the details. Tokens redacted.",
        )
    )
