"""``stacksapi demo --dashboard``: the demo's emulator, watched in a browser and kept up after.

:class:`KeepServing` starts the demo's emulator server on the demo's behalf, prints the dashboard's
address (a one-time login link) before the first job runs, and after the summary keeps serving
until Ctrl-C or SIGTERM, so a person can look around once the stack is done. Without
``--dashboard`` it is a plain pass-through and the demo behaves as before.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click
from rich.console import Console

if TYPE_CHECKING:
    from stacksapi.emulator import EmulatorServer

__all__ = ["KeepServing"]


class KeepServing:
    """Holds the demo's server open past the demo when ``enabled``; messages go to ``console``
    (to stderr when ``console`` is ``None``, as with ``--json``)."""

    def __init__(self, *, enabled: bool, console: Console | None) -> None:
        self.enabled = enabled
        self.console = console
        self.server: EmulatorServer | None = None

    def _say(self, text: str) -> None:
        if self.console is None:
            click.echo(text, err=True)
        else:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    @contextlib.contextmanager
    def serve(self, server: EmulatorServer) -> Iterator[EmulatorServer]:
        """Run ``server`` for the demo; when enabled, start it and leave it running afterwards."""
        if not self.enabled:
            with server:
                yield server
            return
        server.start()
        self.server = server
        self._say(f"dashboard: {server.dashboard_login_url()} (open it to watch the demo)")
        yield server

    def wait_then_stop(self) -> None:
        """When enabled: serve until Ctrl-C or SIGTERM, then stop the server."""
        if self.server is None:
            return
        from stacksapi.emulator._serve import _stop_on_signals

        self._say(
            f"The emulator is still up. Dashboard: {self.server.dashboard_login_url()} "
            "(a new one-time login). Press Ctrl-C to stop."
        )
        stop = threading.Event()
        try:
            with _stop_on_signals(stop):
                while not stop.wait(0.2):
                    pass
        finally:
            self.server.stop()
            self.server = None
