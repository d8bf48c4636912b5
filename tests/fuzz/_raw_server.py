"""A loopback TCP server that answers every request with the same raw bytes, then closes.

For what a well-behaved HTTP server never sends: truncated bodies, broken status lines, lying
``Content-Length`` headers, bad chunking. ``payload`` can be changed between requests.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from functools import cached_property

from stacksapi import Client, RetryPolicy

__all__ = ["RawServer"]


class RawServer:
    """Serve ``payload`` to each connection on 127.0.0.1 (an ephemeral port) in a thread."""

    def __init__(self) -> None:
        self.payload = b""
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/"

    @cached_property
    def client(self) -> Client:
        """One client for every request (building one per request costs an SSL context)."""
        return Client(
            "bkct_raw_server_token_0123456789",
            base_url=self.base_url,
            timeout=15,
            retry=RetryPolicy(max_attempts=1),
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if "client" in self.__dict__:
            self.client.close()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                self._read_request(conn)
                with contextlib.suppress(OSError):
                    conn.sendall(self.payload)
                    conn.shutdown(socket.SHUT_WR)

    @staticmethod
    def _read_request(conn: socket.socket) -> None:
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or b"0")
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
