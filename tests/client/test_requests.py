"""What goes on the wire for each endpoint, and how each success body is read (real HTTP)."""

from __future__ import annotations

import datetime as dt

import httpx2
import pytest

import stacksapi
from stacksapi import Client, JobState, StackNotification, StackType

from ._data import job_page, stack_body
from ._server import ScriptedServer
from .conftest import TOKEN


def test_register_stack_sends_the_documented_body(client: Client, server: ScriptedServer) -> None:
    server.reply(201, stack_body())
    stack = client.register_stack("my-stack", queue_key="__default__", metadata={"version": "1.0"})
    req = server.requests[-1]
    assert (req.method, req.raw_path) == ("POST", "/v3/stacks/register")
    assert req.json == {
        "key": "my-stack",
        "type": "custom",
        "queue_key": "__default__",
        "metadata": {"version": "1.0"},
    }
    assert req.headers["content-type"] == "application/json"
    assert stack.key == "my-stack"
    assert stack.state == stacksapi.StackState.CONNECTED


def test_register_defaults_to_empty_metadata_and_custom_type(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(200, stack_body())
    client.register_stack("k", queue_key="q", type=StackType.KUBERNETES)
    assert server.requests[-1].json["metadata"] == {}
    assert server.requests[-1].json["type"] == "kubernetes"


def test_every_request_carries_token_accept_and_user_agent(server: ScriptedServer) -> None:
    server.reply(204)
    with Client(TOKEN, base_url=server.base_url, user_agent_prefix="my-stack/2.0") as c:
        c.deregister_stack("k")
    h = server.requests[-1].headers
    assert h["authorization"] == f"Token {TOKEN}"
    assert h["accept"] == "application/json"
    assert h["user-agent"] == f"my-stack/2.0 stacksapi-python/{stacksapi.__version__}"
    assert "content-type" not in h  # no body, no content type


def test_deregister_posts_to_the_stack_path(client: Client, server: ScriptedServer) -> None:
    server.reply(204)
    client.deregister_stack("my-stack")
    assert (server.requests[-1].method, server.requests[-1].raw_path) == (
        "POST",
        "/v3/stacks/my-stack/deregister",
    )


def test_list_scheduled_jobs_query_and_page(client: Client, server: ScriptedServer) -> None:
    server.reply(200, job_page(2, has_next=True, cursor="c-2", paused=True))
    page = client.list_scheduled_jobs("s", queue_key="__default__", limit=2, after="c-0")
    req = server.requests[-1]
    assert req.raw_path == "/v3/stacks/s/scheduled-jobs"
    assert req.query == {"queue_key": "__default__", "limit": "2", "after": "c-0"}
    assert [j.id for j in page.jobs] == ["job-0", "job-1"]
    assert page.jobs[0].scheduled_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert page.page_info.has_next_page
    assert page.page_info.end_cursor == "c-2"
    assert page.cluster_queue.id == "q-1"
    assert page.cluster_queue.dispatch_paused


def test_list_reads_paused_as_an_alias(client: Client, server: ScriptedServer) -> None:
    server.reply(200, job_page(0, paused_field="paused", paused=True))
    assert client.list_scheduled_jobs("s", queue_key="q").cluster_queue.dispatch_paused


def test_list_omits_absent_options(client: Client, server: ScriptedServer) -> None:
    server.reply(200, job_page(0))
    client.list_scheduled_jobs("s", queue_key="q")
    assert server.requests[-1].query == {"queue_key": "q"}


def test_batch_reserve(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"reserved": ["a"], "not_reserved": ["b"]})
    res = client.batch_reserve_jobs("s", ["a", "b"], reservation_expiry_seconds=300)
    req = server.requests[-1]
    assert (req.method, req.raw_path) == ("PUT", "/v3/stacks/s/scheduled-jobs/batch-reserve")
    assert req.json == {"job_uuids": ["a", "b"], "reservation_expiry_seconds": 300}
    assert res.reserved == ("a",)
    assert res.not_reserved == ("b",)


def test_batch_reserve_omits_expiry_for_the_server_default(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(200, {"reserved": [], "not_reserved": []})
    client.batch_reserve_jobs("s", ["a"])
    assert server.requests[-1].json == {"job_uuids": ["a"]}


def test_get_job_escapes_path_segments(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"id": "a.b/c d", "env": {"X": "1"}, "command": "make"})
    job = client.get_job("s", "a.b/c d")
    assert server.requests[-1].raw_path == "/v3/stacks/s/jobs/a%2Eb%2Fc%20d"
    assert job.env == {"X": "1"}
    assert job.command == "make"


def test_get_job_states_keeps_unknown_states(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"states": {"a": "running", "b": "teleporting"}})
    states = client.get_job_states("s", ["a", "b"])
    assert server.requests[-1].raw_path == "/v3/stacks/s/jobs/get-states"
    assert server.requests[-1].json == {"job_uuids": ["a", "b"]}
    assert states.states["a"] == JobState.RUNNING
    assert states.states["b"] == "teleporting"


def test_finish_always_sends_exit_status_even_zero(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {})
    client.finish_job("s", "j", detail="done", exit_status=0)
    req = server.requests[-1]
    assert req.raw_path == "/v3/stacks/s/jobs/j/finish"
    assert req.json == {"exit_status": 0, "detail": "done"}


def test_finish_defaults_and_signal_reason(client: Client, server: ScriptedServer) -> None:
    server.reply(204)
    client.finish_job("s", "j", detail="no capacity", signal_reason="stack_error")
    assert server.requests[-1].json == {
        "exit_status": -1,
        "detail": "no capacity",
        "signal_reason": "stack_error",
    }


def test_notifications(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"errors": [{"error": "job finished", "indexes": [1]}]})
    when = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    result = client.create_stack_notifications(
        "s", [StackNotification("a", "pod starting", when), StackNotification("b", "queued")]
    )
    assert server.requests[-1].raw_path == "/v3/stacks/s/notifications"
    assert server.requests[-1].json == {
        "notifications": [
            {"job_uuid": "a", "detail": "pod starting", "timestamp": "2026-01-01T12:00:00Z"},
            {"job_uuid": "b", "detail": "queued"},
        ]
    }
    assert result.errors[0].error == "job finished"
    assert result.errors[0].indexes == (1,)


def test_job_acquisition_tokens_are_secrets(client: Client, server: ScriptedServer) -> None:
    server.reply(
        201,
        {
            "job_acquisition_tokens": [
                {
                    "job_uuid": "a",
                    "job_acquisition_token": "bkjat_sekrit",
                    "expires_at": "2026-01-01T00:15:00Z",
                }
            ],
            "not_issued": ["b"],
        },
    )
    tokens = client.issue_job_acquisition_tokens("s", ["a", "b"], token_lifetime_seconds=60)
    assert server.requests[-1].raw_path == "/v3/stacks/s/job-acquisition-tokens"
    assert server.requests[-1].json == {"job_uuids": ["a", "b"], "token_lifetime_seconds": 60}
    tok = tokens.job_acquisition_tokens[0]
    assert tok.job_acquisition_token.get_secret_value() == "bkjat_sekrit"
    assert "bkjat_sekrit" not in repr(tokens)
    assert "bkjat_sekrit" not in str(tok)
    assert tokens.not_issued == ("b",)


def test_get_token(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"uuid": "t", "cluster_uuid": "c", "organization_slug": "acme"})
    info = client.get_token()
    assert (server.requests[-1].method, server.requests[-1].raw_path) == ("GET", "/v3/token")
    assert info.is_clustered
    assert info.organization_slug == "acme"


@pytest.mark.parametrize("suffix", ["/v3", "/v3/", "/v3//"])
def test_base_url_path_kept_whatever_the_slashes(server: ScriptedServer, suffix: str) -> None:
    server.reply(204)
    with Client(TOKEN, base_url=f"http://127.0.0.1:{server.port}{suffix}") as c:
        c.deregister_stack("k")
    assert server.requests[-1].raw_path == "/v3/stacks/k/deregister"


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(client: Client, server: ScriptedServer, status: int) -> None:
    server.reply(status)
    client.finish_job("s", "j", detail="d")
    assert len(server.requests) == 1


def test_with_response_gives_status_headers_and_rate_limit(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(
        200,
        {"id": "j", "env": {}, "command": ""},
        headers={
            "RateLimit-Scope": "show-job",
            "RateLimit-Limit": "1000",
            "RateLimit-Remaining": "998",
            "RateLimit-Reset": "1",
        },
    )
    r = client.with_response.get_job("s", "j")
    assert r.status_code == 200
    assert r.data.id == "j"
    assert r.headers["ratelimit-scope"] == "show-job"
    assert r.rate_limit == stacksapi.RateLimit(scope="show-job", limit=1000, remaining=998, reset=1)
    assert r.elapsed > dt.timedelta(0)


def test_with_response_rate_limit_none_without_headers(
    client: Client, server: ScriptedServer
) -> None:
    server.reply(204)
    r = client.with_response.deregister_stack("k")
    assert r.data is None
    assert r.status_code == 204
    assert r.rate_limit is None


def test_callers_http_client_is_used_and_not_closed(server: ScriptedServer) -> None:
    http = httpx2.Client()
    server.reply(204)
    with Client(TOKEN, base_url=server.base_url, http_client=http) as c:
        c.deregister_stack("k")
    assert not http.is_closed
    assert server.requests[-1].headers["authorization"] == f"Token {TOKEN}"
    http.close()
