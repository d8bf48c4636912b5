"""Redaction of secrets from text bound for logs, exception messages and reprs.

Two rules: the client's own cluster token is replaced wherever it appears, and anything that looks
like a Buildkite token (``bkct_``, ``bkjat_``, ``bkaa_`` followed by token characters) is replaced
too, so job acquisition tokens in a logged response body never leak either.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "Redactor"]

MASK = "***"

_TOKEN_LIKE = re.compile(r"(bkjat_|bkct_|bkaa_)[A-Za-z0-9_\-+/=.~%]+")
_MIN_LITERAL = 8  # shorter "tokens" are not replaced literally: that would shred ordinary text


class Redactor:
    """Removes one cluster token and every token-looking value from text."""

    __slots__ = ("_token",)

    def __init__(self, token: str | None) -> None:
        self._token = token if token and len(token) >= _MIN_LITERAL else None

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by a mask."""
        if self._token is not None and self._token in value:
            value = value.replace(self._token, MASK)
        if "bk" in value:
            value = _TOKEN_LIKE.sub(lambda m: m.group(1) + MASK, value)
        return value

    def bytes_(self, value: bytes) -> str:
        """A body as redacted text (undecodable bytes shown as escapes)."""
        return self.text(value.decode("utf-8", "backslashreplace"))

    def obj(self, value: object) -> object:
        """A decoded JSON value with every string in it redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.obj(v) for v in value]
        return value
