"""Client settings checked once: base URL, timeouts, per-call retry, and their defaults.

Sans-IO like ``_core``: each function turns what a caller passed into the value the clients use,
or raises :class:`RequestValidationError` naming the argument.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx2

from ._errors import RequestValidationError
from ._retry import NO_RETRY, RetryPolicy

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "RetryArg",
    "TimeoutTypes",
    "normalize_base_url",
    "resolve_base_url",
    "resolve_max_retries",
    "resolve_retry",
    "resolve_timeout",
]

DEFAULT_BASE_URL = "https://agent.buildkite.com/v3/"
BASE_URL_ENV = "STACKSAPI_BASE_URL"
"""Where a client sends its requests when ``base_url`` is not given (else Buildkite)."""
DEFAULT_TIMEOUT = httpx2.Timeout(30.0, connect=10.0)
"""30 s for each read, write and pool wait; 10 s to connect."""

TimeoutTypes = float | int | httpx2.Timeout
RetryArg = RetryPolicy | bool | None
"""Per-call ``retry=``: a policy for this call, ``False`` for no retry, ``None`` the client's."""


class _Default:
    """The marker for "use the client's setting" in per-call ``timeout=``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()


# --- settings ---------------------------------------------------------------------------------


def resolve_timeout(value: object) -> httpx2.Timeout:
    """A number (seconds), an ``httpx2.Timeout``, or ``math.inf`` to wait forever on purpose.

    ``None`` is refused: in httpx it means "no timeout", and waiting forever by accident is the
    failure a default timeout exists to prevent.
    """
    if value is None:
        raise RequestValidationError(
            "timeout",
            "None would wait forever; pass seconds, an httpx2.Timeout, or math.inf to mean it",
        )
    if isinstance(value, httpx2.Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise RequestValidationError("timeout", "must be seconds > 0", value_hint=repr(value))
    if value <= 0:
        raise RequestValidationError("timeout", "must be seconds > 0", value_hint=repr(value))
    if math.isinf(value):
        return httpx2.Timeout(None)
    return httpx2.Timeout(float(value), connect=min(10.0, float(value)))


def resolve_retry(value: object, default: RetryPolicy) -> RetryPolicy:
    """Per-call ``retry=``: ``None`` the client's policy, ``False`` no retry, or a policy."""
    if value is None or value is True:
        return default
    if value is False:
        return NO_RETRY
    if isinstance(value, RetryPolicy):
        return value
    raise RequestValidationError(
        "retry", "must be a RetryPolicy, False or None", value_hint=type(value).__name__
    )


def resolve_max_retries(max_retries: object, retry: RetryPolicy | None) -> RetryPolicy | None:
    """``max_retries=N``: the default policy with ``N`` retries after the first try.

    A shortcut beside ``retry=``; giving both is refused rather than guessing which one wins.
    """
    if max_retries is None:
        return retry
    if isinstance(max_retries, bool) or not isinstance(max_retries, int):
        raise TypeError(f"max_retries: must be an int, got {type(max_retries).__name__}")
    if max_retries < 0:
        raise ValueError(f"max_retries: must be >= 0 (0 means no retry), got {max_retries}")
    if retry is not None:
        raise ValueError("pass either retry= or max_retries=, not both")
    return RetryPolicy(max_attempts=max_retries + 1)


def resolve_base_url(
    base_url: object, *, allow_insecure_http: bool, environ: Mapping[str, str] = os.environ
) -> str:
    """The base URL to use: the argument, else ``STACKSAPI_BASE_URL``, else Buildkite's.

    An empty variable counts as unset. A bad value is reported under the name it came from.
    """
    if base_url is not None:
        return normalize_base_url(base_url, allow_insecure_http=allow_insecure_http)
    from_env = environ.get(BASE_URL_ENV, "").strip()
    if not from_env:
        return DEFAULT_BASE_URL
    try:
        return normalize_base_url(from_env, allow_insecure_http=allow_insecure_http)
    except RequestValidationError as exc:
        raise RequestValidationError(BASE_URL_ENV, exc.limit, value_hint=from_env) from None


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_base_url(url: object, *, allow_insecure_http: bool) -> str:
    """The base URL with exactly one trailing slash, its path kept; http only to loopback."""
    if isinstance(url, httpx2.URL):
        url = str(url)
    if not isinstance(url, str):
        raise RequestValidationError("base_url", "must be a str", value_hint=type(url).__name__)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestValidationError(
            "base_url", "must be an http(s) URL with a host", value_hint=url
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        raise RequestValidationError(
            "base_url",
            "plain http to a non-loopback host would send the token in clear; use https "
            "or pass allow_insecure_http=True",
            value_hint=url,
        )
    path = parts.path.rstrip("/") + "/"
    return f"{parts.scheme}://{parts.netloc}{path}"
