"""``SharedKeyWatch``: notice, loudly, when another process uses this stack's key.

Two processes with one key both reserve a job (a reserve by the same key extends the other's
reservation), both start an agent, and one agent loses the acquire race. Nothing runs twice (the
server arbitrates), but work is wasted and one process's deregistration takes the key from the
other. The runtime reports the signs here: an agent that lost the race for its job (recognised
as such, never as a failed job) and a stack the server forgot while it ran. Each sign counts in
the ``shared_key_detected`` metric; a warning is logged at most once a minute. An agent refused
a job the key still holds is warned about too, but is no sign: a wrong token looks the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._metrics import StackMetrics

__all__ = ["SharedKeyWatch"]

WARN_EVERY = 60.0


class SharedKeyWatch:
    """Counts the signs of a shared stack key and warns about them (rate-limited)."""

    def __init__(
        self, key: str, metrics: StackMetrics, log: logging.Logger, clock: Callable[[], float]
    ) -> None:
        self._key, self._metrics, self._log, self._clock = key, metrics, log, clock
        self._warned_at: float | None = None
        self.signs = 0
        self.refusals = 0

    def sign(self, what: str) -> None:
        """One sign that another process uses this key (``what`` says which, in a few words)."""
        self.signs += 1
        self._metrics.inc("shared_key_detected")
        if self._may_warn():
            self._log.warning(
                "stack %s: another process appears to be using this stack key (%s; %d signs so"
                " far). Nothing runs twice, but agents are started for nothing and one process's"
                " deregistration takes the key from the other: give each process its own key.",
                self._key, what, self.signs, extra={"event": "shared_key"},
            )  # fmt: skip

    def refused(self, uuid: str) -> None:
        """An agent was refused job ``uuid`` although this key still holds it: its token died
        early. Another process deregistering the key does that, but so does a wrong agent token
        or endpoint, so it is counted (``acquires_refused``) and warned about, not a sign."""
        self.refusals += 1
        self._metrics.inc("acquires_refused")
        if self._may_warn():
            self._log.warning(
                "stack %s: an agent was refused job %s although this key still holds it (%d so"
                " far): its token stopped working early. Another process deregistering this key"
                " does that (give each process its own key), and so does a wrong agent token or"
                " endpoint. The job is dispatched again with a fresh token.",
                self._key, uuid, self.refusals, extra={"event": "acquire_refused"},
            )  # fmt: skip

    def _may_warn(self) -> bool:
        """At most one of these warnings a minute."""
        now = self._clock()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            return False
        self._warned_at = now
        return True
