"""What every CLI command shares: connection options, the client factory, errors as one line.

Exit codes are the CLI's contract: 0 success, 1 the API (or the network) said no, 2 the command
line or a config file is wrong. Nothing printed here ever carries a token: every error line goes
through :func:`redact` first, and option help never shows a default or an environment value.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from stacksapi._errors import RequestValidationError, StacksAPIError
from stacksapi._models import MASKED
from stacksapi._redact import redact_tokens

from ._hints import BASE_URL_ENV, TOKEN_ENV, Subject, describe_error, error_hint

if TYPE_CHECKING:
    from stacksapi import Client

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "EXIT_API_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "TOKEN_ENV",
    "ApiOptions",
    "Subject",
    "allow_insecure_http_option",
    "api_options",
    "config_base_url_option",
    "describe_error",
    "env_flag",
    "error_hint",
    "fail",
    "handle_api_errors",
    "open_client",
    "plain_http_refused",
    "redact",
    "require_token",
]

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2

DEFAULT_BASE_URL = "https://agent.buildkite.com/v3/"


F = TypeVar("F", bound=Callable[..., Any])


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every known secret and every token-shaped word masked."""
    return redact_tokens(text, *secrets, mask=MASKED)


def fail(
    message: str, *, code: int = EXIT_API_ERROR, secrets: tuple[str | None, ...] = ()
) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    line = " ".join(redact(message, *secrets).split())
    click.echo(f"error: {line}", err=True)
    sys.exit(code)


@dataclass(frozen=True, slots=True)
class ApiOptions:
    """The connection options of one command: where to send, with which token, how to print."""

    token: str | None
    base_url: str
    output: str
    timeout: float
    max_attempts: int = 5
    allow_insecure_http: bool = False


allow_insecure_http_option = click.option(
    "--allow-insecure-http",
    is_flag=True,
    help="Allow a plain http --base-url off this machine (the token travels in clear).",
)
"""``--allow-insecure-http``: what :func:`plain_http_refused`'s line tells a user to pass."""


def _auto_output() -> str:
    """Tables for a person at a terminal, JSON for a pipe or a file."""
    return "table" if sys.stdout.isatty() else "json"


_API_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option(
        "--token",
        envvar=TOKEN_ENV,
        show_envvar=True,
        show_default=False,
        default=None,
        metavar="TOKEN",
        help="Cluster token (bkct_…). Prefer the environment variable: flags show up in `ps`.",
    ),
    click.option(
        "--base-url",
        envvar=BASE_URL_ENV,
        show_envvar=True,
        default=DEFAULT_BASE_URL,
        show_default=True,
        metavar="URL",
        help="Agent API base URL (an emulator's URL for local work).",
    ),
    click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "wide", "json"]),
        default=None,
        help="Output format (wide: a table with every column in full). "
        "Default: table on a terminal, json when piped.",
    ),
    click.option(
        "--max-attempts",
        type=click.IntRange(min=1, max=10),
        default=5,
        show_default=True,
        help="Tries per request (429, 5xx and connection errors are retried; 1: no retry).",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0.1, max=600),
        default=30.0,
        show_default=True,
        help="Seconds to wait for each HTTP request.",
    ),
    allow_insecure_http_option,
)


def api_options(func: F) -> F:
    """Add the connection and output options, passed to the command as one ``api`` argument."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        token: str | None,
        base_url: str,
        output: str | None,
        timeout: float,
        max_attempts: int,
        allow_insecure_http: bool,
        **kwargs: Any,
    ) -> Any:
        api = ApiOptions(
            token=token or None,
            base_url=base_url,
            output=output or _auto_output(),
            timeout=timeout,
            max_attempts=max_attempts,
            allow_insecure_http=allow_insecure_http,
        )
        return func(api, *args, **kwargs)

    decorated: Any = wrapper
    for option in reversed(_API_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def config_base_url_option(func: F) -> F:
    """``--base-url`` of the commands that read a stack config: it wins over the config's."""
    option = click.option(
        "--base-url", default=None, metavar="URL",
        help="API base URL; else the config's base_url, else STACKSAPI_BASE_URL, else Buildkite's.",
    )  # fmt: skip
    return option(func)


def require_token(token: str | None) -> str:
    """``token``, or exit 2 with one line saying where a token comes from."""
    if not token:
        fail(
            f"no token: pass --token or set {TOKEN_ENV} to a cluster token (bkct_…)",
            code=EXIT_USAGE,
        )
    return token


@contextmanager
def open_client(api: ApiOptions, subject: Subject | None = None) -> Iterator[Client]:
    """A :class:`~stacksapi.Client` for ``api``; API errors become one line and exit 1.

    ``subject`` (what the command named) lets a 404 say which thing the server did not know.
    """
    token = require_token(api.token)
    from stacksapi import Client, RetryPolicy
    from stacksapi._version import __version__

    from ._logging import verbosity

    try:
        client = Client(
            token,
            base_url=api.base_url,
            timeout=api.timeout,
            retry=RetryPolicy(max_attempts=api.max_attempts),
            user_agent_prefix=f"stacksapi-cli/{__version__}",
            log_http_payloads=verbosity() >= 2,
            allow_insecure_http=api.allow_insecure_http,
        )
    except ValueError as exc:
        message = plain_http_refused(exc, api.base_url) or f"bad connection settings: {exc}"
        fail(message, code=EXIT_USAGE, secrets=(api.token,))
    with client, handle_api_errors(api, subject):
        yield client


def plain_http_refused(exc: ValueError, base_url: str | None) -> str | None:
    """The line for a client that refused a plain http URL: it names the CLI's flag."""
    if not isinstance(exc, RequestValidationError) or exc.field != "base_url":
        return None
    if "plain http" not in exc.limit:
        return None
    return (
        f"--base-url {base_url} is plain http to a host that is not this machine: the token "
        "would travel in clear. Use https, or pass --allow-insecure-http on a network you trust"
    )


@contextmanager
def handle_api_errors(api: ApiOptions, subject: Subject | None = None) -> Iterator[None]:
    """Turn the client's exceptions into one line on stderr and the right exit code."""
    try:
        yield
    except RequestValidationError as exc:
        fail(f"{exc} (nothing was sent)", code=EXIT_USAGE, secrets=(api.token,))
    except StacksAPIError as exc:
        fail(describe_error(exc, base_url=api.base_url, subject=subject), secrets=(api.token,))


def env_flag(name: str) -> bool:
    """True when the environment variable ``name`` is set to something other than 0/empty."""
    return os.environ.get(name, "") not in ("", "0", "false", "no")
