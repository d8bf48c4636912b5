"""``EmulatorServer``: the emulator over real HTTP, uvicorn in a background thread.

The listening socket is bound before the thread starts, so ``base_url`` is known at once and the
server is ready as soon as uvicorn's loop accepts (well under a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import threading
import time
from collections.abc import Sequence
from types import TracebackType

import uvicorn
from starlette.middleware import Middleware

from ._app import create_app
from ._state import Emulator

__all__ = ["EmulatorServer"]

_START_TIMEOUT = 10.0
_LOOPS = ("auto", "asyncio", "uvloop")
_WILDCARD_TO_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once by :meth:`wake` instead of noticing on its 0.1 s tick."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)

    def wake(self) -> None:
        self.should_exit = True
        loop, event = self._loop, self._wake
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(event.set)


class EmulatorServer:
    """Serve ``emulator`` (a new one when ``None``) on ``host:port`` (port 0: an ephemeral one).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``base_url`` ends in
    ``/v3/`` (give it to a client with ``emulator.token``); ``admin_url`` ends in ``/_emulator/``
    (use ``admin_token``). ``loop`` is uvicorn's: ``"auto"`` (uvloop when installed),
    ``"asyncio"`` or ``"uvloop"``.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        middleware: Sequence[Middleware] = (),
        log_level: str = "warning",
        loop: str = "auto",
    ) -> None:
        if loop not in _LOOPS:
            raise ValueError(f"loop: must be one of {', '.join(_LOOPS)}, got {loop!r}")
        if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ModuleNotFoundError("loop='uvloop' needs uvloop installed", name="uvloop")
        self.emulator = emulator if emulator is not None else Emulator()
        self.host = host
        self.app = create_app(self.emulator, middleware=middleware)
        self._requested_port = port
        self._log_level = log_level
        self._loop = loop
        self._socket: socket.socket | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """``http://host:port`` without a path, an address a client on this machine can reach.

        Bound to every interface (``0.0.0.0``, ``::``), that is the loopback address: the wildcard
        is not a destination, and a client sends its token over plain http only to loopback.
        """
        host = _WILDCARD_TO_LOOPBACK.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The Stacks API base, ending in ``/v3/``."""
        return f"{self.url}/v3/"

    @property
    def admin_url(self) -> str:
        """The admin API base, ending in ``/_emulator/``."""
        return f"{self.url}/_emulator/"

    @property
    def token(self) -> str:
        """A cluster token the emulator accepts."""
        return self.emulator.token

    @property
    def admin_token(self) -> str:
        """The token of the admin API (``admin_url``)."""
        return self.emulator.admin_token

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmulatorServer:
        """Bind, start serving in a daemon thread and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("EmulatorServer: already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(2048)
        sock.setblocking(False)
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level=self._log_level,
            loop=self._loop,
            lifespan="off",
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        server = _Server(config)
        self._server = server
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"stacksapi-emulator:{self.port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("EmulatorServer: uvicorn did not start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        if self._server is not None:
            self._server.wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
        self._thread = None
        self._server = None
        self._socket = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.base_url if self.running else "stopped"
        return f"EmulatorServer({state})"
