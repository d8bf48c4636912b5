"""The per-client engine shared by Client and AsyncClient: outcome of each attempt, logs, errors.

:class:`Core` holds one client's settings. :class:`Attempts` follows one HTTP call through its
tries: given a response or a transport failure it returns the result, raises the right error, or
says how long to wait before the next try. It never sends and never sleeps.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import logging
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx2
import msgspec

from ._core import Call, decode
from ._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
    ResponseValidationError,
    status_error_class,
)
from ._redact import Redactor
from ._response import Response
from ._retry import RetryPolicy, decide
from ._settings import (
    DEFAULT,
    resolve_base_url,
    resolve_max_retries,
    resolve_retry,
    resolve_timeout,
)
from ._version import __version__

__all__ = ["Attempts", "Core", "build_headers", "make_core"]

# A library stays silent until the application configures logging: without a handler of its
# own, Python's last-resort handler would print our WARNINGs (retries, cropping) to stderr.
logging.getLogger("stacksapi").addHandler(logging.NullHandler())

_PAYLOAD_LOG_LIMIT = 16 * 1024
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<(script|style)[^>]*>.*?</\1>|<[^>]+>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")


def build_headers(token: str, user_agent_prefix: str | None, version: str) -> dict[str, str]:
    """Headers of every request: the token, JSON, and ``<prefix> stacksapi-python/<version>``."""
    agent = f"stacksapi-python/{version}"
    if user_agent_prefix and user_agent_prefix.strip():
        agent = f"{user_agent_prefix.strip()} {agent}"
    return {"Authorization": f"Token {token}", "Accept": "application/json", "User-Agent": agent}


class Core:
    """One client's settings: base URL, headers, timeout, logger, redaction, retry policy."""

    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        logger: logging.Logger,
        log_http_payloads: bool,
        retry: RetryPolicy,
        timeout: httpx2.Timeout,
        headers: dict[str, str],
        send_headers: bool,
    ) -> None:
        self.base_url = base_url
        self.timeout = timeout
        # Our own HTTP client already holds the timeout; a caller's gets ours on every request.
        self.request_timeout: Any = timeout if send_headers else httpx2.USE_CLIENT_DEFAULT
        self.logger = logger
        self.log_http_payloads = log_http_payloads
        self.retry = retry
        self.redactor = Redactor(token)
        # With our own HTTP client the headers are set on it; a caller's client gets them per call.
        self.plain_headers: dict[str, str] | None = headers if send_headers else None
        self.json_headers = {
            **(headers if send_headers else {}),
            "Content-Type": "application/json",
        }
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(3).hex()

    def begin(self, call: Call, policy: RetryPolicy) -> Attempts:
        """Start following one call through its attempts."""
        return Attempts(self, call, policy)

    def call_settings(
        self, warnings: Sequence[str], retry: object, timeout: object
    ) -> tuple[RetryPolicy, Any]:
        """One call's retry policy and timeout (its own ``retry=``/``timeout=`` over the
        client's); logs the warnings its arguments raised (a cropped ``detail``)."""
        policy = self.retry if retry is None else resolve_retry(retry, self.retry)
        tmo = self.request_timeout if timeout is DEFAULT else resolve_timeout(timeout)
        for w in warnings:
            self.logger.warning("%s", self.redactor.text(w))
        return policy, tmo

    def next_request_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"


def make_core(
    token: str | None,
    *,
    base_url: object,
    timeout: object,
    retry: RetryPolicy | None,
    max_retries: int | None,
    logger: logging.Logger | None,
    log_http_payloads: bool,
    user_agent_prefix: str | None,
    allow_insecure_http: bool,
    send_headers: bool,
) -> tuple[Core, dict[str, str]]:
    """Check a client's constructor arguments; its Core and the headers of every request.

    ``send_headers``: the caller gave their own HTTP client, so headers and timeout go with
    every request instead of being set on a client of ours.
    """
    resolved_timeout = resolve_timeout(timeout)
    if token is None:
        token = os.environ.get("BUILDKITE_CLUSTER_TOKEN") or None
        if token is None:
            raise ValueError(
                "no cluster token: pass token=... or set BUILDKITE_CLUSTER_TOKEN "
                "(a Buildkite cluster token, bkct_...)"
            )
    if not isinstance(token, str) or not token.strip():
        raise ValueError("token: must be a non-empty str (a Buildkite cluster token, bkct_...)")
    if any(c in token for c in "\r\n\0") or token != token.strip():
        raise ValueError("token: must not contain line breaks or surrounding spaces")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError(f"retry: must be a RetryPolicy or None, got {type(retry).__name__}")
    retry = resolve_max_retries(max_retries, retry) or RetryPolicy()
    if user_agent_prefix is not None and (
        not isinstance(user_agent_prefix, str) or any(c in user_agent_prefix for c in "\r\n")
    ):
        raise ValueError("user_agent_prefix: must be a single-line str")
    headers = build_headers(token, user_agent_prefix, __version__)
    core = Core(
        token=token,
        base_url=resolve_base_url(base_url, allow_insecure_http=allow_insecure_http),
        logger=logger if logger is not None else logging.getLogger("stacksapi"),
        log_http_payloads=bool(log_http_payloads),
        retry=retry,
        timeout=resolved_timeout,
        headers=headers,
        send_headers=send_headers,
    )
    return core, headers


def _readable(content: bytes, status: int) -> tuple[str, object]:
    """The server's ``message`` and the decoded body; for non-JSON bodies a short summary."""
    if content:
        try:
            body: object = msgspec.json.decode(content)
        except (msgspec.DecodeError, RecursionError):  # not JSON, or nested past any sense
            text = content.decode("utf-8", "replace")
            title = _TITLE.search(text)
            summary = title.group(1) if title else _TAGS.sub(" ", text)
            summary = _SPACE.sub(" ", summary).strip()
            if len(summary) > 200:
                summary = summary[:197] + "..."
            return summary or _reason(status), text
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return body["message"], body
        return _reason(status), body
    return _reason(status), None


def _reason(status: int) -> str:
    phrase = httpx2.codes.get_reason_phrase(status)
    return f"HTTP {status} {phrase}".rstrip()


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float | str):
        try:
            return int(float(value))
        except (ValueError, OverflowError):  # "inf" / "1e400" from a header or body
            return None
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


class Attempts:
    """The tries of one call; after each the client asks :meth:`on_response` or :meth:`on_error`."""

    __slots__ = (
        "ambiguous",
        "attempt",
        "call",
        "core",
        "elapsed",
        "headers",
        "policy",
        "rid",
        "url",
        "wait",
    )

    def __init__(self, core: Core, call: Call, policy: RetryPolicy) -> None:
        self.core = core
        self.call = call
        self.policy = policy
        self.url = core.base_url + call.path
        self.headers = core.json_headers if call.body is not None else core.plain_headers
        self.attempt = 0
        self.elapsed = 0.0
        self.wait = 0.0  # set by on_response when it returns None
        self.ambiguous = False  # an earlier try may have reached the server without us knowing
        self.rid = core.next_request_id()
        if core.log_http_payloads and call.body is not None:
            self._payload("request", call.body)

    # --- logging -------------------------------------------------------------------------------

    def _log_attempt(self, status: int | str, seconds: float) -> None:
        logger = self.core.logger
        if logger.isEnabledFor(logging.DEBUG):
            path = self.core.redactor.text(self.call.path)
            logger.debug(
                "%s %s -> %s (attempt %d, %.1f ms, request %s)",
                self.call.method,
                path,
                status,
                self.attempt,
                seconds * 1000.0,
                self.rid,
                extra={
                    "http_method": self.call.method,
                    "http_path": path,
                    "status_code": status,
                    "attempt": self.attempt,
                    "duration_ms": seconds * 1000.0,
                    "request_id": self.rid,
                    "endpoint": self.call.endpoint.name,
                },
            )

    def _payload(self, what: str, content: bytes) -> None:
        logger = self.core.logger
        if not logger.isEnabledFor(logging.DEBUG):
            return
        text = self.core.redactor.bytes_(content)
        if len(text) > _PAYLOAD_LOG_LIMIT:
            text = text[:_PAYLOAD_LOG_LIMIT] + f"... [{len(text) - _PAYLOAD_LOG_LIMIT} more chars]"
        logger.debug(
            "%s %s %s body (request %s): %s",
            self.call.method,
            self.core.redactor.text(self.call.path),
            what,
            self.rid,
            text,
            extra={"request_id": self.rid, "payload": what},
        )

    def _warn_retry(self, what: str, wait: float) -> None:
        self.core.logger.warning(
            "%s %s: %s; retrying in %.2f s (attempt %d of %d, request %s)",
            self.call.method,
            self.core.redactor.text(self.call.path),
            self.core.redactor.text(what),
            wait,
            self.attempt,
            self.policy.max_attempts,
            self.rid,
            extra={"request_id": self.rid, "retry_wait": wait, "attempt": self.attempt},
        )

    # --- outcomes ------------------------------------------------------------------------------

    def on_response(
        self, status: int, headers: httpx2.Headers, content: bytes, seconds: float
    ) -> Response[Any] | None:
        """The Response of a 2xx; ``None`` to retry after :attr:`wait`; raises otherwise."""
        self.attempt += 1
        self.elapsed += seconds
        self._log_attempt(status, seconds)
        if self.core.log_http_payloads and content:
            self._payload("response", content)
        if 200 <= status < 300:
            try:
                data = decode(self.call, content)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
                raise ResponseValidationError(
                    self.core.redactor.text(str(exc)),
                    method=self.call.method,
                    url=self.core.redactor.text(self.url),
                    status_code=status,
                    body=self.core.redactor.bytes_(content).encode("utf-8"),
                ) from None
            return Response(
                data,
                status_code=status,
                headers=headers,
                elapsed=_dt.timedelta(seconds=self.elapsed),
            )
        decision = decide(self.policy, self.attempt, status=status, headers=headers)
        error = self._status_error(status, headers, content, decision.server_wait)
        if decision.retry:
            self.wait = decision.wait
            self.ambiguous = self.ambiguous or status >= 500
            self._warn_retry(error.message if status != 429 else f"429 {error.message}", self.wait)
            return None
        if decision.too_long:
            self.core.logger.warning(
                "%s %s: server asked to wait %.1f s, over max_retry_after=%.1f s; not retrying",
                self.call.method,
                self.core.redactor.text(self.call.path),
                decision.server_wait,
                self.policy.max_retry_after,
            )
        if not self.call.idempotent and self.ambiguous and status < 500 and status != 429:
            error.add_note(
                "An earlier attempt of this call failed without a clear answer (a 5xx or a lost "
                "response) and may have been applied: this error can be the server refusing a "
                "repeat of it."
            )
        raise error

    def on_error(self, exc: httpx2.HTTPError, seconds: float) -> float:
        """The wait before retrying a transport failure; raises when it is not retried."""
        self.attempt += 1
        self.elapsed += seconds
        name = type(exc).__name__
        self._log_attempt(name, seconds)
        cls = APITimeoutError if isinstance(exc, httpx2.TimeoutException) else APIConnectionError
        text = str(exc) or name
        error = cls(
            self.core.redactor.text(f"{name}: {text}"),
            method=self.call.method,
            url=self.core.redactor.text(self.url),
        )
        if isinstance(exc, httpx2.TransportError):
            decision = decide(self.policy, self.attempt, status=None)
            if decision.retry:
                if not isinstance(exc, _NOT_SENT):
                    self.ambiguous = True
                self._warn_retry(f"{name}: {text}", decision.wait)
                return decision.wait
        raise error from exc

    def _status_error(
        self,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        retry_after: float | None,
    ) -> APIStatusError:
        redactor = self.core.redactor
        message, body = _readable(content, status)
        message = redactor.text(message)
        body = redactor.obj(body)
        common: dict[str, Any] = {
            "status_code": status,
            "method": self.call.method,
            "url": redactor.text(self.url),
            "headers": {k: redactor.text(v) for k, v in headers.items()},
            "body": body,
        }
        cls = status_error_class(status)
        if cls is RateLimitError:
            fields = body if isinstance(body, dict) else {}
            scope = fields.get("scope")
            if not isinstance(scope, str) and "ratelimit-scope" in headers:
                scope = redactor.text(headers["ratelimit-scope"])
            return RateLimitError(
                message,
                **common,
                retry_after=retry_after,
                scope=scope if isinstance(scope, str) else None,
                limit=_int(fields.get("limit", headers.get("ratelimit-limit"))),
                current=_int(fields.get("current")),
                reset=_float(fields.get("reset", headers.get("ratelimit-reset"))),
            )
        return cls(message, **common)
