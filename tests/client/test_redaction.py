"""Tokens never show: not in log records (payload logging on), exception text, or reprs.

Property-based: random cluster tokens and job acquisition tokens travel through real requests
and responses, including error bodies that echo them, and are searched for in everything captured.
"""

from __future__ import annotations

import logging
import string

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stacksapi
from stacksapi import Client
from stacksapi._redact import Redactor

from ._server import ScriptedServer

_ALPHABET = string.ascii_letters + string.digits + "_-"
_body = st.text(_ALPHABET, min_size=12, max_size=40)
# A token without a known prefix is masked by value only. It must look like a secret (random
# letters and digits, 24+ long), not like text the output holds anyway: "Authenticati" is in
# "AuthenticationError", so finding it there proves nothing about a leak.
_bare = st.text(string.ascii_letters + string.digits, min_size=24, max_size=40).filter(
    lambda t: any(c.isdigit() for c in t) and any(c.isalpha() for c in t)
)
cluster_tokens = st.one_of(
    st.builds(lambda p, b: p + b, st.sampled_from(["bkct_", "bkaa_"]), _body), _bare
)
jat_tokens = st.builds(lambda b: "bkjat_" + b, _body)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())
        self.texts.append(repr(record.__dict__))


@pytest.fixture
def capture() -> object:
    handler = _Capture()
    logger = logging.getLogger("stacksapi.test.redaction")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(token=cluster_tokens, jat=jat_tokens)
def test_tokens_never_appear_in_logs_errors_or_reprs(
    server: ScriptedServer, capture: _Capture, token: str, jat: str
) -> None:
    server.reset()
    capture.texts.clear()
    texts: list[str] = []
    logger = logging.getLogger("stacksapi.test.redaction")
    with Client(token, base_url=server.base_url, logger=logger, log_http_payloads=True) as c:
        c._sleep = lambda _s: None
        texts.append(repr(c))
        # a success that carries a job acquisition token
        server.reply(
            201,
            {"job_acquisition_tokens": [{"job_uuid": "a", "job_acquisition_token": jat}]},
        )
        tokens = c.issue_job_acquisition_tokens("s", ["a"])
        texts += [repr(tokens), str(tokens), repr(tokens.job_acquisition_tokens[0])]
        # a server error that echoes both tokens back, retried once then given up
        echo = {"message": f"bad token {token} and {jat}", "token": token, "jat": jat}
        server.reply(500, echo)
        server.reply(401, echo)
        with pytest.raises(stacksapi.AuthenticationError) as info:
            c.get_token(retry=stacksapi.RetryPolicy(max_attempts=2))
        err = info.value
        texts += [str(err), repr(err), repr(err.body), repr(err.headers), err.message]
        # an HTML error page with the token in it
        server.reply(
            400, body=f"<html><title>{jat}</title>{token}</html>".encode(), content_type="text/html"
        )
        with pytest.raises(stacksapi.BadRequestError) as info2:
            c.get_job("s", "j")
        texts += [str(info2.value), repr(info2.value.body)]
        # a 2xx of the wrong shape that includes a token
        server.reply(200, {"id": 1, "command": jat})
        with pytest.raises(stacksapi.ResponseValidationError) as info3:
            c.get_job("s", "j")
        texts += [str(info3.value), repr(info3.value.body)]
    texts += capture.texts
    assert capture.texts, "payload logging produced records"
    for text in texts:
        assert token not in text
        assert jat not in text


@given(
    before=st.text(max_size=20),
    prefix=st.sampled_from(["bkct_", "bkjat_", "bkaa_"]),
    body=_body,
    after=st.text(" \"',;<>", max_size=5),
)
def test_token_looking_values_are_redacted_anywhere(
    before: str, prefix: str, body: str, after: str
) -> None:
    secret = prefix + body
    out = Redactor(None).text(before + secret + after)
    assert secret not in out
    assert prefix + "***" in out


def test_redactor_keeps_ordinary_text_and_json_shape() -> None:
    r = Redactor("bkct_abcdefgh12345")
    assert r.text("GET stacks/s/jobs/j -> 200") == "GET stacks/s/jobs/j -> 200"
    obj = msgspec.json.decode(b'{"a": ["bkct_abcdefgh12345", 1], "bkjat_zz": null}')
    assert r.obj(obj) == {"a": ["***", 1], "bkjat_***": None}


def test_token_shapes_are_masked_anywhere_with_one_pattern() -> None:
    """The client, the stack and the CLI share one token-shape rule (``_redact``)."""
    from stacksapi._redact import redact_tokens
    from stacksapi.cli._common import redact
    from stacksapi.stack._planning import redact_tokens as stack_redact

    text = "url?t%3Dbkjat_abc123&x=1 agent bkaa_zz9 reg bkar_r1 admin bkemu_ff plain bkapp_x"
    for out in (redact_tokens(text), redact(text), stack_redact(text)):
        for secret in ("abc123", "zz9", "r1", "_ff"):
            assert secret not in out
        assert "bkapp_x" in out
