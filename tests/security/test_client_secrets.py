"""Property: neither the cluster token nor any job acquisition token leaks out of the clients.

For generated tokens, a scripted loopback server answers with bodies, headers and error messages
that echo the tokens back (as servers and proxies do). With payload logging on and every logger
at DEBUG, the test then searches every log record (message, args, extras), every exception (text,
repr, notes, body, headers, url) and every repr for the tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client._server import ScriptedServer
from stacksapi import AsyncClient, Client, RetryPolicy, StacksAPIError

from ._capture import capture_logs, leaks

UUID = "0190f7d2-0000-4000-8000-000000000001"
_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
CLUSTER_TOKENS = st.one_of(
    st.text(_TOKEN_CHARS, min_size=16, max_size=60).map(lambda s: "bkct_" + s),
    # A token without the usual prefix, masked by value only: random letters and digits, so it
    # cannot also be text the output holds anyway ("Authenticati" is in "AuthenticationError").
    st.text(_TOKEN_CHARS[:62], min_size=24, max_size=40).filter(
        lambda t: any(c.isdigit() for c in t) and any(c.isalpha() for c in t)
    ),
)
JOB_TOKENS = st.lists(
    st.text(_TOKEN_CHARS, min_size=16, max_size=60).map(lambda s: "bkjat_" + s),
    min_size=1,
    max_size=3,
    unique=True,
)
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    yield server
    server.stop()


def _issued(job_tokens: list[str]) -> dict[str, Any]:
    return {
        "job_acquisition_tokens": [
            {"job_uuid": UUID, "job_acquisition_token": t, "expires_at": "2030-01-01T00:00:00Z"}
            for t in job_tokens
        ],
        "not_issued": [],
    }


def _echo(secrets: list[str], status: int, style: str) -> tuple[int, bytes, dict[str, str]]:
    """A reply that repeats the secrets back in its body and headers."""
    joined = " ".join(secrets)
    headers = {"x-echo": joined, "www-authenticate": f'Token realm="{secrets[0]}"'}
    if style == "html":
        body = f"<html><title>{joined}</title><body>{joined}</body></html>".encode()
    elif style == "json":
        body = msgspec.json.encode(
            {"message": f"bad token {joined}", "detail": secrets, secrets[-1]: {"t": joined}}
        )
    else:
        body = joined.encode()
    return status, body, headers


def _everything(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), repr(exc.args), repr(getattr(exc, "__notes__", []))]
    for name in ("message", "body", "headers", "url", "method"):
        parts.append(repr(getattr(exc, name, None)))
    if exc.__cause__ is not None:
        parts.append(repr(exc.__cause__))  # never shown by us, but a traceback would
    return "\n".join(parts)


@PROPERTY
@given(
    cluster=CLUSTER_TOKENS,
    job_tokens=JOB_TOKENS,
    status=st.sampled_from([400, 401, 403, 404, 422, 429, 500, 503, 200]),
    style=st.sampled_from(["json", "html", "text"]),
)
def test_no_token_in_logs_errors_or_reprs(
    scripted: ScriptedServer, cluster: str, job_tokens: list[str], status: int, style: str
) -> None:
    secrets = [cluster, *job_tokens]
    scripted.reset()
    scripted.reply(201, json=_issued(job_tokens))
    scripted.reply(*_echo(secrets, 503, style)[:2], headers=_echo(secrets, 503, style)[2])
    code, body, headers = _echo(secrets, status, style)
    scripted.reply(code, body=body, headers=headers)
    seen: list[str] = []
    logger = logging.getLogger("stacksapi.test.secrets")
    with capture_logs() as logs:
        client = Client(
            cluster,
            base_url=scripted.base_url,
            logger=logger,
            log_http_payloads=True,
            retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
        )
        with client:
            issued = client.issue_job_acquisition_tokens("s", [UUID])
            seen += [repr(client), repr(issued), str(issued)]
            seen += [repr(t) for t in issued.job_acquisition_tokens]
            try:
                client.get_token()  # 503 echoing the secrets, retried, then the scripted status
            except StacksAPIError as exc:
                seen.append(_everything(exc))
    assert logs.records > 0  # payload logging was on and reached the handler
    assert issued.job_acquisition_tokens[0].job_acquisition_token.get_secret_value() in job_tokens
    assert not leaks(logs.text, *secrets)
    assert not leaks("\n".join(seen), *secrets)


@settings(PROPERTY, max_examples=15)
@given(cluster=CLUSTER_TOKENS, job_tokens=JOB_TOKENS)
def test_the_async_client_keeps_them_out_too(
    scripted: ScriptedServer, cluster: str, job_tokens: list[str]
) -> None:
    secrets = [cluster, *job_tokens]
    scripted.reset()
    scripted.reply(201, json=_issued(job_tokens))
    code, body, headers = _echo(secrets, 401, "json")
    scripted.reply(code, body=body, headers=headers)
    seen: list[str] = []

    async def run() -> None:
        async with AsyncClient(
            cluster, base_url=scripted.base_url, log_http_payloads=True
        ) as client:
            issued = await client.issue_job_acquisition_tokens("s", [UUID])
            seen.extend([repr(client), repr(issued)])
            try:
                await client.get_token()
            except StacksAPIError as exc:
                seen.append(_everything(exc))

    with capture_logs() as logs:
        anyio.run(run)
    assert len(seen) == 3
    assert not leaks(logs.text, *secrets)
    assert not leaks("\n".join(seen), *secrets)


def test_a_bad_token_value_is_refused_without_echoing_it() -> None:
    token = "bkct_has\nnewline_0123456789"
    with pytest.raises(ValueError, match="line breaks") as caught:
        Client(token, base_url="http://127.0.0.1:9/v3/")
    assert "0123456789" not in str(caught.value)
