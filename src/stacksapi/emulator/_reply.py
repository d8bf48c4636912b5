"""Errors the emulator answers with, and the one JSON encoder it uses.

Operations raise :class:`EmulatorError` (a status and a message naming the field and the limit); the
app turns it into ``{"message": ...}``. Messages never carry a token.
"""

from __future__ import annotations

from typing import Any

import msgspec

from stacksapi._models import encode_hook

__all__ = ["EmulatorError", "encode"]

_ENCODER = msgspec.json.Encoder(enc_hook=encode_hook)


def encode(obj: Any) -> bytes:
    """JSON bytes of a model (``Secret`` values written out: the wire needs them)."""
    return _ENCODER.encode(obj)


class EmulatorError(Exception):
    """A refused operation: an HTTP ``status`` and a ``message`` naming the field and the rule.

    Raised by the Python driving methods too (404 unknown job, 422 wrong state, ...).
    """

    def __init__(self, status: int, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.headers: dict[str, str] = {}

    def body(self) -> bytes:
        return encode({"message": self.message, **self.extra})
