"""HTTP/1.1 for the socket path, sans-IO: request heads written out, responses parsed by httptools.

Nothing here touches a socket. :func:`request_bytes` writes one request (the head is only
``name: value`` lines the client built from validated settings); :class:`ResponseReader` feeds
received bytes to httptools (llhttp, the parser Node.js uses) and collects one response: status,
headers, body, and whether the connection may be used again. No HTTP parsing is done by hand.
"""

from __future__ import annotations

import httptools
import httpx2

__all__ = ["ResponseReader", "request_bytes"]


def request_bytes(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
) -> bytes:
    """One HTTP/1.1 request. Refuses a target or header that would break the framing."""
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    breaks = len(headers) + 2
    if head.count(b"\n") != breaks or head.count(b"\r") != breaks or b" " in target:
        raise httpx2.LocalProtocolError("request target or header contains a line break or space")
    return head + body if body else head


class ResponseReader:
    """Collects one response from the bytes of a connection (httptools calls the ``on_*``)."""

    __slots__ = (
        "_body",
        "_framed",
        "_keep_alive",
        "_parser",
        "_to_eof",
        "complete",
        "headers",
        "headers_done",
        "status",
    )

    def __init__(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self._body: list[bytes] = []
        self._framed = False  # Content-Length or chunked: the end is known without EOF
        self._to_eof = False  # the body ran to the end of the connection
        self._keep_alive = False
        self._parser = httptools.HttpResponseParser(self)

    # --- httptools callbacks -------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lower = name.lower()
        if lower in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:  # an informational response: the real one follows
            self.headers, self._body, self.headers_done, self._framed = [], [], False, False
            return
        self.complete = True
        self._keep_alive = self._parser.should_keep_alive()  # only meaningful inside a callback

    # --- feeding -------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the connection; raises ``httpx2.RemoteProtocolError`` on a bad response."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise httpx2.RemoteProtocolError("server switched protocols unasked") from None
        except httptools.HttpParserError as exc:
            raise httpx2.RemoteProtocolError(f"malformed HTTP response: {exc}") from None

    def feed_eof(self) -> None:
        """The server closed the connection: completes a body that runs to EOF, else raises."""
        if self.complete:
            return
        if self.headers_done and not self._framed:
            self.complete = self._to_eof = True
            return
        raise httpx2.RemoteProtocolError(
            "Server disconnected without sending a response."
            if not self.headers_done
            else "Server disconnected before the end of the response body."
        )

    @property
    def body(self) -> bytes:
        return b"".join(self._body) if len(self._body) != 1 else self._body[0]

    @property
    def reusable(self) -> bool:
        """The connection may carry another request: the parser saw the end, keep-alive holds."""
        return self.complete and not self._to_eof and self._keep_alive
