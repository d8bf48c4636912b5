"""Exceptions raised by the clients. Catch :class:`StacksAPIError` to catch them all.

::

    StacksAPIError
    ├── RequestValidationError (also ValueError)   bad argument, caught before sending
    ├── APIConnectionError                         no HTTP response at all
    │   └── APITimeoutError
    ├── APIStatusError                             a non-2xx response
    │   ├── BadRequestError              400
    │   ├── AuthenticationError          401
    │   ├── PermissionDeniedError        403
    │   ├── NotFoundError                404
    │   ├── UnprocessableEntityError     422
    │   ├── RateLimitError               429
    │   └── ServerError                  5xx
    └── ResponseValidationError                    a 2xx whose body is not the documented shape

Messages and reprs never carry a token: the clients redact before they build an error.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestValidationError",
    "ResponseValidationError",
    "ServerError",
    "StacksAPIError",
    "UnprocessableEntityError",
    "status_error_class",
]


class StacksAPIError(Exception):
    """Base of every error this library raises on purpose."""


class RequestValidationError(StacksAPIError, ValueError):
    """An argument breaks a documented limit; nothing was sent.

    ``field`` names the argument (``metadata['k']``, ``job_uuids[3]``) and ``limit`` the rule.
    """

    def __init__(self, field: str, limit: str, *, value_hint: str | None = None) -> None:
        self.field = field
        self.limit = limit
        got = f" (got {value_hint})" if value_hint else ""
        super().__init__(f"{field}: {limit}{got}")


class APIConnectionError(StacksAPIError):
    """The request got no HTTP response: refused, reset, DNS, TLS, or a closed connection."""

    def __init__(self, message: str, *, method: str, url: str) -> None:
        self.method = method
        self.url = url
        super().__init__(f"{message} ({method} {url})")


class APITimeoutError(APIConnectionError):
    """The request timed out (connect, read, write or pool)."""


class APIStatusError(StacksAPIError):
    """The server answered with a non-2xx status.

    ``message`` is the server's ``message`` field when the body is JSON, otherwise a readable
    summary of the body (an HTML page from a proxy, say). ``body`` is the decoded JSON object, or
    the text, or ``None``.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: object,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.method = method
        self.url = url
        self.headers = dict(headers)
        self.body = body
        super().__init__(f"{status_code} {method} {url}: {message}")


class BadRequestError(APIStatusError):
    """400: the request's parameters are invalid."""


class AuthenticationError(APIStatusError):
    """401: the token is missing, invalid or expired (a cluster token, ``bkct_...``, is needed)."""


class PermissionDeniedError(APIStatusError):
    """403: the organization's stack limit is reached, or the job is not in this stack's queue."""


class NotFoundError(APIStatusError):
    """404: no such stack, job or queue."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was understood but failed validation."""


class RateLimitError(APIStatusError):
    """429: over the rate limit of ``scope``.

    ``retry_after`` is the wait in seconds the server asked for (``Retry-After``, else
    ``RateLimit-Reset``), or ``None`` when it gave none. ``limit``/``current``/``reset`` come from
    the body.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: object,
        retry_after: float | None = None,
        scope: str | None = None,
        limit: int | None = None,
        current: int | None = None,
        reset: float | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, method=method, url=url, headers=headers, body=body
        )
        self.retry_after = retry_after
        self.scope = scope
        self.limit = limit
        self.current = current
        self.reset = reset


class ServerError(APIStatusError):
    """5xx: the server failed, or the organization is temporarily unavailable (503)."""


class ResponseValidationError(StacksAPIError):
    """A 2xx response whose body is not the documented shape. ``body`` holds the raw bytes."""

    def __init__(self, message: str, *, method: str, url: str, status_code: int, body: bytes):
        self.method = method
        self.url = url
        self.status_code = status_code
        self.body = body
        super().__init__(
            f"{method} {url} returned {status_code} with an unexpected body: {message}"
        )


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The most specific error class for a non-2xx status."""
    if status_code >= 500:
        return ServerError
    return _BY_STATUS.get(status_code, APIStatusError)
