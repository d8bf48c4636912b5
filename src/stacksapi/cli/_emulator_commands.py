"""``stacksapi emulator serve`` and ``stacksapi emulator agent``: the local Stacks API and agent.

``serve`` wraps :func:`stacksapi.emulator._serve.serve`: it prints where the emulator listens and
a ready-to-paste ``export`` line (the one place a token is printed, because that is its purpose),
then serves until SIGINT/SIGTERM and exits 0. ``agent`` hands its arguments to the emulated
agent unchanged, so a stack's agent command can be ``stacksapi emulator agent --acquire-job …``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from stacksapi.emulator import ServeInfo

from ._common import EXIT_API_ERROR, EXIT_USAGE, TOKEN_ENV, fail

__all__ = ["emulator"]

_ADMIN_TOKEN_ENV = "STACKSAPI_EMULATOR_ADMIN_TOKEN"  # noqa: S105 - a variable name
_WILDCARDS = ("0.0.0.0", "::")  # noqa: S104 - names, not an address to listen on


@click.group()
def emulator() -> None:
    """A local emulator of the Stacks API, and the emulated agent it runs jobs with.

    \b
    Examples:
      stacksapi emulator serve --port 8080 --jobs 50
      stacksapi emulator agent --acquire-job UUID   # what a stack launches per job
    """


@emulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True,
    help="Port to listen on (0: any free port).",
)  # fmt: skip
@click.option(
    "--token", "tokens", multiple=True, show_default=False, metavar="TOKEN",
    help="Accepted cluster token (repeatable; default: a random bkct_ token). Not read from "
    f"{TOKEN_ENV}, so a real token is never served or printed by accident.",
)  # fmt: skip
@click.option(
    "--jobs", type=click.IntRange(0, 1_000_000), default=0, show_default=True,
    help="Realistic jobs to schedule at start.",
)  # fmt: skip
@click.option(
    "--queue", "queues", multiple=True, metavar="KEY",
    help="A queue to create (repeatable; jobs are spread over them). Default: __default__.",
)  # fmt: skip
@click.option("--no-rate-limits", is_flag=True, help="Turn the documented rate limits off.")
@click.option("--seed", type=int, default=None, help="Seed for job uuids, jobs and faults.")
@click.option(
    "--faults", default=None, metavar="SPEC",
    help="Fault injection, e.g. '500=0.05,503=0.02,429=0.05,drop=0.01,latency=0-50ms'.",
)  # fmt: skip
@click.option(
    "--admin-token", envvar=_ADMIN_TOKEN_ENV, show_envvar=True, show_default=False,
    default=None, metavar="TOKEN", help="Token of the /_emulator/ admin API (default: random).",
)  # fmt: skip
@click.option(
    "--show-admin-token", is_flag=True,
    help="Print the admin token in full (it is masked otherwise).",
)  # fmt: skip
@click.option(
    "--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="warning", show_default=True, help="uvicorn's log level.",
)  # fmt: skip
def serve(  # noqa: PLR0917 - click passes options by name
    host: str,
    port: int,
    tokens: tuple[str, ...],
    jobs: int,
    queues: tuple[str, ...],
    no_rate_limits: bool,
    seed: int | None,
    faults: str | None,
    admin_token: str | None,
    show_admin_token: bool,
    log_level: str,
) -> None:
    """Serve an emulated Stacks API until Ctrl-C (SIGINT) or SIGTERM.

    Prints the base URL, the dashboard's address (a one-time login link) and an
    `export` line that points the CLI, a stack or Buildkite's own tools at it.

    \b
    Examples:
      stacksapi emulator serve
      stacksapi emulator serve --port 8080 --jobs 100 --queue linux --queue gpu
      stacksapi emulator serve --faults '500=0.05,429=0.05' --seed 1
      stacksapi emulator serve --no-rate-limits --token bkct_local_dev
    """
    from stacksapi.emulator._faults import parse_fault_spec
    from stacksapi.emulator._serve import serve as run_server

    fault_config = None
    if faults:
        try:
            fault_config = parse_fault_spec(faults, seed=seed or 0)
        except ValueError as exc:
            fail(f"--faults: {exc}", code=EXIT_USAGE)

    def on_ready(info: ServeInfo) -> None:
        em = info.emulator
        queue_lines = ", ".join(f"{q.key} ({q.scheduled_jobs} jobs)" for q in em.list_queues())
        bound = f"[{host}]" if ":" in host else host  # '::' reads as an address, not as ':::'
        everywhere = f" (bound to {bound}: every interface)" if host in _WILDCARDS else ""
        click.echo(f"stacksapi emulator listening on {info.base_url}{everywhere}")
        click.echo(f"  dashboard: {info.dashboard_login_url} (logs in once)")
        click.echo(f"  queues: {queue_lines}")
        click.echo(
            f"  rate limits: {'off' if no_rate_limits else 'on'}; "
            f"faults: {faults or 'off'}; admin API: {info.server.admin_url}"
        )
        click.echo(f"  {_admin_token_line(info, show_admin_token)}")
        click.echo("Point the CLI or a stack at it (this line holds the cluster token):")
        click.echo(info.export_line())
        click.echo("Press Ctrl-C to stop.")

    try:
        run_server(
            host=host,
            port=port,
            tokens=tokens,
            jobs=jobs,
            queues=queues,
            rate_limits=not no_rate_limits,
            seed=seed,
            faults=fault_config,
            on_ready=on_ready,
            admin_token=admin_token,
            log_level=log_level,
        )
    except ValueError as exc:
        fail(str(exc), code=EXIT_USAGE, secrets=(*tokens, admin_token))
    except OSError as exc:
        fail(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port",
            code=EXIT_API_ERROR,
        )
    click.echo("stacksapi emulator stopped", err=True)


def _admin_token_line(info: ServeInfo, show: bool) -> str:
    """Where the admin token comes from and how to see it; the token itself only when asked."""
    from stacksapi.emulator import mask_token

    token = info.admin_token.get_secret_value()
    source = click.get_current_context().get_parameter_source("admin_token")
    if source is click.core.ParameterSource.ENVIRONMENT:
        origin = f"from {_ADMIN_TOKEN_ENV}"
    elif source is click.core.ParameterSource.COMMANDLINE:
        origin = "from --admin-token"
    else:
        origin = f"random; set one with --admin-token or {_ADMIN_TOKEN_ENV}"
    if show:
        return f"admin token: {token} ({origin}; header 'Authorization: Token <admin token>')"
    return f"admin token: {mask_token(token)} ({origin}; --show-admin-token prints it)"


@emulator.command(
    "agent",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def agent(args: tuple[str, ...]) -> None:
    """The emulated buildkite-agent: acquire one job and run it (see --help).

    Reads BUILDKITE_AGENT_ACQUIRE_JOB, BUILDKITE_AGENT_TOKEN and BUILDKITE_AGENT_ENDPOINT
    (or --acquire-job, --token, --endpoint), like `buildkite-agent start --acquire-job`.

    \b
    Examples:
      BUILDKITE_AGENT_ENDPOINT=http://127.0.0.1:8080/v3 \\
        stacksapi emulator agent --acquire-job UUID
    """
    from stacksapi.emulator._agent import main as agent_main

    code: Any = agent_main(list(args))
    sys.exit(code)
