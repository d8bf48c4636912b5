"""Redaction of secrets from text bound for logs, exception messages and reprs.

Two rules: a known secret (the client's own cluster token) is replaced wherever it appears, and
anything shaped like a Buildkite token is replaced too, so a job acquisition token in a logged
response body, an agent's output or a dispatcher's error never leaks either. This is the one place
that knows token shapes: the client, the stack runtime and the CLI all mask through it.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "TOKEN_SHAPE", "Redactor", "redact_tokens"]

MASK = "***"

TOKEN_SHAPE = re.compile(r"(bkjat_|bkct_|bkaa_|bkat_|bkua_|bkar_|bkemu_)[A-Za-z0-9_\-+/=.~%]+")
"""A Buildkite token by its prefix: job acquisition (``bkjat_``), cluster (``bkct_``), agent
(``bkaa_``, ``bkat_``), user API (``bkua_``), registration (``bkar_``), and the emulator's admin
token (``bkemu_``). Matched anywhere, even inside a word or after an escape (``%3Dbkct_...``):
masking a word too many is harmless, missing a token is not."""

_MIN_LITERAL = 8  # shorter "tokens" are not replaced literally: that would shred ordinary text


def redact_tokens(text: str, *secrets: str | None, mask: str = MASK) -> str:
    """``text`` with each given secret and every token-shaped word masked (the prefix is kept).

    Secrets shorter than 8 characters are not replaced literally: that would shred ordinary text.
    """
    for secret in secrets:
        if secret and len(secret) >= _MIN_LITERAL and secret in text:
            text = text.replace(secret, mask)
    if "bk" not in text:
        return text
    return TOKEN_SHAPE.sub(lambda m: m.group(1) + mask, text)


class Redactor:
    """Removes one cluster token and every token-looking value from text."""

    __slots__ = ("_token",)

    def __init__(self, token: str | None) -> None:
        self._token = token if token and len(token) >= _MIN_LITERAL else None

    def text(self, value: str) -> str:
        """``value`` with every secret replaced by a mask."""
        return redact_tokens(value, self._token)

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
