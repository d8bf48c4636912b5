"""How a client puts one request on the wire, chosen once per client; the send loops never know.

Three paths, all returning a :class:`~._wire.Reply` and raising httpx2's exceptions:

- **httpx2** — a caller's own ``http_client``, or a proxy named in the environment: everything
  httpx2 offers (proxies, mounts, event hooks, HTTP/2) stays in force.
- **socket** (the default otherwise) — keep-alive HTTP/1.1 connections of the client's own
  (:mod:`._socket_pool`, :mod:`._async_socket_pool`), responses parsed by httptools. It keeps what
  the Stacks API uses (TLS verified with httpx2's context, the same limits, keep-alive expiry and
  per-phase timeouts, gzip) and drops what it never does on every call: URL parsing and merging,
  cookies, redirects, auth flows, hooks, and h11's pure-Python event machinery.
- **pool** — httpcore2's connection pool, the layer httpx2 is built on: where httptools is not
  installed, and for AsyncClient under an event loop other than asyncio (trio).

``STACKSAPI_HTTP_PATH`` = ``httpx``, ``pool`` or ``socket`` forces one (the test suite runs the
client tests on each); a proxy in the environment always means httpx2.
"""

# ``timeout=`` is an httpx2 timeout handed to the transport, not a deadline.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import importlib.util
import os
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import httpcore2
import httpx2

from ._core import Call
from ._wire import Reply, Wire

__all__ = [
    "AsyncHttpxPath",
    "AsyncPoolPath",
    "AsyncSocketPath",
    "HttpxPath",
    "PoolPath",
    "SocketPath",
    "async_path",
    "choose_path",
    "sync_path",
]

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


def choose_path(own_connections: bool) -> str:
    """``httpx``, ``pool`` or ``socket`` for a client (see the module docstring)."""
    forced = os.environ.get("STACKSAPI_HTTP_PATH", "").strip().lower()
    if not own_connections or forced == "httpx" or urllib.request.getproxies_environment():
        return "httpx"  # a proxy is never bypassed, whatever is forced
    if forced in ("pool", "socket"):
        return forced
    return "socket" if importlib.util.find_spec("httptools") is not None else "pool"


# --- httpx2 --------------------------------------------------------------------------------


class HttpxPath:
    """Sends through an ``httpx2.Client`` (the caller's, or one the client made)."""

    def __init__(self, http: httpx2.Client) -> None:
        self.http = http

    def send(self, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any) -> Reply:
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
        self, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any
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


# --- httpcore2's pool ----------------------------------------------------------------------


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


def _core_request(
    wire: Wire, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any
) -> httpcore2.Request:
    return httpcore2.Request(
        call.method.encode("ascii"),
        httpcore2.URL(
            scheme=wire.scheme.encode("ascii"),
            host=wire.hostname.encode("idna"),
            port=wire.port,
            target=wire.target(call, url),
        ),
        headers=wire.headers(call, headers),
        content=call.body,
        extensions={"timeout": wire.timeouts(timeout)},
    )


def _mapped(exc: Exception) -> httpx2.HTTPError | None:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc))
    return None


class PoolPath:
    """Sends onto an ``httpcore2.ConnectionPool`` of the client's own."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.pool = httpcore2.ConnectionPool(**_pool_options())
        self.closed = False

    def send(self, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any) -> Reply:
        request = _core_request(self.wire, call, url, headers, timeout)
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
        return self.wire.reply(response.status, response.headers, content)

    def close(self) -> None:
        self.closed = True
        self.pool.close()


class AsyncPoolPath:
    """Sends onto an ``httpcore2.AsyncConnectionPool`` of the client's own."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.pool = httpcore2.AsyncConnectionPool(**_pool_options())
        self.closed = False

    async def send(
        self, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any
    ) -> Reply:
        request = _core_request(self.wire, call, url, headers, timeout)
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
        return self.wire.reply(response.status, response.headers, content)

    async def close(self) -> None:
        self.closed = True
        await self.pool.aclose()


# --- sockets of our own --------------------------------------------------------------------


def _socket_request(
    encode: Callable[[bytes, bytes, list[tuple[bytes, bytes]], bytes | None], bytes],
    wire: Wire,
    call: Call,
    url: str,
    headers: Mapping[str, str] | None,
) -> bytes:
    """One call's request bytes for the socket paths (``encode`` is ``_h1.request_bytes``,
    imported by the paths so that httptools stays optional for the others)."""
    return encode(
        call.method.encode("ascii"), wire.target(call, url), wire.headers(call, headers), call.body
    )


class SocketPath:
    """Sends over the client's own keep-alive connections (:mod:`._socket_pool`)."""

    def __init__(self, wire: Wire) -> None:
        from ._h1 import request_bytes
        from ._socket_pool import Origin, SyncSocketPool

        self.wire = wire
        self._bytes = request_bytes
        self.pool = SyncSocketPool(Origin(wire.scheme, wire.hostname, wire.port))

    def send(self, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any) -> Reply:
        wire = self.wire
        data = _socket_request(self._bytes, wire, call, url, headers)
        reader = self.pool.request(data, wire.timeouts(timeout))
        return wire.reply(reader.status, reader.headers, reader.body)

    @property
    def closed(self) -> bool:
        return self.pool.closed

    def close(self) -> None:
        self.pool.close()


class AsyncSocketPath:
    """Sends over the client's own asyncio connections; under another event loop, the pool path."""

    def __init__(self, wire: Wire) -> None:
        from ._async_socket_pool import AsyncSocketPool
        from ._h1 import request_bytes
        from ._socket_pool import Origin

        self.wire = wire
        self._bytes = request_bytes
        self.pool = AsyncSocketPool(Origin(wire.scheme, wire.hostname, wire.port))
        self._fallback: AsyncPoolPath | None = None

    async def send(
        self, call: Call, url: str, headers: Mapping[str, str] | None, timeout: Any
    ) -> Reply:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio through anyio): httpcore2 serves both
            if self._fallback is None:
                self._fallback = AsyncPoolPath(self.wire)
            return await self._fallback.send(call, url, headers, timeout)
        wire = self.wire
        data = _socket_request(self._bytes, wire, call, url, headers)
        reader = await self.pool.request(data, wire.timeouts(timeout))
        return wire.reply(reader.status, reader.headers, reader.body)

    @property
    def closed(self) -> bool:
        return self.pool.closed

    async def close(self) -> None:
        self.pool.close()
        if self._fallback is not None:
            await self._fallback.close()


def sync_path(
    http_client: httpx2.Client | None, base_url: str, headers: dict[str, str], timeout: Any
) -> HttpxPath | PoolPath | SocketPath:
    """The path a :class:`~stacksapi.Client` sends on."""
    path = choose_path(own_connections=http_client is None)
    if path == "httpx":
        return HttpxPath(
            http_client or httpx2.Client(headers=headers, timeout=timeout, follow_redirects=False)
        )
    wire = Wire(base_url, headers, timeout)
    return SocketPath(wire) if path == "socket" else PoolPath(wire)


def async_path(
    http_client: httpx2.AsyncClient | None, base_url: str, headers: dict[str, str], timeout: Any
) -> AsyncHttpxPath | AsyncPoolPath | AsyncSocketPath:
    """The path an :class:`~stacksapi.AsyncClient` sends on."""
    path = choose_path(own_connections=http_client is None)
    if path == "httpx":
        return AsyncHttpxPath(
            http_client
            or httpx2.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False)
        )
    wire = Wire(base_url, headers, timeout)
    return AsyncSocketPath(wire) if path == "socket" else AsyncPoolPath(wire)
