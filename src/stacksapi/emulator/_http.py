"""Small HTTP helpers shared by the API and admin routes: the token, a capped body read, and
the decoding of a JSON body into a request Struct."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from ._reply import EmulatorError

__all__ = ["MAX_BODY_BYTES", "decode_body", "read_body", "request_token"]

MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest Stacks API request body accepted (a full notifications batch is well under it)."""
_DRAIN_BYTES = 64 * 1024 * 1024


def request_token(request: Request) -> str | None:
    """The token of ``Authorization: Token <t>`` (``Bearer`` accepted too), or ``None``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() in ("token", "bearer") and value:
        return value
    return None


async def read_body(request: Request, cap: int = MAX_BODY_BYTES) -> bytes:
    """The request body, chunked or not; 413 past ``cap`` (read to the end first, so the client
    gets the answer rather than a reset connection)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= cap:
            chunks.append(chunk)
        elif size > _DRAIN_BYTES:
            break
    if size > cap:
        raise EmulatorError(413, f"request body: at most {cap} bytes (got more)")
    return b"".join(chunks)


def decode_body(body: bytes, type_: type[Any]) -> Any:
    """Decode a JSON body into a request Struct; 400 naming the field when it does not fit."""
    if not body.strip():
        raise EmulatorError(400, "request body: a JSON object is required")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise EmulatorError(400, f"request body: {exc}") from None
    except msgspec.DecodeError:
        raise EmulatorError(400, "request body: malformed JSON") from None
    except RecursionError:
        raise EmulatorError(400, "request body: nested too deeply") from None
