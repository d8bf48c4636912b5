"""Which way a client sends (httpx2, or straight onto the connection pool) and what both keep.

The whole client suite runs on both paths (``make test`` runs it again with
``STACKSAPI_HTTP_PATH=httpx``); these tests pin how the path is chosen and the behaviours the
direct path re-implements: proxies from the environment, compressed bodies, the request as sent.
"""

from __future__ import annotations

import gzip
import socket
import threading
import zlib
from collections.abc import Iterator

import httpx2
import msgspec
import pytest

from stacksapi import APIConnectionError, AsyncClient, Client

from ._server import ScriptedServer
from .conftest import TOKEN

JOB = {"id": "j-1", "env": {"A": "b"}, "command": "make"}


class _OneShotProxy:
    """A loopback socket that answers one HTTP request and keeps its request line."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.request_line = ""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.request_line = data.split(b"\r\n", 1)[0].decode("ascii")
            body = msgspec.json.encode(JOB)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )

    def close(self) -> None:
        self.sock.close()
        self._thread.join(timeout=5)


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_OneShotProxy]:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    p = _OneShotProxy()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{p.port}")
    yield p
    p.close()


def _path_of(client: Client | AsyncClient) -> str:
    return type(client._wire).__name__


def test_a_client_that_owns_its_connections_sends_straight_onto_the_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("STACKSAPI_HTTP_PATH", raising=False)
    with Client(TOKEN) as client:
        assert _path_of(client) == "SocketPath"
    assert _path_of(AsyncClient(TOKEN)) == "AsyncSocketPath"
    monkeypatch.setenv("STACKSAPI_HTTP_PATH", "pool")
    with Client(TOKEN) as client:
        assert _path_of(client) == "PoolPath"
    assert _path_of(AsyncClient(TOKEN)) == "AsyncPoolPath"


def test_a_callers_http_client_and_the_override_keep_the_httpx_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with httpx2.Client() as http, Client(TOKEN, http_client=http) as client:
        assert _path_of(client) == "HttpxPath"
    monkeypatch.setenv("STACKSAPI_HTTP_PATH", "httpx")
    with Client(TOKEN) as client:
        assert _path_of(client) == "HttpxPath"
    assert _path_of(AsyncClient(TOKEN)) == "AsyncHttpxPath"


def test_a_proxy_from_the_environment_is_honoured(proxy: _OneShotProxy) -> None:
    # Nothing listens on 127.0.0.2:9: only a request through the proxy can succeed.
    with Client(TOKEN, base_url="http://127.0.0.2:9/v3/", retry=None) as client:
        assert _path_of(client) == "HttpxPath"
        job = client.get_job("s", "j-1")
    assert job.command == "make"
    assert proxy.request_line == "GET http://127.0.0.2:9/v3/stacks/s/jobs/j-1 HTTP/1.1"


@pytest.mark.anyio
async def test_the_async_client_honours_a_proxy_from_the_environment(
    proxy: _OneShotProxy,
) -> None:
    async with AsyncClient(TOKEN, base_url="http://127.0.0.2:9/v3/") as client:
        assert _path_of(client) == "AsyncHttpxPath"
        job = await client.get_job("s", "j-1")
    assert job.env == {"A": "b"}
    assert proxy.request_line.startswith("GET http://127.0.0.2:9/v3/stacks/s/jobs/j-1 ")


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_compressed_bodies_are_decoded(server: ScriptedServer, coding: str, encode: object) -> None:
    assert callable(encode)
    server.reply(200, body=encode(msgspec.json.encode(JOB)), headers={"Content-Encoding": coding})
    with Client(TOKEN, base_url=server.base_url) as client:
        assert client.get_job("s", "j-1").command == "make"
    sent = server.requests[0].headers
    assert "gzip" in sent["accept-encoding"]


def test_a_body_that_does_not_decompress_is_a_clear_error(server: ScriptedServer) -> None:
    server.reply(200, body=b"not gzip at all", headers={"Content-Encoding": "gzip"})
    with (
        Client(TOKEN, base_url=server.base_url, retry=None) as client,
        pytest.raises(APIConnectionError, match=r"^DecodingError: .*incorrect header check"),
    ):
        client.get_job("s", "j-1")


def test_the_request_carries_the_same_head_on_both_paths(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    heads = []
    for path in ("", "httpx"):
        monkeypatch.setenv("STACKSAPI_HTTP_PATH", path)
        server.reset()
        server.reply(200, json={"states": {"j-1": "running"}})
        with Client(TOKEN, base_url=server.base_url, user_agent_prefix="me/1") as client:
            client.get_job_states("s", ["j-1"])
        rec = server.requests[-1]
        heads.append(
            (
                rec.method,
                rec.raw_path,
                rec.body,
                {k: v for k, v in rec.headers.items() if k not in {"accept-encoding"}},
            )
        )
    assert heads[0] == heads[1]
    method, raw_path, body, headers = heads[0]
    assert (method, raw_path) == ("POST", "/v3/stacks/s/jobs/get-states")
    assert msgspec.json.decode(body) == {"job_uuids": ["j-1"]}
    assert headers["authorization"] == f"Token {TOKEN}"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("me/1 stacksapi-python/")
