"""A scripted HTTP server for client tests: starlette on uvicorn, 127.0.0.1, in a thread.

Tests queue replies (status, JSON or raw body, headers, an optional delay) and read back every
request the client sent, exactly as it arrived (raw escaped path, query, headers, body).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["Recorded", "Reply", "ScriptedServer"]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass(frozen=True)
class Recorded:
    method: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class ScriptedServer:
    """Replies come from a queue (``reply``) or, when it is empty, from ``fallback``."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self.fallback: Callable[[Recorded], Reply] | None = None
        self._lock = threading.Lock()
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.port = 0

    # --- scripting ---------------------------------------------------------------------------

    def reply(
        self,
        status: int = 200,
        json: object = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        content_type: str = "application/json",
    ) -> None:
        raw = body if body is not None else (b"" if json is None else msgspec.json.encode(json))
        with self._lock:
            self._script.append(Reply(status, raw, headers or {}, delay, content_type))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.fallback = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/"

    # --- the app -----------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        request = Request(scope, receive)
        rec = Recorded(
            method=request.method,
            raw_path=scope["raw_path"].decode("ascii"),
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        with self._lock:
            self.requests.append(rec)
            reply = self._script.popleft() if self._script else None
        if reply is None:
            reply = self.fallback(rec) if self.fallback else Reply(599, b'{"message":"unscripted"}')
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = dict(reply.headers)
        response = Response(
            reply.body, status_code=reply.status, headers=headers, media_type=reply.content_type
        )
        await response(scope, receive, send)

    # --- life --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
