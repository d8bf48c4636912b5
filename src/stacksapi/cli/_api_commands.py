"""Commands about the stack itself: register, deregister, and the token in use.

Each command is a thin call on :class:`~stacksapi.Client`: arguments in, the model out as a table
or JSON. Limits are checked by the client before anything is sent (exit 2, naming the field).
The commands about jobs are in :mod:`._job_commands`.
"""

from __future__ import annotations

from typing import Any

import click

from stacksapi._models import StackType

from ._common import ApiOptions, Subject, api_options, open_client
from ._params import STACK_ENV, queue_option, stack_named_option
from ._render import emit_json, emit_kv, to_plain

__all__ = ["deregister", "register", "token"]


def _parse_metadata(pairs: tuple[str, ...]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--metadata")
        metadata[key] = value
    return metadata


@click.command()
@queue_option
@click.option(
    "--type",
    "stack_type",
    type=click.Choice([t.value for t in StackType]),
    default=StackType.CUSTOM.value,
    show_default=True,
    help="Stack type; third-party stacks are custom.",
)
@click.option("--metadata", "-m", multiple=True, metavar="KEY=VALUE", help="Repeatable.")
@stack_named_option
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
@stack_named_option
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
        raise click.UsageError(f"which stack? pass --stack KEY (or KEY, or set {STACK_ENV})", ctx)
    return key


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
