"""Everything a run wrote to logging, as text to search for secrets.

A handler on the root logger at DEBUG keeps each record's formatted message, its raw ``msg`` and
``args`` and its ``extra`` fields, so a secret hidden in any of them is found, whatever a real
handler would have printed.

One logger is left out: ``httpcore2``'s DEBUG trace prints raw response headers as they arrived,
so a server that echoes a token in a *header* shows there. It is the transport library's trace,
off unless a user turns it on; stacksapi's own loggers, httpx2's request lines and everything
the stack, the emulator and the CLI log are all searched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["UNSEARCHED", "LogCapture", "capture_logs", "leaks"]

UNSEARCHED = ("httpcore2",)

_STANDARD = set(vars(logging.makeLogRecord({})))


class LogCapture(logging.Handler):
    """Collects the text of every record (and how many there were)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records = 0
        self.parts: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(UNSEARCHED):
            return
        self.records += 1
        self.parts.append(self.format(record))
        self.parts.append(str(record.msg))
        self.parts.append(repr(record.args))
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        self.parts.append(repr(extras))

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


@contextmanager
def capture_logs() -> Iterator[LogCapture]:
    """Capture every logger at DEBUG for the duration of the block."""
    root = logging.getLogger()
    handler = LogCapture()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def leaks(text: str, *secrets: str) -> list[str]:
    """The secrets found in ``text`` (shown by length only, never their value)."""
    return [f"secret #{i} ({len(s)} chars)" for i, s in enumerate(secrets) if s and s in text]
