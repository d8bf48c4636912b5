"""``Health``: what a stack's ``/healthz`` and ``/readyz`` answer, kept by the stack itself.

The :class:`~stacksapi.stack.Stack` marks the milestones (registered, a poll that succeeded,
stopping); the status server only reads them. *Ready* means registered and polling: the last
successful poll is recent. *Live* means the event loop answers (the server runs in it) and the
stack has not given up, so an orchestrator restarts a process that hangs or has stopped for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Health"]


class Health:
    """Readiness and liveness of one stack. Plain attributes, written only by the stack's loop.

    ``stale_after`` (seconds) is how old the last successful poll may be for the stack to count
    as polling; by default ten poll intervals, at least 60 s, so retries after a transient API
    error (backoff up to 30 s) do not flap readiness.
    """

    def __init__(
        self,
        *,
        poll_interval: float,
        stale_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stale_after = stale_after if stale_after is not None else max(60.0, 10 * poll_interval)
        self.registered = False
        self.stopping = False
        self.failed: str | None = None
        self.last_poll: float | None = None
        self._clock = clock

    def polled(self) -> None:
        """A poll succeeded (a page was read)."""
        self.last_poll = self._clock()

    def ready(self) -> tuple[bool, str]:
        """Whether the stack is registered and polling, and why not."""
        if self.failed is not None:
            return False, f"stopped: {self.failed}"
        if self.stopping:
            return False, "stopping"
        if not self.registered:
            return False, "not registered yet"
        if self.last_poll is None:
            return False, "registered, no successful poll yet"
        age = self._clock() - self.last_poll
        if age > self.stale_after:
            return False, f"no successful poll for {age:.0f}s"
        return True, "registered and polling"

    def live(self) -> tuple[bool, str]:
        """False once the stack has stopped on a permanent error (the process should exit)."""
        if self.failed is not None:
            return False, f"stopped: {self.failed}"
        return True, "stopping" if self.stopping else "running"
