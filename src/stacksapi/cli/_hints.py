"""What an error means for the command that met it, in one sentence that points at the fix.

A hint is about what the command named: ``register`` on an unknown queue points at
``--queue``, a job command at the stack and the job uuid. A base URL without ``/v3/`` is said
before anything else (every path under it is a 404). A hint the server's message already gives
(``register it first``) is not repeated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from stacksapi._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    StacksAPIError,
    UnprocessableEntityError,
)

__all__ = ["BASE_URL_ENV", "TOKEN_ENV", "Subject", "describe_error", "error_hint"]

TOKEN_ENV = "BUILDKITE_CLUSTER_TOKEN"  # noqa: S105 - a variable name, not a secret
BASE_URL_ENV = "STACKSAPI_BASE_URL"
_VERSION = re.compile(r"v[0-9]+")


@dataclass(frozen=True, slots=True)
class Subject:
    """What a command named, so a 404 can say which of them the server did not know.

    ``queue`` is set only where the queue itself is the request's subject (``register``).
    """

    stack: str | None = None
    queue: str | None = None
    jobs: int = 0


def describe_error(exc: StacksAPIError, *, base_url: str, subject: Subject | None = None) -> str:
    """One sentence: what the server said and what to do about it."""
    hint = error_hint(exc, base_url=base_url, subject=subject)
    if isinstance(exc, APIStatusError):
        what = f"{exc.status_code} from {exc.method} {_path_of(exc.url, base_url)}: {exc.message}"
        return f"{what}. {_capitalized(hint)}" if hint else what
    if isinstance(exc, APITimeoutError):
        return f"timed out talking to {base_url}; {hint}"
    if isinstance(exc, APIConnectionError):
        return f"could not reach {base_url} ({exc}); {hint}"
    if isinstance(exc, ResponseValidationError):
        return f"{exc}; {hint}"
    return str(exc)


def error_hint(
    exc: BaseException, *, base_url: str | None = None, subject: Subject | None = None
) -> str:
    """What to do about ``exc`` (empty when there is nothing specific to say)."""
    if base_url is not None and isinstance(exc, NotFoundError | ResponseValidationError):
        missing = _missing_v3(base_url)
        if missing:
            return missing
    if isinstance(exc, NotFoundError):
        return _not_found(exc, subject or Subject())
    if isinstance(exc, APIStatusError):
        return _hint_for_status(exc)
    if isinstance(exc, APITimeoutError):
        return "raise --timeout or check the server"
    if isinstance(exc, APIConnectionError):
        return f"check --base-url / {BASE_URL_ENV} and that the server is up"
    if isinstance(exc, ResponseValidationError):
        return "the server may speak a different API version, check --base-url"
    return ""


def _missing_v3(base_url: str) -> str:
    """The base URL that works when ``base_url`` does not end at one ``/v3/`` ("" when it does).

    A path without ``v3`` gets it appended (a proxy may add a prefix); another version (``/v2/``)
    is replaced; a path past ``/v3/`` (``/v3/stacks/``, ``/v3/v3/``) is cut back to it.
    """
    parts = urlsplit(base_url)
    segments = [s for s in parts.path.split("/") if s]
    if "v3" in segments:
        if segments.index("v3") == len(segments) - 1:
            return ""
        segments = segments[: segments.index("v3") + 1]
        what = "goes past /v3/, where the Stacks API lives"
    elif segments and _VERSION.fullmatch(segments[-1]):
        segments[-1] = "v3"
        what = "names another API version; the Stacks API lives under /v3/"
    else:
        segments.append("v3")
        what = "has no /v3/ path, where the Stacks API lives"
    fixed = f"{parts.scheme}://{parts.netloc}/{'/'.join(segments)}/"
    return f"the base URL {base_url} {what}: try --base-url {fixed} (or {BASE_URL_ENV})"


def _not_found(exc: NotFoundError, subject: Subject) -> str:
    said = exc.message.lower()
    vague = not any(word in said for word in ("stack", "job", "endpoint"))
    if subject.queue is not None and ("queue" in said or vague):
        return (
            f"Queue {subject.queue!r} is not a queue of this token's cluster: check --queue "
            "(a cluster queue's key; __default__ is the cluster's default queue)"
        )
    if "queue" in said and "stack" not in said:  # the server named the queue it lacks
        return (
            "Check --queue (a queue of this token's cluster; __default__ is the cluster's "
            "default queue)"
        )
    if subject.jobs and "job" in said:
        return "Check the job uuid (a full uuid, or a short id from `stacksapi jobs list`)"
    if subject.stack is not None:
        if "register" in said:  # the server already said what to do
            return f"Check --stack {subject.stack!r}"
        return (
            f"Check --stack {subject.stack!r}: is it registered? "
            f"(stacksapi register --stack {subject.stack} --queue QUEUE)"
        )
    return "Check the stack key, the job uuid and the queue key"


def _path_of(url: str, base_url: str) -> str:
    return url[len(base_url) :] if url.startswith(base_url) else url


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _hint_for_status(exc: APIStatusError) -> str:
    if isinstance(exc, AuthenticationError):
        return f"Check the token (--token or {TOKEN_ENV}): a cluster token (bkct_…) is needed"
    if isinstance(exc, PermissionDeniedError):
        return (
            "The organization's stack limit may be reached (deregister unused stacks), "
            "or the job is not in this stack's queue"
        )
    if isinstance(exc, RateLimitError):
        wait = f" for {exc.retry_after:g} s" if exc.retry_after is not None else ""
        return f"Rate limited (scope {exc.scope or 'unknown'}); wait{wait} and try again"
    if isinstance(exc, BadRequestError):
        return "Check the command's arguments (see --help)"
    if isinstance(exc, UnprocessableEntityError):
        return "The server understood the request but refused it (see its message)"
    if isinstance(exc, ServerError):
        return "The server failed; try again shortly"
    return "See --help"
