"""Bad input gets a 4xx naming the problem: never a 500, never a dropped connection."""

from __future__ import annotations

import json
import socket

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacksapi.emulator import Emulator, EmulatorServer, create_app

from ._helpers import QUEUE, STACK

BODY_ENDPOINTS = [
    ("POST", "stacks/register"),
    ("PUT", f"stacks/{STACK}/scheduled-jobs/batch-reserve"),
    ("POST", f"stacks/{STACK}/jobs/get-states"),
    ("POST", f"stacks/{STACK}/jobs/00000000-0000-4000-8000-000000000000/finish"),
    ("POST", f"stacks/{STACK}/notifications"),
    ("POST", f"stacks/{STACK}/job-acquisition-tokens"),
]


BAD_BODIES = [b"", b"{", b"[]", b"null", b'"text"', b"\xff\xfe", b'{"job_uuids": "abc"}', b"{}"]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_bad_bodies_are_400(http: httpx2.Client, stack: str, method: str, path: str) -> None:
    for body in BAD_BODIES:
        response = http.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert response.json()["message"].startswith("request body")


def test_wrong_type_names_the_field(http: httpx2.Client, stack: str) -> None:
    response = http.put(
        f"stacks/{STACK}/scheduled-jobs/batch-reserve",
        json={"job_uuids": ["a"], "reservation_expiry_seconds": "soon"},
    )
    assert response.status_code == 400
    assert "reservation_expiry_seconds" in response.json()["message"]


def test_unknown_fields_are_ignored(http: httpx2.Client) -> None:
    body = {"key": STACK, "type": "custom", "queue_key": QUEUE, "metadata": {}, "color": "red"}
    assert http.post("stacks/register", json=body).status_code == 201


def test_huge_body_is_413_and_the_connection_survives(http: httpx2.Client, stack: str) -> None:
    huge = b'{"job_uuids": ["' + b"x" * (3 * 1024 * 1024) + b'"]}'
    response = http.post(f"stacks/{STACK}/jobs/get-states", content=huge)
    assert response.status_code == 413
    assert "request body" in response.json()["message"]
    assert http.get("token").status_code == 200


def test_unknown_paths_and_methods_are_json_404(
    http: httpx2.Client, server: EmulatorServer
) -> None:
    for method, path in (("GET", "stacks"), ("DELETE", "token"), ("GET", "stacks/register")):
        response = http.request(method, path)
        assert response.status_code == 404
        assert "no such endpoint" in response.json()["message"]
    outside = httpx2.get(server.url + "/elsewhere")
    assert outside.status_code == 404
    assert outside.json()["message"]


def _raw(server: EmulatorServer, request: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_chunked_empty_deregister_like_the_go_client(
    server: EmulatorServer, http: httpx2.Client, stack: str
) -> None:
    request = (
        f"POST /v3/stacks/{STACK}/deregister HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: Token {server.token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n0\r\n\r\n"
    ).encode()
    assert _raw(server, request).startswith(b"HTTP/1.1 204")
    assert server.emulator.list_stacks() == []


def test_chunked_body_is_read(server: EmulatorServer, stack: str) -> None:
    job = server.emulator.create_job()
    payload = f'{{"job_uuids": ["{job}"]}}'.encode()
    half = len(payload) // 2
    chunks = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (payload[:half], payload[half:])
    )
    request = (
        (
            f"PUT /v3/stacks/{STACK}/scheduled-jobs/batch-reserve HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Token {server.token}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
        + chunks
        + b"0\r\n\r\n"
    )
    assert _raw(server, request).startswith(b"HTTP/1.1 200")
    assert server.emulator.job_state(job) == "reserved"


_ASGI_EMULATOR = Emulator(rate_limits=False)
_ASGI_APP = create_app(_ASGI_EMULATOR)


async def _asgi_request(method: str, path: str, body: bytes) -> httpx2.Response:
    """In-process, no socket: the app behind httpx2's ASGI transport."""
    transport = httpx2.ASGITransport(app=_ASGI_APP)
    headers = {"Authorization": f"Token {_ASGI_EMULATOR.token}"}
    async with httpx2.AsyncClient(
        transport=transport, base_url="http://emulator/v3/", headers=headers
    ) as client:
        return await client.request(method, path, content=body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    endpoint=st.sampled_from(BODY_ENDPOINTS),
    body=st.one_of(st.binary(max_size=200), _JSON.map(lambda v: json.dumps(v).encode())),
)
def test_no_body_makes_a_500(endpoint: tuple[str, str], body: bytes) -> None:
    method, path = endpoint
    response = anyio.run(_asgi_request, method, path, body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["message"], str)


def test_unrouted_methods_answer_json(server: EmulatorServer) -> None:
    for method in ("OPTIONS", "TRACE"):
        response = httpx2.request(method, server.base_url + "token")
        assert response.status_code == 405
        assert "Method Not Allowed" in response.json()["message"]
