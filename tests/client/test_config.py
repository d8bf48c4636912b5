"""Constructor rules: token source, base URL safety, timeouts, repr, closing."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import httpx2
import pytest

import stacksapi
from stacksapi import AsyncClient, Client

from ._server import ScriptedServer
from .conftest import TOKEN


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch, server: ScriptedServer) -> None:
    monkeypatch.setenv("BUILDKITE_CLUSTER_TOKEN", "bkct_fromenv123")
    server.reply(204)
    with Client(base_url=server.base_url) as c:
        c.deregister_stack("k")
    assert server.requests[-1].headers["authorization"] == "Token bkct_fromenv123"


def test_no_token_anywhere_is_a_clear_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDKITE_CLUSTER_TOKEN", raising=False)
    with pytest.raises(ValueError, match="BUILDKITE_CLUSTER_TOKEN"):
        Client()
    with pytest.raises(ValueError, match="BUILDKITE_CLUSTER_TOKEN"):
        AsyncClient()


def test_token_with_line_break_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="line breaks") as info:
        Client("bkct_abc\r\nX-Evil: 1")
    assert "bkct_abc" not in str(info.value)


@pytest.mark.parametrize(
    "url", ["http://agent.example.com/v3/", "http://10.0.0.1/v3/", "ftp://x/", "not a url"]
)
def test_unsafe_or_bad_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        Client(TOKEN, base_url=url)


@pytest.mark.parametrize(
    "url", ["http://localhost:1/v3/", "http://127.0.0.5/v3", "http://[::1]:8080/v3/"]
)
def test_loopback_http_is_fine(url: str) -> None:
    Client(TOKEN, base_url=url).close()


def test_insecure_http_when_asked() -> None:
    Client(TOKEN, base_url="http://agent.internal/v3/", allow_insecure_http=True).close()


def test_timeout_none_is_refused_and_inf_means_forever() -> None:
    with pytest.raises(ValueError, match="forever"):
        Client(TOKEN, timeout=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        Client(TOKEN, timeout=0)
    c = Client(TOKEN, timeout=math.inf)
    assert c._core.timeout == httpx2.Timeout(None)
    c.close()
    d = Client(TOKEN)
    assert d._core.timeout.connect == 10.0
    assert d._core.timeout.read == 30.0
    d.close()


def test_repr_hides_the_token() -> None:
    with Client(TOKEN) as c:
        assert TOKEN not in repr(c)
        assert "agent.buildkite.com" in repr(c)


def test_wrong_http_client_kind_is_refused() -> None:
    with pytest.raises(TypeError, match=r"httpx2\.Client"):
        Client(TOKEN, http_client=httpx2.AsyncClient())  # type: ignore[arg-type]


def test_close_closes_only_our_own_http_client() -> None:
    c = Client(TOKEN)
    c.close()
    assert c._wire.closed
    theirs = httpx2.Client()
    mine = Client(TOKEN, http_client=theirs)
    mine.close()
    assert not theirs.is_closed
    theirs.close()


def test_default_logger_is_stacksapi_and_a_given_one_is_used(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    mine = logging.getLogger("my.app.stacks")
    server.reply(204)
    with (
        caplog.at_level(logging.DEBUG, logger="my.app.stacks"),
        Client(TOKEN, base_url=server.base_url, logger=mine) as c,
    ):
        c.deregister_stack("k")
    assert [r.name for r in caplog.records] == ["my.app.stacks"]
    assert Client(TOKEN)._core.logger is logging.getLogger("stacksapi")


_WARN_ONCE = """
import logging, sys
import stacksapi
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.WARNING)
with stacksapi.Client("bkct_silence123", base_url="http://127.0.0.1:9/v3/") as c:
    try:
        c.finish_job("k", "j", detail="x" * 5000, retry=False, timeout=1)
    except stacksapi.APIConnectionError:
        pass
"""


@pytest.mark.parametrize("logging_setup", ["none", "configured"])
def test_silent_unless_the_application_configures_logging(logging_setup: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WARN_ONCE, logging_setup],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    if logging_setup == "none":
        assert done.stderr == ""  # no last-resort printing of the crop warning
    else:
        assert "cropped" in done.stderr  # the warning exists and reaches configured logging
        assert "bkct_silence123" not in done.stderr


def test_version_is_exported() -> None:
    assert isinstance(stacksapi.__version__, str)
    assert stacksapi.__version__


def test_user_agent_without_prefix(client: Client, server: ScriptedServer) -> None:
    server.reply(204)
    client.deregister_stack("k")
    assert server.requests[-1].headers["user-agent"] == f"stacksapi-python/{stacksapi.__version__}"


def test_payload_logging_records_bodies_only_when_asked(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    for flag in (False, True):
        caplog.clear()
        server.reply(200, {"reserved": ["a"], "not_reserved": []})
        with (
            caplog.at_level(logging.DEBUG, logger="stacksapi"),
            Client(TOKEN, base_url=server.base_url, log_http_payloads=flag) as c,
        ):
            c.batch_reserve_jobs("s", ["a"])
        bodies = [r.getMessage() for r in caplog.records if getattr(r, "payload", None)]
        if flag:
            assert len(bodies) == 2
            assert '{"job_uuids":["a"]}' in bodies[0]
            assert '"reserved":["a"]' in bodies[1]
        else:
            assert bodies == []
        assert len([r for r in caplog.records if getattr(r, "attempt", None) == 1]) == 1
