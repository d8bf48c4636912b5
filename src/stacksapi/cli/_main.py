"""The ``stacksapi`` click group: wires the commands together and owns the exit codes.

Any exception that escapes a command becomes one line on stderr (exit 1; exit 2 for an argument
the client refused before sending anything), never a traceback;
set ``STACKSAPI_DEBUG=1`` to see the traceback when reporting a bug.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from stacksapi._errors import RequestValidationError, StacksAPIError
from stacksapi._extras import missing_extra
from stacksapi._version import __version__

from . import CLI_EXTRAS
from ._api_commands import deregister, register, token
from ._common import EXIT_API_ERROR, EXIT_USAGE, env_flag, redact
from ._demo import demo
from ._emulator_commands import emulator
from ._job_commands import finish, jobs, notify, reserve, tokens
from ._kubernetes import kubernetes
from ._logging import add_verbose_option, start
from ._run import run

__all__ = ["cli", "main"]


# A group run without a command shows its help (click >= 8.2 raises this for it).
_NoArgsIsHelp: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_NeverRaised", (click.UsageError,), {})
)


class _Group(click.Group):
    """A group whose errors print one redacted line: usage errors exit 2, the rest exit 1."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except _NoArgsIsHelp as exc:
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            _one_line(f"{exc.format_message().rstrip('.')}{where}")
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            _one_line(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_API_ERROR)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except RequestValidationError as exc:  # a bad argument, caught before sending: usage
            if env_flag("STACKSAPI_DEBUG"):
                raise
            _one_line(f"{exc} (nothing was sent)")
            ctx.exit(EXIT_USAGE)
        except StacksAPIError as exc:
            if env_flag("STACKSAPI_DEBUG"):
                raise
            _one_line(str(exc))
            ctx.exit(EXIT_API_ERROR)
        except Exception as exc:
            if env_flag("STACKSAPI_DEBUG"):
                raise
            if isinstance(exc, ModuleNotFoundError) and (
                missing := missing_extra(exc, "this command", CLI_EXTRAS)
            ):
                _one_line(str(missing))
                ctx.exit(EXIT_USAGE)
            message = " ".join(str(exc).split()) or type(exc).__name__
            click.echo(
                f"error: unexpected {type(exc).__name__}: {redact(message)} "
                "(set STACKSAPI_DEBUG=1 for a traceback and please report it)",
                err=True,
            )
            ctx.exit(EXIT_API_ERROR)


def _one_line(message: str) -> None:
    click.echo(f"error: {redact(' '.join(message.split()))}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="stacksapi")
@click.option(
    "--verbose",
    "-v",
    count=True,
    help="Log to stderr: -v one line per API call, -vv the details (also after the command).",
)
def cli(verbose: int) -> None:
    """Work with Buildkite's Stacks API: operate a stack, run one, or try it all locally.

    \b
    Examples:
      stacksapi demo                                 # the whole system, locally, in under a minute
      stacksapi emulator serve --port 8080           # a local Stacks API to point tools at
      export BUILDKITE_CLUSTER_TOKEN=bkct_...        # then, against Buildkite or the emulator:
      stacksapi register my-stack --queue linux
      stacksapi jobs list --stack my-stack --queue linux
      stacksapi run --config stack.toml

    Exit codes: 0 success, 1 API or network error, 2 usage or configuration error.
    """
    start(verbose)


for _command in (
    register,
    deregister,
    jobs,
    reserve,
    tokens,
    finish,
    notify,
    token,
    run,
    demo,
    emulator,
    kubernetes,
):
    cli.add_command(_command)
add_verbose_option(cli)


def main() -> None:
    """Console-script entry point (``stacksapi``)."""
    cli(prog_name="stacksapi")
