"""Every error class, from real responses and real socket failures."""

from __future__ import annotations

import socket

import pytest

import stacksapi
from stacksapi import Client

from ._server import ScriptedServer
from .conftest import TOKEN


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, stacksapi.BadRequestError),
        (401, stacksapi.AuthenticationError),
        (403, stacksapi.PermissionDeniedError),
        (404, stacksapi.NotFoundError),
        (422, stacksapi.UnprocessableEntityError),
        (409, stacksapi.APIStatusError),
    ],
)
def test_4xx_map_to_their_class_and_are_not_retried(
    client: Client, server: ScriptedServer, status: int, cls: type[stacksapi.APIStatusError]
) -> None:
    server.reply(status, {"message": f"nope {status}"})
    with pytest.raises(cls) as info:
        client.get_job("s", "j")
    err = info.value
    assert type(err) is cls
    assert err.status_code == status
    assert err.message == f"nope {status}"
    assert err.body == {"message": f"nope {status}"}
    assert err.method == "GET"
    assert err.url.endswith("/v3/stacks/s/jobs/j")
    assert "content-type" in err.headers
    assert len(server.requests) == 1


def test_5xx_is_server_error_after_retries(client: Client, server: ScriptedServer) -> None:
    for _ in range(5):
        server.reply(503, {"message": "organization temporarily unavailable"})
    with pytest.raises(stacksapi.ServerError) as info:
        client.get_job("s", "j")
    assert info.value.status_code == 503
    assert len(server.requests) == 5


def test_html_502_gives_a_readable_message(client: Client, server: ScriptedServer) -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body><h1>oops</h1></body></html>"
    server.reply(502, body=html, content_type="text/html")
    with pytest.raises(stacksapi.ServerError) as info:
        client.get_job("s", "j", retry=False)
    assert info.value.message == "502 Bad Gateway"
    assert info.value.body == html.decode()
    assert "502 Bad Gateway" in str(info.value)


def test_non_json_without_title_and_empty_bodies(client: Client, server: ScriptedServer) -> None:
    server.reply(400, body=b"  plain\n\ntext  ", content_type="text/plain")
    with pytest.raises(stacksapi.BadRequestError) as info:
        client.get_job("s", "j")
    assert info.value.message == "plain text"
    server.reply(404)
    with pytest.raises(stacksapi.NotFoundError) as info2:
        client.get_job("s", "j")
    assert info2.value.message == "HTTP 404 Not Found"
    assert info2.value.body is None


def test_rate_limit_error_fields(client: Client, server: ScriptedServer) -> None:
    server.reply(
        429,
        {"message": "slow", "scope": "show-job", "limit": 1000, "current": 1001, "reset": 0.5},
        headers={"Retry-After": "2"},
    )
    with pytest.raises(stacksapi.RateLimitError) as info:
        client.get_job("s", "j", retry=False)
    err = info.value
    assert (err.scope, err.limit, err.current, err.reset) == ("show-job", 1000, 1001, 0.5)
    assert err.retry_after == 2.0
    assert err.message == "slow"


def test_rate_limit_scope_from_headers_is_redacted(client: Client, server: ScriptedServer) -> None:
    leaked = "bkjat_0123456789abcdefXYZ"
    server.reply(429, {"message": "slow"}, headers={"RateLimit-Scope": f"show-job {leaked}"})
    with pytest.raises(stacksapi.RateLimitError) as info:
        client.get_job("s", "j", retry=False)
    assert info.value.scope is not None
    assert info.value.scope.startswith("show-job bkjat_")
    assert leaked not in info.value.scope


def test_2xx_with_wrong_shape_is_response_validation_error(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(200, {"env": "not a map"})
    with pytest.raises(stacksapi.ResponseValidationError) as info:
        client.get_job("s", "j")
    assert info.value.status_code == 200
    assert info.value.body == b'{"env":"not a map"}'
    server.reply(200, body=b"<html>", content_type="text/html")
    with pytest.raises(stacksapi.ResponseValidationError):
        client.get_job("s", "j")
    server.reply(200)
    with pytest.raises(stacksapi.ResponseValidationError):
        client.get_job("s", "j")  # empty body where a job is due


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_is_retried_then_api_connection_error() -> None:
    waits: list[float] = []
    with Client(TOKEN, base_url=f"http://127.0.0.1:{_closed_port()}/v3/") as c:
        c._sleep = waits.append
        with pytest.raises(stacksapi.APIConnectionError) as info:
            c.get_job("s", "j", retry=stacksapi.RetryPolicy(max_attempts=3, jitter=0))
    assert not isinstance(info.value, stacksapi.APITimeoutError)
    assert info.value.method == "GET"
    assert "/v3/stacks/s/jobs/j" in info.value.url
    assert waits == [0.5, 1.0]


def test_read_timeout_is_api_timeout_error(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"id": "j"}, delay=0.5)
    with pytest.raises(stacksapi.APITimeoutError):
        client.get_job("s", "j", timeout=0.1, retry=False)


def test_errors_share_one_base() -> None:
    for name in (
        "APIConnectionError",
        "APITimeoutError",
        "APIStatusError",
        "RateLimitError",
        "ServerError",
        "ResponseValidationError",
        "RequestValidationError",
    ):
        assert issubclass(getattr(stacksapi, name), stacksapi.StacksAPIError)
    assert issubclass(stacksapi.RequestValidationError, ValueError)
