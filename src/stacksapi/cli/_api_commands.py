"""One command per Stacks API endpoint, for operators and scripts.

Each command is a thin call on :class:`~stacksapi.Client`: arguments in, the model out as a table
or JSON. Limits are checked by the client before anything is sent (exit 2, naming the field).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from stacksapi._models import DEFAULT_QUEUE_KEY, StackNotification, StackType
from stacksapi._validate import crop_notification_detail

if TYPE_CHECKING:
    from stacksapi import Client

from ._common import ApiOptions, Subject, api_options, fail, open_client
from ._job_ids import JobIds
from ._params import ISO_8601, SIGNAL_REASONS
from ._render import emit_json, emit_kv, emit_table, mask_env, to_plain

__all__ = [
    "deregister",
    "finish",
    "jobs",
    "notify",
    "register",
    "reserve",
    "token",
    "tokens",
]

_STACK_ENV = "STACKSAPI_STACK_KEY"
_QUEUE_ENV = "STACKSAPI_QUEUE_KEY"

_stack_option = click.option(
    "--stack",
    "stack_key",
    envvar=_STACK_ENV,
    show_envvar=True,
    required=True,
    metavar="KEY",
    help="The stack's key, as registered.",
)
_queue_option = click.option(
    "--queue",
    "queue_key",
    envvar=_QUEUE_ENV,
    show_envvar=True,
    default=DEFAULT_QUEUE_KEY,
    show_default=True,
    metavar="KEY",
    help="The self-hosted queue (__default__ is the cluster's default queue).",
)
_stack_named_option = click.option(
    "--stack",
    "stack_option",
    envvar=_STACK_ENV,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="The stack's key (or give it as the KEY argument).",
)
_uuids_argument = click.argument("job_uuids", nargs=-1, required=True, metavar="JOB_ID...")
_lookup_queue_option = click.option(
    "--queue",
    "lookup_queue",
    envvar=_QUEUE_ENV,
    show_envvar=True,
    default=None,
    metavar="KEY",
    help="Queue whose scheduled jobs short ids are looked up in "
    "(default: the one this stack was last listed with here, else __default__).",
)


def _full_ids(
    client: Client, api: ApiOptions, stack_key: str, refs: Sequence[str], queue: str | None
) -> list[str]:
    """``refs`` with short job ids (the start of a uuid) replaced by the full uuids."""
    return JobIds(api.base_url, stack_key).resolve(client, refs, queue)


def _parse_metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--metadata")
        metadata[key] = value
    return metadata


@click.command()
@_queue_option
@click.option(
    "--type",
    "stack_type",
    type=click.Choice([t.value for t in StackType]),
    default=StackType.CUSTOM.value,
    show_default=True,
    help="Stack type; third-party stacks are custom.",
)
@click.option("--metadata", "-m", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@_stack_named_option
@click.argument("key", required=False)
@api_options
def register(  # noqa: PLR0917 - click passes options positionally by name
    api: ApiOptions,
    key: str | None,
    stack_option: str | None,
    queue_key: str,
    stack_type: str,
    metadata: tuple[str, ...],
) -> None:
    """Register (or update) the stack KEY (or --stack KEY) for a queue. Idempotent.

    \b
    Examples:
      stacksapi register my-stack --queue linux -m region=eu -m owner=ci
      stacksapi register --stack my-stack --queue linux --output json
    """
    key = _one_stack_key(key, stack_option)
    meta = _parse_metadata(metadata)
    with open_client(api, Subject(stack=key, queue=queue_key)) as client:
        stack = client.register_stack(key, queue_key=queue_key, type=stack_type, metadata=meta)
    if api.output == "json":
        emit_json(stack)
    else:
        emit_kv(to_plain(stack), title=f"stack {stack.key}")


@click.command()
@_stack_named_option
@click.argument("key", required=False)
@api_options
def deregister(api: ApiOptions, key: str | None, stack_option: str | None) -> None:
    """Deregister the stack KEY (or --stack KEY), freeing its slot in the stack limit.

    \b
    Examples:
      stacksapi deregister my-stack
      stacksapi deregister --stack my-stack
    """
    key = _one_stack_key(key, stack_option)
    with open_client(api, Subject(stack=key)) as client:
        client.deregister_stack(key)
    if api.output == "json":
        emit_json({"deregistered": key})
    else:
        click.echo(f"deregistered stack {key}")


def _one_stack_key(positional: str | None, option: str | None) -> str:
    """The stack named by the KEY argument or ``--stack`` (or its variable), given once."""
    ctx = click.get_current_context()
    from_env = ctx.get_parameter_source("stack_option") is click.core.ParameterSource.ENVIRONMENT
    if positional and option and positional != option and not from_env:
        raise click.UsageError(
            f"two stack keys: KEY {positional!r} and --stack {option!r}; give one", ctx
        )
    key = positional or option
    if not key:
        raise click.UsageError(f"which stack? pass --stack KEY (or KEY, or set {_STACK_ENV})", ctx)
    return key


@click.group()
def jobs() -> None:
    """Look at jobs: scheduled ones, one job's command and env, and job states."""


@jobs.command("list")
@_stack_option
@_queue_option
@click.option("--limit", type=int, default=None, help="Jobs per page (1..1000).")
@click.option("--after", default=None, metavar="CURSOR", help="Start after this page cursor.")
@click.option(
    "--all", "all_pages", is_flag=True, help="Follow cursors through every page (bounded)."
)
@click.option(
    "--max-pages", type=click.IntRange(min=1), default=100, show_default=True, help="With --all."
)
@api_options
def jobs_list(  # noqa: PLR0917 - click passes options positionally by name
    api: ApiOptions,
    stack_key: str,
    queue_key: str,
    limit: int | None,
    after: str | None,
    all_pages: bool,
    max_pages: int,
) -> None:
    """List jobs scheduled for the stack's queue, oldest first.

    \b
    Examples:
      stacksapi jobs list --stack my-stack --queue linux
      stacksapi jobs list --stack my-stack --limit 100 --after CURSOR
      stacksapi jobs list --stack my-stack --all --output json | jq '.jobs[].id'
    """
    with open_client(api, Subject(stack=stack_key)) as client:
        page = client.list_scheduled_jobs(stack_key, queue_key=queue_key, limit=limit, after=after)
        found = list(page.jobs)
        pages = 1
        while all_pages and page.page_info.has_next_page and pages < max_pages:
            page = client.list_scheduled_jobs(
                stack_key, queue_key=queue_key, limit=limit, after=page.page_info.end_cursor
            )
            found.extend(page.jobs)
            pages += 1
    result = {
        "jobs": found,
        "page_info": page.page_info,
        "cluster_queue": page.cluster_queue,
    }
    if api.output == "json":
        emit_json(result)
        return
    paused = "PAUSED" if page.cluster_queue.dispatch_paused else "running"
    more = (
        f"; next page: --after {page.page_info.end_cursor}" if page.page_info.has_next_page else ""
    )
    show_runnable = any(j.runnable_at is not None for j in found)
    columns = ["job", "prio", "pipeline", "branch", "step", "rules", "scheduled"]
    if show_runnable:
        columns.append("runnable")
    rows = []
    for j in found:
        build = f" #{j.build.number}" if j.build.number is not None else ""
        row: list[object] = [
            j.id,
            j.priority,
            f"{j.pipeline.slug or '-'}{build}",
            j.build.branch,
            j.step.key,
            j.agent_query_rules,
            _clock_time(j.scheduled_at),
        ]
        if show_runnable:
            row.append(_clock_time(j.runnable_at))
        rows.append(row)
    emit_table(
        columns,
        rows,
        title=f"scheduled jobs for {stack_key} (queue {queue_key})",
        caption=f"{len(found)} job(s); dispatch {paused}{more}",
    )


def _clock_time(value: dt.datetime | None) -> str | None:
    """A timestamp as local wall-clock time (the date when it is not today)."""
    if value is None:
        return None
    local = value.astimezone()
    if local.date() == dt.datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M:%S")


@jobs.command("get")
@_stack_option
@_lookup_queue_option
@click.option("--show-secrets", is_flag=True, help="Show secret-looking env values unmasked.")
@click.argument("job_uuid", metavar="JOB_ID")
@api_options
def jobs_get(
    api: ApiOptions, stack_key: str, lookup_queue: str | None, job_uuid: str, show_secrets: bool
) -> None:
    """Show a job's command and environment (secret-looking values masked).

    JOB_ID is a job uuid or its short id from `jobs list`.

    \b
    Examples:
      stacksapi jobs get --stack my-stack 0190f7d2-...
      stacksapi jobs get --stack my-stack 0190f7d2
    """
    with open_client(api, Subject(stack=stack_key, jobs=1)) as client:
        (job_uuid,) = _full_ids(client, api, stack_key, [job_uuid], lookup_queue)
        job = client.get_job(stack_key, job_uuid)
    env = mask_env(job.env, show_secrets=show_secrets)
    if api.output == "json":
        emit_json({"id": job.id, "command": job.command, "env": env}, show_secrets=show_secrets)
        return
    emit_kv({"id": job.id, "command": job.command}, title=f"job {job.id}")
    emit_table(("name", "value"), sorted(env.items()), title="env")


@jobs.command("states")
@_stack_option
@_lookup_queue_option
@_uuids_argument
@api_options
def jobs_states(
    api: ApiOptions, stack_key: str, lookup_queue: str | None, job_uuids: tuple[str, ...]
) -> None:
    """Show the current state of jobs (scheduled, reserved, running, canceled, ...).

    \b
    Examples:
      stacksapi jobs states --stack my-stack UUID1 UUID2
      stacksapi jobs states --stack my-stack 0190f7d2 0190f7e5   # short ids
    """
    with open_client(api, Subject(stack=stack_key, jobs=len(job_uuids))) as client:
        uuids = _full_ids(client, api, stack_key, job_uuids, lookup_queue)
        states = client.get_job_states(stack_key, uuids)
    if api.output == "json":
        emit_json(states)
    else:
        emit_table(("job", "state"), sorted(states.states.items()), title="job states")


@click.command()
@_stack_option
@click.option(
    "--expiry",
    "expiry_seconds",
    type=int,
    default=None,
    help="Reservation expiry in seconds (1..3600; server default 900).",
)
@_lookup_queue_option
@_uuids_argument
@api_options
def reserve(
    api: ApiOptions,
    stack_key: str,
    lookup_queue: str | None,
    job_uuids: tuple[str, ...],
    expiry_seconds: int | None,
) -> None:
    """Reserve scheduled jobs for the stack (again to extend a reservation).

    \b
    Examples:
      stacksapi reserve --stack my-stack UUID1 UUID2 --expiry 300
    """
    with open_client(api, Subject(stack=stack_key, jobs=len(job_uuids))) as client:
        uuids = _full_ids(client, api, stack_key, job_uuids, lookup_queue)
        result = client.batch_reserve_jobs(
            stack_key, uuids, reservation_expiry_seconds=expiry_seconds
        )
    if api.output == "json":
        emit_json(result)
    else:
        rows = [(u, "reserved") for u in result.reserved]
        rows += [(u, "not reserved") for u in result.not_reserved]
        emit_table(("job", "result"), rows, title="reservation")


@click.group()
def tokens() -> None:
    """Job acquisition tokens: one short-lived token per reserved job, for its agent."""


@tokens.command("issue")
@_stack_option
@click.option(
    "--lifetime",
    "lifetime_seconds",
    type=int,
    default=None,
    help="Token lifetime in seconds (1..3600; server default 900).",
)
@click.option(
    "--show-secrets", is_flag=True, help="Print the tokens themselves (masked otherwise)."
)
@_lookup_queue_option
@_uuids_argument
@api_options
def tokens_issue(  # noqa: PLR0917 - click passes options positionally by name
    api: ApiOptions,
    stack_key: str,
    lookup_queue: str | None,
    job_uuids: tuple[str, ...],
    lifetime_seconds: int | None,
    show_secrets: bool,
) -> None:
    """Issue job acquisition tokens for jobs this stack has reserved.

    Tokens are masked in every output format unless --show-secrets is given.

    \b
    Examples:
      stacksapi tokens issue --stack my-stack UUID1 UUID2
      stacksapi tokens issue --stack my-stack UUID1 --show-secrets --output json
    """
    with open_client(api, Subject(stack=stack_key, jobs=len(job_uuids))) as client:
        uuids = _full_ids(client, api, stack_key, job_uuids, lookup_queue)
        result = client.issue_job_acquisition_tokens(
            stack_key, uuids, token_lifetime_seconds=lifetime_seconds
        )
    if api.output == "json":
        emit_json(result, show_secrets=show_secrets)
        return
    rows: list[tuple[object, ...]] = [
        (
            t.job_uuid,
            t.job_acquisition_token.get_secret_value() if show_secrets else t.job_acquisition_token,
            t.expires_at,
        )
        for t in result.job_acquisition_tokens
    ]
    rows += [(u, "(not issued)", None) for u in result.not_issued]
    if show_secrets:
        # rich would fold long tokens; print plainly so they can be copied.
        for row in rows:
            click.echo("\t".join("-" if v is None else str(v) for v in row))
        return
    emit_table(("job", "token", "expires"), rows, title="job acquisition tokens")


@click.command()
@_stack_option
@click.option("--detail", required=True, help="Why the job finished (at most 4 KB; cropped).")
@click.option("--exit-status", type=int, default=-1, show_default=True, help="0 means success.")
@click.option(
    "--signal-reason",
    type=click.Choice(SIGNAL_REASONS, case_sensitive=False),
    default=None,
    help="Why, in Buildkite's words; stack_error: the stack could not launch the job.",
)
@_lookup_queue_option
@click.argument("job_uuid", metavar="JOB_ID")
@api_options
def finish(  # noqa: PLR0917 - click passes options positionally by name
    api: ApiOptions,
    stack_key: str,
    lookup_queue: str | None,
    job_uuid: str,
    detail: str,
    exit_status: int,
    signal_reason: str | None,
) -> None:
    """Finish a job the stack cannot or will not run (at most once per job).

    \b
    Examples:
      stacksapi finish --stack my-stack UUID --detail "no capacity in region" \\
          --signal-reason stack_error
      stacksapi finish --stack my-stack UUID --detail "done elsewhere" --exit-status 0
    """
    with open_client(api, Subject(stack=stack_key, jobs=1)) as client:
        (job_uuid,) = _full_ids(client, api, stack_key, [job_uuid], lookup_queue)
        client.finish_job(
            stack_key,
            job_uuid,
            detail=detail,
            exit_status=exit_status,
            signal_reason=signal_reason.lower() if signal_reason else None,
        )
    if api.output == "json":
        emit_json({"finished": job_uuid, "exit_status": exit_status})
    else:
        click.echo(f"finished job {job_uuid} with exit status {exit_status}")


@click.command()
@_stack_option
@click.option(
    "--detail", required=True, help="The text to show on each job (1..256 chars; cropped)."
)
@click.option(
    "--timestamp",
    type=ISO_8601,
    default=None,
    help="When it happened (ISO 8601, e.g. 2026-03-04T05:06:07.5+02:00; default now; UTC if "
    "no offset).",
)
@_lookup_queue_option
@_uuids_argument
@api_options
def notify(  # noqa: PLR0917 - click passes options positionally by name
    api: ApiOptions,
    stack_key: str,
    lookup_queue: str | None,
    job_uuids: tuple[str, ...],
    detail: str,
    timestamp: dt.datetime | None,
) -> None:
    """Show a short notification on jobs in Buildkite's build page.

    \b
    Examples:
      stacksapi notify --stack my-stack --detail "VM is booting" UUID1 UUID2
    """
    detail, cropped = crop_notification_detail(detail, "--detail")
    if cropped:  # said once here, rather than once per job by the client
        click.echo(f"warning: {cropped} to {len(detail)}, ending in ' [cropped]'", err=True)
    with open_client(api, Subject(stack=stack_key, jobs=len(job_uuids))) as client:
        job_uuids = tuple(_full_ids(client, api, stack_key, job_uuids, lookup_queue))
        notes = [StackNotification(u, detail, timestamp) for u in job_uuids]
        result = client.create_stack_notifications(stack_key, notes)
    failed: dict[str, str] = {}
    for err in result.errors:
        for index in err.indexes:
            if 0 <= index < len(job_uuids):
                failed[job_uuids[index]] = err.error
    if api.output == "json":
        emit_json(result)
    else:
        emit_table(
            ("job", "result"),
            ((u, failed.get(u, "created")) for u in job_uuids),
            title="notifications",
        )
    if failed:
        fail(f"{len(failed)} of {len(job_uuids)} notification(s) were rejected (see above)")


@click.command()
@api_options
def token(api: ApiOptions) -> None:
    """Show what the server knows of the token in use (never the token itself).

    \b
    Examples:
      BUILDKITE_CLUSTER_TOKEN=bkct_... stacksapi token
    """
    with open_client(api) as client:
        info = client.get_token()
    if api.output == "json":
        emit_json(info)
    else:
        pairs: dict[str, Any] = to_plain(info)
        emit_kv(pairs, title="token")
    if not info.cluster_uuid:
        click.echo(
            "warning: this token has no cluster_uuid: it is not a cluster token and "
            "cannot drive a stack",
            err=True,
        )
