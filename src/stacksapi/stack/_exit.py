"""How a run ends: :class:`StackExit` (returned to the caller), :class:`Fatal` (raised inside)."""

from __future__ import annotations

import dataclasses

__all__ = ["MAX_BACKOFF", "Fatal", "StackExit"]

MAX_BACKOFF = 30.0
"""The longest wait between two tries of anything the runtime retries (seconds)."""


@dataclasses.dataclass(frozen=True, slots=True)
class StackExit:
    """Why :meth:`Stack.run_async` returned. ``error`` is set when the loop died of it."""

    reason: str
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_code(self) -> int:
        """For a CLI: 0 after a requested stop, 1 after a permanent error."""
        return 0 if self.ok else 1


class Fatal(Exception):
    """The loop cannot go on; ``reason`` says why in one line."""

    def __init__(self, reason: str, cause: BaseException) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
