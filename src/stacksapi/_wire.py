"""What the direct paths put on the wire and take off it, sans-IO and shared by sync and async.

:class:`Wire` is built once per client from its validated base URL and headers. For each call it
gives the request target (base path + the call's escaped path + its query), the header list and
the per-phase timeouts, and turns what came back into a :class:`Reply`, undoing gzip and deflate
as httpx2 does.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

import httpx2

from ._core import Call

__all__ = ["Reply", "Wire"]

_ACCEPT_ENCODING = b"gzip, deflate"


class Reply(NamedTuple):
    """What came back for one request."""

    status: int
    headers: httpx2.Headers
    content: bytes


class Wire:
    """One client's request parts for the direct paths."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: httpx2.Timeout) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        self.hostname = parts.hostname or ""
        self.port = parts.port
        self.base = base_url
        self.prefix = len(base_url)
        self.path = (parts.path or "/").encode("ascii")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if parts.port == {"http": 80, "https": 443}.get(parts.scheme):
            netloc = netloc.rsplit(":", 1)[0]
        self.head: list[tuple[bytes, bytes]] = [
            (b"Host", netloc.encode("idna")),
            (b"Accept-Encoding", _ACCEPT_ENCODING),
            (b"Connection", b"keep-alive"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
        ]
        self.timeout = timeout.as_dict()

    def target(self, call: Call, url: str) -> bytes:
        """The request target: the base URL's path, the call's escaped path, its query."""
        if not url.startswith(self.base):  # never: the clients build every URL from the base
            raise httpx2.UnsupportedProtocol(f"request URL outside the client's base URL: {url}")
        target = self.path + url[self.prefix :].encode("ascii")
        if call.params:
            target += b"?" + urlencode(call.params).encode("ascii")
        return target

    def headers(self, call: Call, extra: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
        """The client's headers, the call's own, and the body's length."""
        head = list(self.head)
        if extra:
            head += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
        if call.body is not None:
            head.append((b"Content-Length", str(len(call.body)).encode("ascii")))
        return head

    def timeouts(self, timeout: Any) -> dict[str, Any]:
        """Per-phase seconds: a call's own ``httpx2.Timeout``, else the client's."""
        return timeout.as_dict() if isinstance(timeout, httpx2.Timeout) else self.timeout

    @staticmethod
    def reply(status: int, raw_headers: list[tuple[bytes, bytes]], content: bytes) -> Reply:
        if content:
            for name, value in raw_headers:
                if name.lower() == b"content-encoding":
                    content = _decode(value.decode("latin-1").strip().lower(), content)
        return Reply(status, httpx2.Headers(raw_headers), content)


def _decode(encoding: str, content: bytes) -> bytes:
    """Undo gzip or deflate (zlib-wrapped or raw), as httpx2 does; other codings as they are."""
    try:
        if encoding == "gzip":
            return zlib.decompress(content, zlib.MAX_WBITS | 16)
        if encoding == "deflate":
            try:
                return zlib.decompress(content)
            except zlib.error:
                return zlib.decompress(content, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise httpx2.DecodingError(f"{encoding} body could not be decoded: {exc}") from None
    return content
