"""Commands about jobs: list, inspect, reserve, issue tokens, finish, notify.

Each is a thin call on :class:`~stacksapi.Client`. Wherever a job uuid is taken, its short id
(the start of the uuid, as ``jobs list`` shows it) works too: see :mod:`._job_ids`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from stacksapi._models import StackNotification
from stacksapi._validate import crop_finish_detail, crop_notification_detail

from ._common import ApiOptions, Subject, api_options, fail, open_client
from ._job_ids import JobIds
from ._jobs_table import emit_jobs_table
from ._params import (
    ISO_8601,
    SIGNAL_REASONS,
    lookup_queue_option,
    queue_option,
    stack_option,
    uuids_argument,
)
from ._render import emit_json, emit_kv, emit_table, mask_env

if TYPE_CHECKING:
    from stacksapi import Client

__all__ = ["finish", "jobs", "notify", "reserve", "tokens"]


def _full_ids(
    client: Client, api: ApiOptions, stack_key: str, refs: Sequence[str], queue: str | None
) -> list[str]:
    """``refs`` with short job ids (the start of a uuid) replaced by the full uuids."""
    return JobIds(api.base_url, stack_key).resolve(client, refs, queue)


@click.group()
def jobs() -> None:
    """Look at jobs: scheduled ones, one job's command and env, and job states."""


@jobs.command("list")
@stack_option
@queue_option
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
    JobIds(api.base_url, stack_key).remember((j.id for j in found), queue=queue_key)
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
    emit_jobs_table(
        found,
        wide=api.output == "wide",
        title=f"scheduled jobs for {stack_key} (queue {queue_key})",
        caption=f"{len(found)} job(s); dispatch {paused}{more}",
    )


@jobs.command("get")
@stack_option
@lookup_queue_option
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
@stack_option
@lookup_queue_option
@uuids_argument
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
@stack_option
@click.option(
    "--expiry",
    "expiry_seconds",
    type=int,
    default=None,
    help="Reservation expiry in seconds (1..3600; server default 900).",
)
@lookup_queue_option
@uuids_argument
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
@stack_option
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
@lookup_queue_option
@uuids_argument
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
@stack_option
@click.option("--detail", required=True, help="Why the job finished (at most 4 KB; cropped).")
@click.option("--exit-status", type=int, default=-1, show_default=True, help="0 means success.")
@click.option(
    "--signal-reason",
    type=click.Choice(SIGNAL_REASONS, case_sensitive=False),
    default=None,
    metavar="REASON",
    help="Why, as Buildkite names it: stack_error (the stack could not launch the job), "
    f"or {', '.join(r for r in SIGNAL_REASONS if r != 'stack_error')}.",
)
@lookup_queue_option
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
      stacksapi finish --stack my-stack 0190f7d2 --detail "done elsewhere" --exit-status 0
    """
    detail, cropped = crop_finish_detail(detail, "--detail", "--detail")
    if cropped:  # said here as the user typed it; the client then has nothing left to crop
        click.echo(f"warning: {cropped}", err=True)
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
@stack_option
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
@lookup_queue_option
@uuids_argument
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
