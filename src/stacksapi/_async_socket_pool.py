"""The socket path for AsyncClient: keep-alive HTTP/1.1 connections as asyncio protocols.

The same pool as :mod:`._socket_pool` (one origin, most recent idle connection first, expiry,
limits, httpx2 exceptions), but each connection is an :class:`asyncio.Protocol` that feeds the
parser as bytes arrive and wakes the waiting request once the response is complete: no stream
objects and no task per read. Timeouts are loop timers. Connections belong to the event loop that
opened them; a client used from another loop starts afresh.
"""

# ``timeout`` is httpx2's per-phase timeout dict handed down by the client, not a deadline.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx2

from ._h1 import ResponseReader
from ._socket_pool import KEEPALIVE_EXPIRY, MAX_CONNECTIONS, MAX_KEEPALIVE, Origin, timeout_errors

__all__ = ["AsyncSocketPool"]


class _Conn(asyncio.Protocol):
    """One connection: hands received bytes to the current request's reader."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader: ResponseReader | None = None
        self.done: asyncio.Future[None] | None = None
        self.lost = False
        self.idle_since = 0.0
        self.read_timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """(Re)start the read timer: like httpx2, the read timeout bounds each wait for bytes."""
        if self._timer is not None:
            self._timer.cancel()
        if self.read_timeout is not None:
            self._timer = loop.call_later(self.read_timeout, self._timed_out)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(httpx2.ReadTimeout("timed out (read)"))

    def data_received(self, data: bytes) -> None:
        reader, done = self.reader, self.done
        if reader is None or done is None or done.done():
            self.close()  # bytes nobody asked for: this connection cannot be trusted again
            return
        try:
            reader.feed(data)
        except httpx2.HTTPError as exc:
            done.set_exception(exc)
            return
        if reader.complete:
            done.set_result(None)
        elif self._timer is not None:  # more to come: the read timeout starts again
            self.arm(done.get_loop())

    def eof_received(self) -> bool | None:
        self._ended(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: Exception | None) -> None:
        self.lost = True
        reader, done = self.reader, self.done
        if reader is None or done is None or done.done():
            return
        try:
            if exc is not None:
                raise httpx2.ReadError(str(exc) or type(exc).__name__) from exc
            reader.feed_eof()
        except httpx2.HTTPError as err:
            done.set_exception(err)
            return
        done.set_result(None)

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


class AsyncSocketPool:
    """Keep-alive connections to one origin for one event loop at a time."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self._idle: list[_Conn] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self.closed = False

    def _bind(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        if self._loop is not loop or self._slots is None:
            for conn in self._idle:
                conn.close()
            self._idle = []
            self._loop = loop
            self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        return self._slots

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> _Conn:
        o = self.origin
        timeout_cls, error_cls = timeout_errors("connect")
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    _Conn,
                    o.host,
                    o.port,
                    ssl=o.ssl_context,
                    server_hostname=o.host if o.ssl_context is not None else None,
                )
        except TimeoutError as exc:
            raise timeout_cls("timed out (connect)") from exc
        except OSError as exc:
            raise error_cls(str(exc) or type(exc).__name__) from exc
        return conn

    def _take_idle(self, now: float) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.lost or now - conn.idle_since > KEEPALIVE_EXPIRY:
                conn.close()
                continue
            return conn
        return None

    async def request(self, data: bytes, timeout: dict[str, Any]) -> ResponseReader:
        """Send one request's bytes and read its response."""
        if self.closed:
            raise RuntimeError("the client is closed")
        loop = asyncio.get_running_loop()
        slots = self._bind(loop)
        if slots.locked():  # every connection busy: wait, up to the pool timeout
            try:
                async with asyncio.timeout(timeout.get("pool")):
                    await slots.acquire()
            except TimeoutError:
                raise httpx2.PoolTimeout("no connection free within the pool timeout") from None
        else:
            await slots.acquire()
        try:
            conn = self._take_idle(time.monotonic()) or await self._connect(
                loop, timeout.get("connect")
            )
            try:
                reader = await self._exchange(loop, conn, data, timeout)
            except BaseException:
                conn.close()
                raise
            finally:
                conn.reader = conn.done = None
            if reader.reusable and not conn.lost and not self.closed:
                conn.idle_since = time.monotonic()
                if len(self._idle) < MAX_KEEPALIVE:
                    self._idle.append(conn)
                else:
                    conn.close()
            else:
                conn.close()
            return reader
        finally:
            slots.release()

    @staticmethod
    async def _exchange(
        loop: asyncio.AbstractEventLoop, conn: _Conn, data: bytes, timeout: dict[str, Any]
    ) -> ResponseReader:
        reader = ResponseReader()
        done: asyncio.Future[None] = loop.create_future()
        conn.reader, conn.done = reader, done
        transport = conn.transport
        if transport is None or conn.lost:
            raise httpx2.WriteError("connection closed")
        # The transport buffers what the socket does not take at once, so a write never blocks
        # here; the read timeout then bounds each wait for the server's bytes.
        transport.write(data)
        conn.read_timeout = timeout.get("read")
        conn.arm(loop)
        try:
            await done
        finally:
            conn.disarm()
        return reader

    def close(self) -> None:
        self.closed = True
        for conn in self._idle:
            conn.close()
        self._idle = []
