"""``stacksapi kubernetes render``: the Job and Secret a stack would create for one job.

Operators use it to see what a change to their ``[kubernetes]`` table does before deploying
it. The job comes from a JSON file (what ``stacksapi jobs get -o json`` or an entry of
``stacksapi jobs list -o json`` prints; ``-`` reads stdin) or, given a job uuid, from a live
server. Nothing is created anywhere and no token is issued: the Secret shows a masked token.
The Kubernetes package (lightkube, PyYAML) is imported only when the command runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from stacksapi._models import MASKED

from ._common import (
    BASE_URL_ENV,
    DEFAULT_BASE_URL,
    EXIT_USAGE,
    TOKEN_ENV,
    ApiOptions,
    allow_insecure_http_option,
    config_base_url_option,
    fail,
    open_client,
)
from ._job_ids import JobIds, is_short_id
from ._params import STACK_ENV

__all__ = ["kubernetes"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JOB_FIELDS = ("id", "priority", "agent_query_rules", "scheduled_at", "runnable_at",
               "pipeline", "build", "step")  # fmt: skip
_DISPATCHER = "stacksapi.kubernetes:dispatcher"
_NEW_AT_DISPATCH = "<new-at-each-dispatch>"  # the dispatch id, and the created Job's uid


@click.group()
def kubernetes() -> None:
    """Kubernetes dispatcher tools (needs the ``kubernetes`` extra)."""


@kubernetes.command("render")
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False),
    help="The stack's TOML file (its [stack] and [kubernetes] tables).",
)  # fmt: skip
@click.argument("job")
@click.option("--namespace", default=None, help="Default: kubernetes.namespace, else 'default'.")
@click.option(
    "--stack", "--key", "key", default=None, metavar="KEY",
    help=f"Override stack.key (it labels the objects; else {STACK_ENV}, else the file's).",
)  # fmt: skip
@click.option(
    "--output", "-o", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
    help="yaml: one document per object; json: a list.",
)  # fmt: skip
@click.option(
    "--token", envvar=TOKEN_ENV, show_envvar=True, show_default=False, default=None,
    metavar="TOKEN", help="Cluster token, to fetch JOB by uuid from a live server.",
)  # fmt: skip
@click.option(
    "--native-sidecars/--ordinary-sidecars", "native", default=None,
    help="Sidecars as the cluster takes them: native (Kubernetes 1.29+) or ordinary containers. "
    "Default: kubernetes.native_sidecars; \"auto\" assumes 1.29+.",
)  # fmt: skip
@config_base_url_option
@allow_insecure_http_option
def render(  # noqa: PLR0917 - click passes options by name
    config_path: str,
    job: str,
    namespace: str | None,
    key: str | None,
    output: str,
    token: str | None,
    native: bool | None,
    base_url: str | None,
    allow_insecure_http: bool,
) -> None:
    """Print the Kubernetes Job and Secret the stack would create for JOB (token masked).

    They are printed as a dispatch creates them: the Job suspended until its Secret exists,
    annotated with a dispatch id, the Secret owned by the Job.

    JOB is a JSON file (from `stacksapi jobs get -o json` or `jobs list -o json`), `-` for
    stdin, or a job uuid (or its short id, as `jobs list` shows it) fetched from the server
    (with the stack's key and queue).

    \b
    Examples:
      stacksapi jobs get --stack my-stack UUID -o json > job.json
      stacksapi kubernetes render --config stack.toml job.json
      stacksapi kubernetes render --config stack.toml UUID      # from the live server
      stacksapi kubernetes render --config stack.toml job.json -o json | jq '.[0].spec'
    """
    from stacksapi.stack import ConfigError, DispatchError, StackConfig

    try:
        config = StackConfig.from_toml(config_path).with_env(os.environ)
        config = config.with_overrides(key=key)
        if "kubernetes" not in config.extensions:
            raise ConfigError("kubernetes", f"no [kubernetes] table in {config_path}")
        from stacksapi.kubernetes import KubernetesConfig

        kube = KubernetesConfig.from_mapping(config.extensions["kubernetes"])
    except ConfigError as exc:
        hint = ""
        if exc.key == "kubernetes" and "unknown key" in str(exc):  # read only for that dispatcher
            hint = f'; a [kubernetes] table needs stack.dispatcher = "{_DISPATCHER}"'
        fail(f"bad configuration: {exc}{hint}", code=EXIT_USAGE)
    except (ValueError, TypeError) as exc:
        fail(f"bad configuration: {exc}", code=EXIT_USAGE)
    except ImportError as exc:
        fail(str(exc), code=EXIT_USAGE)
    if not Path(job).exists() and (_UUID.match(job) or is_short_id(job)):
        url = base_url or config.base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        api = ApiOptions(token, url, "json", 30.0, allow_insecure_http=allow_insecure_http)
        data = _fetch(api, config, job)
    else:
        data = _read_json(job)
    try:
        if native is None:
            native = kube.native_sidecars if isinstance(kube.native_sidecars, bool) else True
        where = namespace or kube.namespace or "default"
        objects = _render(config, kube, data, where, native_sidecars=native)
    except DispatchError as exc:
        fail(f"this job would not be dispatched: {exc}")
    if output == "json":
        click.echo(json.dumps(objects, indent=2))
        return
    import yaml

    uuid = objects[0]["metadata"]["annotations"].get("stacksapi/job-uuid", "")
    notes = ["token masked", "native sidecars" if native else "ordinary sidecars"]
    if objects[0]["spec"].get("suspend"):
        notes.append("the Job is released once its Secret exists")
    click.echo(f"# The objects stack {config.key} would create for job {uuid} ({'; '.join(notes)})")
    click.echo(yaml.safe_dump_all(objects, sort_keys=False, explicit_start=True), nl=False)


def _read_json(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        fail(f"cannot read {source}: {exc.strerror or exc}", code=EXIT_USAGE)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"{source} is not JSON: {exc}", code=EXIT_USAGE)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
        fail(f"{source}: expected a job object with an 'id' (jobs get -o json)", code=EXIT_USAGE)
    return data


def _fetch(api: ApiOptions, config: Any, ref: str) -> dict[str, Any]:
    """The job's command and env, plus its pipeline and build when it is still scheduled."""
    with open_client(api) as client:
        (uuid,) = JobIds(api.base_url, config.key).resolve(client, [ref], config.queue_key)
        found = client.get_job(config.key, uuid)
        data: dict[str, Any] = {"id": found.id, "command": found.command, "env": found.env}
        after = None
        for _ in range(config.max_pages):
            page = client.list_scheduled_jobs(
                config.key, queue_key=config.queue_key, limit=config.page_size, after=after
            )
            match = next((j for j in page.jobs if j.id == uuid), None)
            if match is not None:
                import msgspec

                data.update(msgspec.to_builtins(match))
                break
            if not page.page_info.has_next_page or page.page_info.end_cursor is None:
                break
            after = page.page_info.end_cursor
    return data


def _render(
    config: Any, kube: Any, data: Mapping[str, Any], namespace: str, *, native_sidecars: bool
) -> list[dict[str, Any]]:
    import msgspec

    from stacksapi._models import Job, ScheduledJob, Secret
    from stacksapi.kubernetes import render_secret
    from stacksapi.kubernetes._manifest import dispatch_job
    from stacksapi.kubernetes._render import owner_reference
    from stacksapi.stack import DispatchRequest

    fields = {k: data[k] for k in _JOB_FIELDS if data.get(k) is not None}
    fields.setdefault("scheduled_at", dt.datetime.now(dt.UTC).isoformat())
    try:
        job = msgspec.convert(fields, ScheduledJob, strict=False)
    except msgspec.ValidationError as exc:
        fail(f"not a job: {exc}", code=EXIT_USAGE)
    token = Secret(f"bkjat_{secrets.token_hex(16)}") if config.issue_tokens else None
    try:  # the command and env (the step's plugins, its image) shape the pod
        details = msgspec.convert(
            {"id": job.id, "command": data.get("command") or "", "env": data.get("env") or {}},
            Job,
        )
    except msgspec.ValidationError as exc:
        fail(f"not a job: {exc}", code=EXIT_USAGE)
    request = DispatchRequest(job, config.key, config.queue_key, token, details=details)
    kube_job = dispatch_job(kube, request, namespace, None, native_sidecars=native_sidecars,
                            dispatch_id=_NEW_AT_DISPATCH)  # fmt: skip
    objects = [kube_job]
    if token is not None:
        owner = owner_reference(kube_job["metadata"]["name"], _NEW_AT_DISPATCH)
        secret = render_secret(kube, request, namespace, owner)
        del secret["data"]
        secret["stringData"] = {"token": MASKED}  # issued for real only at dispatch
        objects.append(secret)
    return objects
