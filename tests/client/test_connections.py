"""Connections as a server sees them, on every path: reuse, a server that closes, slow servers.

A loopback server of raw sockets, scripted per request, counts connections and answers with
exactly the bytes a test gives (keep-alive, chunked, close-delimited, or nothing at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import msgspec
import pytest

from stacksapi import APIConnectionError, APITimeoutError, AsyncClient, Client, RetryPolicy

from .conftest import TOKEN

JOB = msgspec.json.encode({"id": "j-1", "env": {}, "command": "make"})
Answer = Callable[[int, socket.socket], bool]  # (request number, conn) -> keep the connection?


def keep_alive(body: bytes = JOB, status: str = "200 OK") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Server:
    """Accepts connections in a thread; each request is answered by ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/"

    def _accept(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            buf = b""
            while not self._stop.is_set():
                try:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                except OSError:
                    return
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.requests.append(head)
                if not self.answer(len(self.requests), conn):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
                    return

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        self._accepting.join(timeout=5)


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], Server]]:
    servers: list[Server] = []

    def start(answer: Answer) -> Server:
        servers.append(Server(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def _send(body: bytes, keep: bool = True) -> Answer:
    def answer(_: int, conn: socket.socket) -> bool:
        conn.sendall(body)
        return keep

    return answer


def test_calls_share_one_keep_alive_connection(serve: Callable[[Answer], Server]) -> None:
    server = serve(_send(keep_alive()))
    with Client(TOKEN, base_url=server.base_url) as client:
        for _ in range(20):
            assert client.get_job("s", "j-1").command == "make"
    assert len(server.requests) == 20
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Callable[[Answer], Server],
) -> None:
    # Each answer says keep-alive, then the server hangs up once the client is idle again.
    server = serve(_send(keep_alive(), keep=False))
    with Client(TOKEN, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)) as client:
        for _ in range(5):
            assert client.get_job("s", "j-1").id == "j-1"
            time.sleep(0.05)  # the hang-up reaches the client before its next call
    assert len(server.requests) == 5
    assert server.connections == 5


def test_chunked_and_close_delimited_bodies_are_read_whole(
    serve: Callable[[Answer], Server],
) -> None:
    half = len(JOB) // 2
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{half:x}\r\n".encode()
        + JOB[:half]
        + f"\r\n{len(JOB) - half:x}\r\n".encode()
        + JOB[half:]
        + b"\r\n0\r\n\r\n"
    )
    to_eof = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + JOB
    answers = {1: (chunked, True), 2: (chunked, True), 3: (to_eof, False), 4: (to_eof, False)}

    def answer(n: int, conn: socket.socket) -> bool:
        body, keep = answers[n]
        conn.sendall(body)
        return keep

    server = serve(answer)
    with Client(TOKEN, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)) as client:
        for _ in range(4):
            assert client.get_job("s", "j-1").command == "make"
    # Two chunked answers and the first read to EOF share a connection; the last needs another.
    assert server.connections == 2


def test_a_204_keeps_the_connection(serve: Callable[[Answer], Server]) -> None:
    answers = [b"HTTP/1.1 204 No Content\r\n\r\n", keep_alive()]

    def answer(n: int, conn: socket.socket) -> bool:
        conn.sendall(answers[(n - 1) % 2])
        return True

    server = serve(answer)
    with Client(TOKEN, base_url=server.base_url) as client:
        client.deregister_stack("s")
        assert client.get_job("s", "j-1").id == "j-1"
        client.deregister_stack("s")
    assert server.connections == 1


def test_a_server_that_never_answers_times_out(serve: Callable[[Answer], Server]) -> None:
    silent = threading.Event()
    server = serve(lambda n, conn: silent.wait(10) and False)
    with (
        Client(
            TOKEN, base_url=server.base_url, timeout=0.5, retry=RetryPolicy(max_attempts=1)
        ) as client,
        pytest.raises(APITimeoutError, match="ReadTimeout"),
    ):
        client.get_job("s", "j-1")
    silent.set()


def test_a_body_cut_short_is_a_connection_error_and_is_retried(
    serve: Callable[[Answer], Server],
) -> None:
    def answer(n: int, conn: socket.socket) -> bool:
        conn.sendall(keep_alive()[:-5] if n == 1 else keep_alive())
        return n != 1

    server = serve(answer)
    with Client(TOKEN, base_url=server.base_url, retry=RetryPolicy(initial_delay=0.01)) as client:
        assert client.get_job("s", "j-1").command == "make"
    assert len(server.requests) == 2


def test_garbage_instead_of_http_is_a_clear_error(serve: Callable[[Answer], Server]) -> None:
    server = serve(_send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", keep=False))
    with (
        Client(TOKEN, base_url=server.base_url, retry=RetryPolicy(max_attempts=1)) as client,
        pytest.raises(APIConnectionError, match="RemoteProtocolError"),
    ):
        client.get_job("s", "j-1")


def test_threads_sharing_a_client_each_get_their_answer(
    serve: Callable[[Answer], Server],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = serve(_send(keep_alive()))
    with Client(TOKEN, base_url=server.base_url) as client, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: client.get_job("s", "j-1").id, range(200)))
    assert results == ["j-1"] * 200
    assert 1 <= server.connections <= 8


@pytest.mark.anyio
async def test_async_calls_in_flight_share_few_connections_and_each_gets_its_answer(
    serve: Callable[[Answer], Server],
) -> None:
    server = serve(_send(keep_alive()))
    async with AsyncClient(TOKEN, base_url=server.base_url) as client:
        for _ in range(3):
            results = await asyncio.gather(*(client.get_job("s", "j-1") for _ in range(32)))
            assert [r.command for r in results] == ["make"] * 32
    assert len(server.requests) == 96
    # 32 at once open 32; 20 stay open between rounds (the keep-alive limit, as in httpx2).
    assert server.connections <= 32 + 2 * (32 - 20)


@pytest.mark.anyio
async def test_async_timeout_and_a_server_that_closed_while_idle(
    serve: Callable[[Answer], Server],
) -> None:
    silent = threading.Event()

    def answer(n: int, conn: socket.socket) -> bool:
        if n == 2:
            silent.wait(10)
            return False
        conn.sendall(keep_alive())
        return False  # hang up after each answer

    server = serve(answer)
    async with AsyncClient(
        TOKEN, base_url=server.base_url, timeout=0.5, retry=RetryPolicy(max_attempts=1)
    ) as client:
        assert (await client.get_job("s", "j-1")).id == "j-1"
        await asyncio.sleep(0.05)  # the loop sees the server's hang-up
        with pytest.raises(APITimeoutError, match="ReadTimeout"):
            await client.get_job("s", "j-1")
        silent.set()
        assert (await client.get_job("s", "j-1")).id == "j-1"
    assert server.connections == 3
