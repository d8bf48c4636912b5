"""The socket path's connections: keep-alive HTTP/1.1 to one origin, for Client and AsyncClient.

A client talks to one origin (its base URL), so a pool here is a stack of idle connections: the
most recently used is reused first, one idle longer than the keep-alive expiry or that the server
has closed (readable while idle) is dropped, at most ``max_connections`` are open at once (a
caller waits up to the pool timeout) and at most ``max_keepalive`` are kept. Limits, expiry and the
TLS context are the ones httpx2 gives its own pool. Failures are raised as the httpx2 exceptions
httpx2 would raise, so the clients' retry decisions do not depend on the path.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx2

from ._h1 import ResponseReader

__all__ = ["Origin", "SyncSocketPool", "timeout_errors"]

KEEPALIVE_EXPIRY = 5.0
MAX_CONNECTIONS = 100
MAX_KEEPALIVE = 20
_READ_SIZE = 256 * 1024


class Origin:
    """Where a client's connections go, and the TLS context for https."""

    __slots__ = ("host", "port", "ssl_context", "tls")

    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        self.tls = scheme == "https"
        self.host = host
        self.port = port or (443 if self.tls else 80)
        self.ssl_context: ssl.SSLContext | None = httpx2.create_ssl_context() if self.tls else None


def timeout_errors(phase: str) -> tuple[type[httpx2.TimeoutException], type[httpx2.HTTPError]]:
    """The httpx2 exceptions for a timeout and for any other failure in a phase."""
    return {
        "connect": (httpx2.ConnectTimeout, httpx2.ConnectError),
        "write": (httpx2.WriteTimeout, httpx2.WriteError),
        "read": (httpx2.ReadTimeout, httpx2.ReadError),
    }[phase]


def _raise_as(phase: str, exc: BaseException) -> None:
    timeout_cls, error_cls = timeout_errors(phase)
    if isinstance(exc, TimeoutError | socket.timeout):
        raise timeout_cls(f"timed out ({phase})") from exc
    raise error_cls(str(exc) or type(exc).__name__) from exc


class _Conn:
    __slots__ = ("idle_since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.idle_since = 0.0

    def closed_by_server(self) -> bool:
        """Readable while idle: the server closed it (or sent bytes no request asked for)."""
        try:
            return bool(select.select([self.sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True


class SyncSocketPool:
    """Blocking keep-alive connections to one origin; safe to share between threads."""

    def __init__(self, origin: Origin, clock: Callable[[], float] = time.monotonic) -> None:
        self.origin = origin
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._clock = clock
        self.closed = False

    def _connect(self, timeout: float | None) -> _Conn:
        o = self.origin
        try:
            sock = socket.create_connection((o.host, o.port), timeout=timeout)
        except OSError as exc:
            _raise_as("connect", exc)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if o.ssl_context is not None:
                sock = o.ssl_context.wrap_socket(sock, server_hostname=o.host)
        except OSError as exc:
            sock.close()
            _raise_as("connect", exc)
        return _Conn(sock)

    def _take(self, timeout: float | None) -> _Conn:
        now = self._clock()
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(timeout)
            if now - conn.idle_since > KEEPALIVE_EXPIRY or conn.closed_by_server():
                conn.sock.close()
                continue
            return conn

    def _give_back(self, conn: _Conn) -> None:
        conn.idle_since = self._clock()
        with self._lock:
            if not self.closed and len(self._idle) < MAX_KEEPALIVE:
                self._idle.append(conn)
                return
        conn.sock.close()

    def request(self, data: bytes, timeout: dict[str, Any]) -> ResponseReader:
        """Send one request's bytes and read its response."""
        if self.closed:
            raise RuntimeError("the client is closed")
        if not self._slots.acquire(timeout=timeout.get("pool")):
            raise httpx2.PoolTimeout("no connection free within the pool timeout")
        try:
            conn = self._take(timeout.get("connect"))
            reader = ResponseReader()
            try:
                self._exchange(conn.sock, data, reader, timeout)
            except BaseException:
                conn.sock.close()
                raise
            if reader.reusable:
                self._give_back(conn)
            else:
                conn.sock.close()
            return reader
        finally:
            self._slots.release()

    @staticmethod
    def _exchange(
        sock: socket.socket, data: bytes, reader: ResponseReader, timeout: dict[str, Any]
    ) -> None:
        try:
            sock.settimeout(timeout.get("write"))
            sock.sendall(data)
        except OSError as exc:
            _raise_as("write", exc)
        try:
            sock.settimeout(timeout.get("read"))
            while not reader.complete:
                chunk = sock.recv(_READ_SIZE)
                if not chunk:
                    reader.feed_eof()
                    break
                reader.feed(chunk)
        except OSError as exc:
            _raise_as("read", exc)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.sock.close()
