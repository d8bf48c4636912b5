"""Client settings checked once: base URL, timeouts, per-call retry, and their defaults.

Sans-IO like ``_core``: each function turns what a caller passed into the value the clients use,
or raises :class:`RequestValidationError` naming the argument.
"""

from __future__ import annotations

import ipaddress
import math
from typing import Any
from urllib.parse import urlsplit

import httpx2

from ._errors import RequestValidationError
from ._retry import NO_RETRY, RetryPolicy

__all__ = [
    "DEFAULT",
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "RetryArg",
    "TimeoutTypes",
    "normalize_base_url",
    "resolve_retry",
    "resolve_timeout",
]

DEFAULT_BASE_URL = "https://agent.buildkite.com/v3/"
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
