"""The clients given malformed, truncated, wrong-shaped and huge responses.

Whatever a server sends, a call returns its documented type or raises the documented error
class: ``ResponseValidationError`` for a 2xx of the wrong shape, the status's
``APIStatusError`` subclass for a non-2xx, ``APIConnectionError`` when no complete HTTP response
came. Never another exception. Replies come from the scripted loopback server of the client tests
(HTTP-level junk) and from a raw socket server (protocol-level junk: cut bodies, bad status lines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client._server import ScriptedServer
from stacksapi import (
    APIConnectionError,
    AsyncClient,
    Client,
    ResponseValidationError,
    RetryPolicy,
    StackNotification,
    StacksAPIError,
)
from stacksapi._errors import status_error_class

from ._cases import examples, record
from ._raw_server import RawServer
from ._strategies import JSON_VALUES, deep_json, to_json_bytes

TOKEN = "bkct_fuzz_client_token_0123456789"  # the raw server uses its own
UUID = "0190f7d2-0000-4000-8000-000000000001"
ONE_TRY = RetryPolicy(max_attempts=1)
FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

Call = Callable[[Client], object]
CALLS: dict[str, Call] = {
    "register_stack": lambda c: c.register_stack("s", queue_key="q"),
    "deregister_stack": lambda c: c.deregister_stack("s"),
    "list_scheduled_jobs": lambda c: c.list_scheduled_jobs("s", queue_key="q"),
    "batch_reserve_jobs": lambda c: c.batch_reserve_jobs("s", [UUID]),
    "get_job": lambda c: c.get_job("s", UUID),
    "get_job_states": lambda c: c.get_job_states("s", [UUID]),
    "finish_job": lambda c: c.finish_job("s", UUID, detail="gave up"),
    "create_stack_notifications": lambda c: c.create_stack_notifications(
        "s", [StackNotification(job_uuid=UUID, detail="booting")]
    ),
    "issue_job_acquisition_tokens": lambda c: c.issue_job_acquisition_tokens("s", [UUID]),
    "get_token": lambda c: c.get_token(),
}
NO_DATA = {"deregister_stack", "finish_job"}  # these ignore a 2xx body
NO_BODY = {204, 304}  # HTTP forbids a body here: the server would break the connection


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    server = RawServer()
    server.start()
    yield server
    server.stop()


_WRONG_SHAPES = st.one_of(
    JSON_VALUES.map(to_json_bytes),
    st.binary(max_size=200),
    deep_json(),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"jobs": null}',
            b'{"jobs": [{}]}',
            b'{"states": {"a": 1}}',
            b'{"job_acquisition_tokens": [{"job_uuid": 1}]}',
            b'{"reserved": "all"}',
            b"<html><title>502 Bad Gateway</title></html>",
            b'{"message": 12}',
            b'{"limit": "inf", "reset": "soon", "scope": 7}',
            b'{"limit": 1e400}',
        ]
    ),
    st.integers(min_value=1, max_value=6).map(lambda n: b'{"jobs": [' + b"{}," * 10**n + b"{}]}"),
)

_STATUSES = st.sampled_from(
    [200, 201, 204, 300, 301, 304, 307, 400, 401, 403, 404, 409, 413, 418, 422, 429, 500, 503]
)
_HEADERS = st.dictionaries(
    st.sampled_from(["retry-after", "ratelimit-reset", "ratelimit-limit", "ratelimit-scope"]),
    st.sampled_from(
        ["", "1", "-1", "inf", "nan", "1e400", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"]
    ),
)


def outcome(call: Callable[[], object]) -> StacksAPIError | None:
    """The documented error a call raised, or ``None``; any other exception fails the test."""
    try:
        call()
    except StacksAPIError as exc:
        return exc
    return None


@pytest.fixture(scope="module")
def client(scripted: ScriptedServer) -> Iterator[Client]:
    with Client(TOKEN, base_url=scripted.base_url, retry=ONE_TRY, timeout=15) as c:
        yield c


@FUZZ
@given(
    name=st.sampled_from(sorted(CALLS)),
    status=_STATUSES,
    body=_WRONG_SHAPES,
    headers=_HEADERS,
)
def test_any_http_reply_gives_the_documented_error(
    scripted: ScriptedServer,
    client: Client,
    name: str,
    status: int,
    body: bytes,
    headers: dict[str, str],
) -> None:
    scripted.reset()
    scripted.reply(status, body=b"" if status in NO_BODY else body, headers=headers)
    record(f"client {name}")
    error = outcome(lambda: CALLS[name](client))
    if error is None:
        assert 200 <= status < 300
        return
    assert TOKEN not in str(error)
    if 200 <= status < 300:
        assert isinstance(error, ResponseValidationError), repr(error)
        assert name not in NO_DATA
    else:
        assert type(error) is status_error_class(status), repr(error)
        assert isinstance(error.message, str)


@settings(FUZZ, max_examples=examples(30))
@given(status=_STATUSES, body=_WRONG_SHAPES, headers=_HEADERS)
def test_the_async_client_raises_the_same_classes(
    scripted: ScriptedServer, status: int, body: bytes, headers: dict[str, str]
) -> None:
    scripted.reset()
    scripted.reply(status, body=b"" if status in NO_BODY else body, headers=headers)
    record("async client list_scheduled_jobs")

    async def call() -> object:
        async with AsyncClient(TOKEN, base_url=scripted.base_url, retry=ONE_TRY) as aclient:
            return await aclient.list_scheduled_jobs("s", queue_key="q")

    error = outcome(lambda: anyio.run(call))
    if error is None:
        assert 200 <= status < 300
        return
    expected = ResponseValidationError if 200 <= status < 300 else status_error_class(status)
    assert type(error) is expected, repr(error)


_GOOD_TOKEN_BODY = msgspec.json.encode(
    {
        "uuid": "t",
        "description": "d",
        "token_type": "cluster",
        "organization_slug": "o",
        "organization_uuid": "ou",
        "cluster_uuid": "cu",
        "cluster_name": "c",
    }
)


def _response(status_line: bytes, headers: list[bytes], body: bytes) -> bytes:
    return status_line + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


@st.composite
def _broken_replies(draw: st.DrawFn) -> bytes:
    """A complete valid response cut short, or one with a broken line or framing."""
    whole = _response(
        b"HTTP/1.1 200 OK",
        [b"Content-Type: application/json", f"Content-Length: {len(_GOOD_TOKEN_BODY)}".encode()],
        _GOOD_TOKEN_BODY,
    )
    kind = draw(st.sampled_from(["cut", "cut", "status", "length", "chunked", "junk"]))
    if kind == "cut":
        return whole[: draw(st.integers(min_value=0, max_value=len(whole) - 1))]
    if kind == "status":
        line = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/9 200 OK", b"HTTP/1.1 abc", b"hello"]))
        return _response(line, [b"Content-Length: 2"], b"{}")
    if kind == "length":
        claimed = draw(st.sampled_from([b"-1", b"abc", b"99999", b"1, 2"]))
        return _response(b"HTTP/1.1 200 OK", [b"Content-Length: " + claimed], b"{}")
    if kind == "chunked":
        chunks = draw(st.sampled_from([b"zz\r\n{}\r\n0\r\n\r\n", b"5\r\n{}", b"2\r\n{}\r\n"]))
        return _response(b"HTTP/1.1 200 OK", [b"Transfer-Encoding: chunked"], chunks)
    return draw(st.binary(max_size=300))


@settings(FUZZ, max_examples=examples(100))
@given(reply=_broken_replies())
def test_broken_http_is_a_connection_error(raw: RawServer, reply: bytes) -> None:
    raw.payload = reply
    record("client broken HTTP framing")
    error = outcome(raw.client.get_token)
    # No complete response: a connection error. A complete one whose body is cut or odd: the
    # status's error or a validation error. All documented (outcome lets nothing else through).
    if error is not None:
        assert TOKEN not in str(error)
    if not reply.startswith(b"HTTP/1.1 "):
        assert isinstance(error, APIConnectionError), repr(error)


def test_a_huge_body_of_the_wrong_shape_is_a_validation_error(scripted: ScriptedServer) -> None:
    scripted.reset()
    huge = b'{"jobs": [' + b",".join([b'{"id": 1}'] * 400_000) + b"]}"
    scripted.reply(200, body=huge)
    record("client huge body")
    with (
        Client(TOKEN, base_url=scripted.base_url, retry=ONE_TRY) as client,
        pytest.raises(ResponseValidationError) as caught,
    ):
        client.list_scheduled_jobs("s", queue_key="q")
    assert len(str(caught.value)) < 10_000  # the message stays readable, the body is kept apart


def test_regression_infinite_rate_limit_fields_are_a_rate_limit_error(
    scripted: ScriptedServer,
) -> None:
    """Found by fuzzing: ``limit: "inf"`` in a 429 raised OverflowError from the client."""
    scripted.reset()
    scripted.reply(
        429, json={"message": "slow down", "limit": "inf"}, headers={"ratelimit-limit": "1e400"}
    )
    with (
        Client(TOKEN, base_url=scripted.base_url, retry=ONE_TRY) as client,
        pytest.raises(StacksAPIError) as caught,
    ):
        client.get_token()
    assert type(caught.value) is status_error_class(429)
    assert caught.value.limit is None  # type: ignore[attr-defined]


def test_regression_deeply_nested_body_is_a_validation_error(scripted: ScriptedServer) -> None:
    """Found by fuzzing: a 2xx nested 100,000 deep escaped as RecursionError."""
    scripted.reset()
    scripted.reply(200, body=b"[" * 100_000 + b"]" * 100_000)
    scripted.reply(400, body=b"[" * 100_000 + b"]" * 100_000)
    with Client(TOKEN, base_url=scripted.base_url, retry=ONE_TRY) as client:
        with pytest.raises(ResponseValidationError):
            client.get_token()
        with pytest.raises(StacksAPIError) as caught:
            client.get_token()
    assert type(caught.value) is status_error_class(400)
