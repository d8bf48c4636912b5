"""How a client puts one request on the wire: through httpx2, or straight onto httpcore2's pool.

Both paths take the same arguments and return a :class:`Reply` (status, headers, body), so the
clients' send loops do not know which one they drive.

- The **httpx2 path** serves a caller's own ``http_client`` and any set-up with a proxy from the
  environment: everything httpx2 offers (proxies, mounts, event hooks, HTTP/2) stays in force.
- The **direct path** is chosen automatically for a client that owns its connections and no proxy
  applies. It drives the connection pool httpx2 itself is built on (same TLS context, limits,
  keep-alive and timeouts) but skips what the Stacks API never needs on every call: parsing and
  merging URLs (the target is built once from the validated base URL), cookie jars, redirects,
  auth flows and event hooks. Bodies are read whole; gzip and deflate are decoded as httpx2 does.

``STACKSAPI_HTTP_PATH=httpx`` forces the httpx2 path (the test suite runs both ways with it).
"""

# ``timeout=`` is an httpx2 timeout handed to the transport, not a deadline.
# ruff: noqa: ASYNC109

from __future__ import annotations

import os
import urllib.request
import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import httpcore2
import httpx2

from ._core import Call

__all__ = [
    "AsyncHttpxPath",
    "AsyncPoolPath",
    "HttpxPath",
    "PoolPath",
    "Reply",
    "direct_path_allowed",
]

_ACCEPT_ENCODING = b"gzip, deflate"
# Most specific first: a ReadTimeout is also a TimeoutException, a ConnectError a NetworkError.
_ERRORS: tuple[tuple[type[Exception], type[httpx2.HTTPError]], ...] = (
    (httpcore2.ConnectTimeout, httpx2.ConnectTimeout),
    (httpcore2.ReadTimeout, httpx2.ReadTimeout),
    (httpcore2.WriteTimeout, httpx2.WriteTimeout),
    (httpcore2.PoolTimeout, httpx2.PoolTimeout),
    (httpcore2.TimeoutException, httpx2.TimeoutException),
    (httpcore2.ConnectError, httpx2.ConnectError),
    (httpcore2.ReadError, httpx2.ReadError),
    (httpcore2.WriteError, httpx2.WriteError),
    (httpcore2.NetworkError, httpx2.NetworkError),
    (httpcore2.ProxyError, httpx2.ProxyError),
    (httpcore2.UnsupportedProtocol, httpx2.UnsupportedProtocol),
    (httpcore2.RemoteProtocolError, httpx2.RemoteProtocolError),
    (httpcore2.LocalProtocolError, httpx2.LocalProtocolError),
    (httpcore2.ProtocolError, httpx2.ProtocolError),
)


class Reply(NamedTuple):
    """What came back for one request."""

    status: int
    headers: httpx2.Headers
    content: bytes


def direct_path_allowed() -> bool:
    """True unless the environment names a proxy or ``STACKSAPI_HTTP_PATH=httpx`` is set."""
    if os.environ.get("STACKSAPI_HTTP_PATH", "").strip().lower() == "httpx":
        return False
    return not urllib.request.getproxies_environment()


# --- the httpx2 path ---------------------------------------------------------------------------


class HttpxPath:
    """Sends through an ``httpx2.Client`` (the caller's, or one the client made)."""

    def __init__(self, http: httpx2.Client) -> None:
        self.http = http

    def send(
        self,
        call: Call,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Reply:
        r = self.http.request(
            call.method,
            url,
            content=call.body,
            params=call.params,
            headers=headers,
            timeout=timeout,
        )
        return Reply(r.status_code, r.headers, r.content)

    @property
    def closed(self) -> bool:
        return self.http.is_closed

    def close(self) -> None:
        self.http.close()


class AsyncHttpxPath:
    """Sends through an ``httpx2.AsyncClient``."""

    def __init__(self, http: httpx2.AsyncClient) -> None:
        self.http = http

    async def send(
        self,
        call: Call,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Reply:
        r = await self.http.request(
            call.method,
            url,
            content=call.body,
            params=call.params,
            headers=headers,
            timeout=timeout,
        )
        return Reply(r.status_code, r.headers, r.content)

    @property
    def closed(self) -> bool:
        return self.http.is_closed

    async def close(self) -> None:
        await self.http.aclose()


# --- the direct path: the sans-IO part both flavours share ------------------------------------


class _Wire:
    """Request heads and reply bodies for the direct path; the same for sync and async."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: httpx2.Timeout) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme.encode("ascii")
        self.host = (parts.hostname or "").encode("idna")
        self.port = parts.port
        self.base = base_url
        self.prefix = len(base_url)
        self.path = (parts.path or "/").encode("ascii")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        default_port = {"http": 80, "https": 443}.get(parts.scheme)
        if parts.port == default_port:
            netloc = netloc.rsplit(":", 1)[0]
        self.head: list[tuple[bytes, bytes]] = [
            (b"Host", netloc.encode("idna")),
            (b"Accept-Encoding", _ACCEPT_ENCODING),
            (b"Connection", b"keep-alive"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        self.timeout = timeout.as_dict()

    def request(
        self,
        call: Call,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> httpcore2.Request:
        if not url.startswith(self.base):  # never: the clients build every URL from the base
            raise httpx2.UnsupportedProtocol(f"request URL outside the client's base URL: {url}")
        target = self.path + url[self.prefix :].encode("ascii")
        if call.params:
            target += b"?" + urlencode(call.params).encode("ascii")
        head = list(self.head)
        if headers:
            head += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if call.body is not None:
            head.append((b"Content-Length", str(len(call.body)).encode("ascii")))
        tmo = timeout.as_dict() if isinstance(timeout, httpx2.Timeout) else self.timeout
        return httpcore2.Request(
            call.method.encode("ascii"),
            httpcore2.URL(scheme=self.scheme, host=self.host, port=self.port, target=target),
            headers=head,
            content=call.body,
            extensions={"timeout": tmo},
        )

    @staticmethod
    def reply(response: httpcore2.Response, content: bytes) -> Reply:
        headers = httpx2.Headers(response.headers)
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding and content:
            content = _decode(encoding, content)
        return Reply(response.status, headers, content)


def _decode(encoding: str, content: bytes) -> bytes:
    """Undo gzip or deflate (zlib-wrapped or raw), as httpx2 does; other codings as they are."""
    try:
        if encoding == "gzip":
            return zlib.decompress(content, zlib.MAX_WBITS | 16)
        if encoding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise httpx2.DecodingError(f"{encoding} body could not be decoded: {exc}") from None
    return content


def _mapped(exc: Exception) -> httpx2.HTTPError | None:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc))
    return None


def _pool_options() -> dict[str, Any]:
    """What httpx2's default transport gives its pool: TLS from the environment, its limits."""
    limits = httpx2.Limits(max_connections=100, max_keepalive_connections=20)
    return {
        "ssl_context": httpx2.create_ssl_context(),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": True,
        "http2": False,
    }


# --- the direct path ---------------------------------------------------------------------------


class PoolPath:
    """Sends straight onto an ``httpcore2.ConnectionPool`` of the client's own."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: httpx2.Timeout) -> None:
        self.wire = _Wire(base_url, headers, timeout)
        self.pool = httpcore2.ConnectionPool(**_pool_options())
        self.closed = False

    def send(
        self,
        call: Call,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Reply:
        request = self.wire.request(call, url, headers, timeout)
        try:
            response = self.pool.handle_request(request)
            try:
                content = response.read()
            finally:
                response.close()
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self.wire.reply(response, content)

    def close(self) -> None:
        self.closed = True
        self.pool.close()


class AsyncPoolPath:
    """Sends straight onto an ``httpcore2.AsyncConnectionPool`` of the client's own."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: httpx2.Timeout) -> None:
        self.wire = _Wire(base_url, headers, timeout)
        self.pool = httpcore2.AsyncConnectionPool(**_pool_options())
        self.closed = False

    async def send(
        self,
        call: Call,
        url: str,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Reply:
        request = self.wire.request(call, url, headers, timeout)
        try:
            response = await self.pool.handle_async_request(request)
            try:
                content = await response.aread()
            finally:
                await response.aclose()
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return self.wire.reply(response, content)

    async def close(self) -> None:
        self.closed = True
        await self.pool.aclose()
