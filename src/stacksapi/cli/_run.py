"""``stacksapi run --config stack.toml``: run a stack in the foreground until SIGINT/SIGTERM.

The configuration comes from the TOML file, then ``STACKSAPI_STACK_*`` variables, then flags.
A bad file (TOML syntax, an unknown key, a wrong type or range) is one line and exit 2 before
anything is sent. A permanent API error stops the stack (it deregisters first) and exits 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from ._common import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    EXIT_USAGE,
    TOKEN_ENV,
    Subject,
    config_base_url_option,
    error_hint,
    fail,
    plain_http_refused,
    redact,
    require_token,
)
from ._job_ids import SHORT_ID
from ._render import console

__all__ = ["run"]


def _event_printer(verbose: bool) -> Any:
    out = console()
    quiet_kinds = {"polled", "renewed"}

    def on_event(event: Any) -> None:
        kind = str(event.kind)
        if kind in quiet_kinds and not verbose:
            return
        when = dt.datetime.fromtimestamp(event.time).strftime("%H:%M:%S")
        job = f" {job_label(event.job_uuid, event.data)}" if event.job_uuid else ""
        line = " ".join(redact(event.message).split())  # one line per event, never wrapped
        out.print(f"{when} {kind:<17}{job} {line}", highlight=False, markup=False, soft_wrap=True)

    return on_event


def job_label(uuid: str, data: Mapping[str, Any]) -> str:
    """A job as the event lines name it: short id, then pipeline/step when known."""
    names = "/".join(str(data[k]) for k in ("pipeline", "step") if data.get(k))
    return f"{uuid[:SHORT_ID]} {names}" if names else uuid[:SHORT_ID]


@click.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    help="TOML file with a [stack] table and an optional [subprocess] table.",
)  # fmt: skip
@click.option(
    "--token", envvar=TOKEN_ENV, show_envvar=True, show_default=False, default=None,
    metavar="TOKEN", help="Cluster token (bkct_…). Never read from the config file.",
)  # fmt: skip
@config_base_url_option
@click.option("--stack", "--key", "key", default=None, metavar="KEY", help="Override stack.key.")
@click.option("--queue", "queue_key", default=None, help="Override stack.queue_key.")
@click.option("--max-in-flight", type=int, default=None, help="Override stack.max_in_flight.")
@click.option(
    "--metrics-port", type=int, default=None,
    help="Serve /metrics, /healthz and /readyz on this port (0: any free port).",
)  # fmt: skip
@click.option(
    "--metrics-host", default=None, metavar="ADDRESS",
    help="Address the metrics and probes listen on (default 127.0.0.1; 0.0.0.0 in a pod).",
)  # fmt: skip
@click.option(
    "--agent-command", default=None, metavar="CMD",
    help="Override subprocess.command, e.g. 'buildkite-agent start --acquire-job {job_uuid}'.",
)  # fmt: skip
@click.option(
    "--allow-insecure-http", is_flag=True,
    help="Allow a plain http base URL off this machine (the token travels in clear).",
)  # fmt: skip
@click.option(
    "--drain", is_flag=True, default=None,
    help="A final stop: on SIGINT/SIGTERM wait up to shutdown_grace for agents, then tear the "
    "rest down (stack.on_shutdown = \"drain\"). Default: leave them to the next stack.",
)  # fmt: skip
@click.option(
    "--check", is_flag=True,
    help="Validate the configuration, print it, try the dispatcher (exit 1 if it fails), exit.",
)  # fmt: skip
@click.option("--all-events", is_flag=True, help="Also print polls and renewals.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default=None,
    help="Also log each step to stderr (INFO); json: one object a line with job_uuid and event.",
)  # fmt: skip
def run(  # noqa: PLR0917 - click passes options by name
    config_path: str,
    token: str | None,
    base_url: str | None,
    key: str | None,
    queue_key: str | None,
    max_in_flight: int | None,
    metrics_port: int | None,
    metrics_host: str | None,
    agent_command: str | None,
    allow_insecure_http: bool,
    drain: bool | None,
    check: bool,
    all_events: bool,
    log_format: str | None,
) -> None:
    """Run a stack: poll, reserve, dispatch agents, until Ctrl-C or SIGTERM.

    On SIGINT/SIGTERM the stack stops taking jobs and deregisters; agents still
    provisioning or running are left to the next stack started with the same key,
    which adopts them. With --drain (a final stop) it waits up to shutdown_grace for
    them, saying what it waits for, then tears the rest down; Ctrl-C again skips the
    wait. Exit 0 after a requested stop, 1 after a permanent API error, 2 for a bad
    configuration.

    \b
    Example stack.toml:
      [stack]
      key = "my-stack"
      queue_key = "linux"
      max_in_flight = 4
      tags = { os = "linux" }
      [subprocess]
      command = ["buildkite-agent", "start", "--acquire-job", "{job_uuid}"]

    \b
    Examples:
      stacksapi run --config stack.toml
      stacksapi run --config stack.toml --check
      stacksapi run --config stack.toml --drain
      stacksapi run --config stack.toml --max-in-flight 8 --metrics-port 9090
      stacksapi run --config stack.toml --log-format json 2> stack.log.jsonl
    """
    from stacksapi.stack import ConfigError, Dispatcher, StackConfig
    from stacksapi.stack import run_stack as run_stack_async
    from stacksapi.stack._entry import load_dispatcher

    dispatcher: Dispatcher | None = None
    try:
        config = StackConfig.from_toml(config_path).with_env(os.environ)
        overrides: dict[str, Any] = {
            "key": key,
            "queue_key": queue_key,
            "max_in_flight": max_in_flight,
            "metrics_port": metrics_port,
            "metrics_host": metrics_host,
            "base_url": base_url,
            "on_shutdown": "drain" if drain else None,
        }
        if agent_command is not None:
            overrides["subprocess"] = {"command": tuple(shlex.split(agent_command))}
        config = config.with_overrides(**overrides)
        if config.dispatcher:  # its own table ([kubernetes]) is checked when it is built
            dispatcher = load_dispatcher(config.dispatcher, config, key="stack.dispatcher")
    except (ConfigError, ValueError, TypeError) as exc:
        fail(f"bad configuration: {exc}", code=EXIT_USAGE, secrets=(token,))
    if check:
        from ._run_check import run_check

        code = run_check(config, dispatcher, token=token)
        if code:
            sys.exit(code)
        return
    token = require_token(token)
    from stacksapi._errors import RequestValidationError
    from stacksapi.stack._logging import configure_logging

    from ._logging import events_printed, hand_over

    if log_format is not None:
        hand_over()  # the runtime's own handler prints every line: none twice
        configure_logging("INFO", fmt=log_format)
    else:
        events_printed()

    try:
        with _work_dir(config, custom=dispatcher is not None) as config:
            result = asyncio.run(
                run_stack_async(
                    config,
                    dispatcher=dispatcher,
                    token=token,
                    on_event=_event_printer(all_events),
                    allow_insecure_http=allow_insecure_http,
                )
            )
    except RequestValidationError as exc:
        base = config.base_url or os.environ.get(BASE_URL_ENV)
        fail(
            plain_http_refused(exc, base) or f"bad setting: {exc}",
            code=EXIT_USAGE,
            secrets=(token,),
        )
    if not result.ok:
        base = config.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        subject = Subject(stack=config.key, queue=config.queue_key)
        hint = error_hint(result.error, base_url=base, subject=subject) if result.error else ""
        hint = f". {hint[:1].upper()}{hint[1:]}" if hint else ""
        fail(f"the stack stopped: {result.reason}{hint}", secrets=(token,))


@contextmanager
def _work_dir(config: Any, *, custom: bool) -> Iterator[Any]:
    """Say where the agents' work and logs go; make a work directory when none is configured
    and remove it at the end, unless agents were left running in it (any stop but a final one:
    ``stack.on_shutdown = "drain"``).
    """
    if custom:  # another dispatcher (Kubernetes, ...): no local work directory
        yield config
        return
    sub = config.subprocess
    made: Path | None = None
    if sub.work_dir is None:
        made = Path(tempfile.mkdtemp(prefix="stacksapi-run-"))
        config = config.with_overrides(subprocess={"work_dir": str(made)})
        sub = config.subprocess
    work = Path(sub.work_dir).resolve()
    keep = made is None or config.shutdown_policy != "drain"  # agents may outlive a "leave"
    out = console()
    if made is None:
        note = "kept"
    elif keep:
        note = "made for this run; kept: agents may outlive the stack"
    else:
        note = "made for this run; removed when the stack stops"
    out.print(f"work directory {work} ({note})", markup=False, highlight=False, soft_wrap=True)
    logs = Path(sub.log_dir).resolve() if sub.log_dir else work / "logs"
    where = "one file per job" + (
        "; removed with the work directory, set subprocess.log_dir to keep them"
        if not keep and not sub.log_dir
        else ""
    )
    out.print(f"agent logs {logs} ({where})", markup=False, highlight=False, soft_wrap=True)
    try:
        yield config
    finally:
        if made is not None and not keep:
            shutil.rmtree(made, ignore_errors=True)
