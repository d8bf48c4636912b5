"""``StatusServer``: ``/metrics``, ``/healthz`` and ``/readyz`` of a stack, over HTTP.

A small starlette app served by uvicorn *inside the stack's event loop*: a probe that gets an
answer has proved the loop is not stuck. Started when ``metrics_port`` is set, on
``metrics_host`` (loopback by default; ``0.0.0.0`` in a pod so the kubelet and Prometheus reach
it). The socket is bound here, so a taken port is one logged error, not a dead stack: metrics
and probes are not worth stopping the stack for. Needs starlette and uvicorn (the ``cli`` or
``metrics`` extra); ``/metrics`` also needs prometheus-client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

from ._health import Health
from ._metrics import StackMetrics

__all__ = ["StatusServer"]

_log = logging.getLogger("stacksapi.stack")


def _app(metrics: StackMetrics, health: Health) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    def probe(answer: tuple[bool, str]) -> Response:
        ok, reason = answer
        return PlainTextResponse(f"{'ok' if ok else 'not ok'}: {reason}\n", 200 if ok else 503)

    async def healthz(_: Request) -> Response:
        return probe(health.live())

    async def readyz(_: Request) -> Response:
        return probe(health.ready())

    async def exposition(_: Request) -> Response:
        body = metrics.exposition()
        if body is None:
            return PlainTextResponse("prometheus-client is not installed\n", 404)
        data, content_type = body
        return Response(data, headers={"Content-Type": content_type})

    routes = [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", exposition, methods=["GET", "HEAD"]),
    ]
    return Starlette(routes=routes)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class StatusServer:
    """Serves one stack's metrics and probes in the running event loop until :meth:`close`."""

    def __init__(self, metrics: StackMetrics, health: Health) -> None:
        self.metrics = metrics
        self.health = health
        self.port: int | None = None
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, port: int, host: str = "127.0.0.1") -> int | None:
        """Listen on ``host:port`` (0: any free port); the bound port, or ``None`` (logged)."""
        try:
            import uvicorn

            app = _app(self.metrics, self.health)
        except ImportError as exc:
            _log.error("metrics_port set but the status server cannot run: %s", exc)
            return None
        try:
            sock = _bind(host, port)
        except OSError as exc:
            _log.error("cannot serve metrics and probes on %s:%d: %s", host, port, exc)
            return None

        class _Quiet(uvicorn.Server):
            """The stack owns SIGINT/SIGTERM: uvicorn must not capture them."""

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = server = _Quiet(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="stack-status")
        for _ in range(3000):  # a few loop turns on a bound socket; 30 s at the very most
            if server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:  # pragma: no cover - uvicorn failed to start on a bound socket
            await self.close()
            sock.close()
            _log.error("the status server did not start")
            return None
        self.port = self.metrics.port = int(sock.getsockname()[1])
        _log.info("metrics on http://%s:%d/metrics, probes /healthz /readyz", host, self.port)
        return self.port

    async def close(self) -> None:
        """Stop serving (a no-op when not serving)."""
        server, task, self._server, self._task = self._server, self._task, None, None
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
