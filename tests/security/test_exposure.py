"""Exposure: TLS is verified by default, plain http leaves loopback only when asked, the emulator
listens on loopback by default and its admin API takes its own token only.

TLS is proven with a real handshake on 127.0.0.1: a server with a self-signed certificate made by
the ``openssl`` command (``cryptography`` and ``trustme`` are not dependencies; the test skips
without ``openssl``). The default client refuses it before sending a byte of HTTP; the same
client given a context that trusts the certificate gets through, so the refusal is verification.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import click
import httpx2
import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from stacksapi import APIConnectionError, AsyncClient, Client, RequestValidationError
from stacksapi._transport import AsyncPoolPath, AsyncSocketPath, PoolPath, SocketPath
from stacksapi.cli import cli
from stacksapi.emulator import Emulator, EmulatorServer

TOKEN = "bkct_exposure_test_token_0123456789"
_TOKEN_INFO = msgspec.json.encode(
    {
        "uuid": "u",
        "description": "d",
        "token_type": "cluster",
        "organization_slug": "o",
        "organization_uuid": "ou",
        "cluster_uuid": "cu",
        "cluster_name": "c",
    }
)


# --- TLS ----------------------------------------------------------------------------------------


def _ssl_context_of(client: Client | AsyncClient) -> ssl.SSLContext:
    wire = client._wire
    if isinstance(wire, SocketPath | AsyncSocketPath):
        context = wire.pool.origin.ssl_context
    elif isinstance(wire, PoolPath | AsyncPoolPath):
        context = wire.pool._ssl_context
    else:
        context = wire.http._transport._pool._ssl_context  # type: ignore[union-attr]
    assert isinstance(context, ssl.SSLContext)
    return context


def test_clients_verify_certificates_by_default() -> None:
    with Client(TOKEN) as client:
        assert client._core.base_url.startswith("https://")
        for context in (_ssl_context_of(client), _ssl_context_of(AsyncClient(TOKEN))):
            assert context.verify_mode == ssl.CERT_REQUIRED
            assert context.check_hostname is True


class _TLSServer:
    """One-shot HTTPS on 127.0.0.1: records whether any HTTP bytes arrived after the handshake."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError, ssl.SSLError):
                tls = self.context.wrap_socket(conn, server_side=True)
                tls.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.received += data
                head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                head += f"Content-Length: {len(_TOKEN_INFO)}\r\nConnection: close\r\n\r\n"
                tls.sendall(head.encode() + _TOKEN_INFO)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a self-signed certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[_TLSServer]:
    server = _TLSServer(*certificate)
    yield server
    server.close()


def test_a_self_signed_server_is_refused_before_any_request(tls_server: _TLSServer) -> None:
    base = f"https://127.0.0.1:{tls_server.port}/v3/"
    with (
        Client(TOKEN, base_url=base, timeout=10) as client,
        pytest.raises(APIConnectionError) as caught,
    ):
        client.get_token(retry=False)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert tls_server.received == b""  # the token never left: no HTTP after a failed handshake
    assert TOKEN not in str(caught.value)


def test_the_same_server_is_reached_when_its_certificate_is_trusted(
    tls_server: _TLSServer, certificate: tuple[Path, Path]
) -> None:
    """The control: with the certificate trusted the call succeeds, so the refusal above is
    certificate verification and nothing else."""
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    base = f"https://127.0.0.1:{tls_server.port}/v3/"
    with (
        httpx2.Client(verify=trusting, timeout=10) as http,
        Client(TOKEN, base_url=base, http_client=http) as client,
    ):
        assert client.get_token(retry=False).cluster_uuid == "cu"
    assert b"Authorization: Token " in tls_server.received


# --- plain http ---------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOSTS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.sampled_from(
        ["example.com", "127.0.0.1.nip.io", "localhost.evil.com", "0.0.0.0", "10.0.0.1"]
    ),
)
_TRICKS = st.sampled_from(["", "user@", "127.0.0.1@", "user:pw@", "evil.com\\@", "a%2F@", "x;@"])


@settings(max_examples=40, deadline=None, database=None)
@given(trick=_TRICKS, host=_HOSTS, port=st.sampled_from(["", ":80", ":8080"]))
def test_plain_http_only_reaches_loopback_unless_allowed(trick: str, host: str, port: str) -> None:
    """Whatever the URL, a plain-http client either refuses it or talks to a loopback host (as
    the HTTP library parses it, so no parser trick sends the token elsewhere in clear)."""
    url = f"http://{trick}{host}{port}/v3/"
    refusal = _refusal(url)
    if refusal is None:
        with Client(TOKEN, base_url=url) as client:
            target = httpx2.URL(client._core.base_url + "token").host
        assert _loopback(target), url
        return
    assert refusal.field == "base_url"
    assert "allow_insecure_http" in refusal.limit
    assert TOKEN not in str(refusal)
    with Client(TOKEN, base_url=url, allow_insecure_http=True) as allowed:
        assert allowed._core.base_url.startswith("http://")


def _refusal(url: str) -> RequestValidationError | None:
    try:
        Client(TOKEN, base_url=url).close()
    except RequestValidationError as exc:
        return exc
    return None


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/v3/", "http://localhost/v3/", "http://[::1]:9/v3/"]
)
def test_plain_http_to_loopback_is_fine(url: str) -> None:
    with Client(TOKEN, base_url=url):
        pass
    AsyncClient(TOKEN, base_url=url)


def test_the_async_client_and_the_cli_refuse_remote_plain_http() -> None:
    with pytest.raises(RequestValidationError):
        AsyncClient(TOKEN, base_url="http://agent.example.com/v3/")
    result = CliRunner().invoke(
        cli, ["token", "--token", TOKEN, "--base-url", "http://agent.example.com/v3/"]
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "allow_insecure_http" in line or "plain http" in line
    assert TOKEN not in result.output


# --- the emulator -------------------------------------------------------------------------------


def test_the_emulator_listens_on_loopback_by_default() -> None:
    with EmulatorServer() as server:
        assert server.host == "127.0.0.1"
        assert server.base_url.startswith("http://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
    group = cli.commands["emulator"]
    assert isinstance(group, click.Group)
    host = next(p for p in group.commands["serve"].params if p.name == "host")
    assert host.default == "127.0.0.1"  # `stacksapi emulator serve` too


_ADMIN_ROUTES = [
    ("GET", ""),
    ("GET", "jobs"),
    ("POST", "jobs"),
    ("POST", "jobs/bulk"),
    ("GET", "queues"),
    ("POST", "queues"),
    ("GET", "stacks"),
    ("GET", "counters"),
    ("POST", "reset"),
    ("POST", "clock/advance"),
]


def test_the_admin_api_takes_its_own_token_only() -> None:
    emulator = Emulator(tokens=["bkct_cluster_one_0123456789", "bkct_cluster_two_0123456789"])
    with EmulatorServer(emulator) as server, httpx2.Client(timeout=10) as http:
        assert server.admin_token not in emulator.tokens
        for method, path in _ADMIN_ROUTES:
            url = server.admin_url + path
            for token in (*emulator.tokens, None, "Token", "Bearer "):
                headers = {} if token is None else {"Authorization": f"Token {token}".strip()}
                response = http.request(method, url, headers=headers, content=b"{}")
                assert response.status_code == 401, (method, path, response.text)
                assert "admin" in response.json()["message"]
            ok = http.request(
                "GET", server.admin_url, headers={"Authorization": f"Token {server.admin_token}"}
            )
            assert ok.status_code == 200
        # and the admin token is no cluster token
        refused = http.get(
            server.base_url + "token", headers={"Authorization": f"Token {server.admin_token}"}
        )
        assert refused.status_code == 401
        assert emulator.jobs == {}  # nothing the refused calls asked for happened
