"""Bad arguments fail before sending, naming field and limit; long texts cropped; lists split."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

import stacksapi
from stacksapi import Client, RequestValidationError, StackNotification

from ._server import ScriptedServer


@pytest.mark.parametrize(
    ("call", "field", "limit"),
    [
        (lambda c: c.get_job("bad key!", "j"), "stack_key", "[A-Za-z0-9_-]"),
        (lambda c: c.get_job("a" * 81, "j"), "stack_key", "1..80"),
        (lambda c: c.get_job("", "j"), "stack_key", "1..80"),
        (lambda c: c.get_job("s", ""), "job_uuid", "must not be empty"),
        (lambda c: c.register_stack("k", queue_key=""), "queue_key", "must not be empty"),
        (
            lambda c: c.register_stack(
                "k", queue_key="q", metadata={str(i): "" for i in range(101)}
            ),
            "metadata",
            "at most 100 keys",
        ),
        (
            lambda c: c.register_stack("k", queue_key="q", metadata={"k" * 65: "v"}),
            "metadata[",
            "64 characters",
        ),
        (
            lambda c: c.register_stack("k", queue_key="q", metadata={"k": "v" * 257}),
            "metadata['k']",
            "256 characters",
        ),
        (
            lambda c: c.register_stack("k", queue_key="q", metadata={"k": 1}),
            "metadata['k']",
            "strings only",
        ),
        (lambda c: c.list_scheduled_jobs("s", queue_key="q", limit=0), "limit", "1..1000"),
        (lambda c: c.list_scheduled_jobs("s", queue_key="q", limit=1001), "limit", "1..1000"),
        (lambda c: c.list_scheduled_jobs("s", queue_key="q", limit=True), "limit", "int"),
        (
            lambda c: c.batch_reserve_jobs("s", ["a"], reservation_expiry_seconds=3601),
            "reservation_expiry_seconds",
            "1..3600",
        ),
        (
            lambda c: c.issue_job_acquisition_tokens("s", ["a"], token_lifetime_seconds=0),
            "token_lifetime_seconds",
            "1..3600",
        ),
        (lambda c: c.get_job_states("s", "abc"), "job_uuids", "sequence"),
        (lambda c: c.get_job_states("s", ["a", ""]), "job_uuids[1]", "must not be empty"),
        (lambda c: c.finish_job("s", "j", detail=""), "detail", "must not be empty"),
        (lambda c: c.finish_job("s", "j", detail="d", exit_status="0"), "exit_status", "int"),
        (
            lambda c: c.create_stack_notifications(
                "s", [StackNotification("a", "d", dt.datetime(2026, 1, 1))]
            ),
            "notifications[0].timestamp",
            "timezone-aware",
        ),
        (
            lambda c: c.create_stack_notifications("s", [StackNotification("a", "")]),
            "notifications[0].detail",
            "must not be empty",
        ),
        (lambda c: c.create_stack_notifications("s", [{"job_uuid": "a"}]), "notifications[0]", ""),
        (lambda c: c.get_job("s", "j", timeout=None), "timeout", "forever"),
        (lambda c: c.get_job("s", "j", retry=3), "retry", "RetryPolicy"),
    ],
)
def test_bad_arguments_raise_before_sending(
    client: Client, server: ScriptedServer, call: Any, field: str, limit: str
) -> None:
    with pytest.raises(RequestValidationError) as info:
        call(client)
    assert info.value.field.startswith(field)
    assert limit in str(info.value)
    assert isinstance(info.value, ValueError)
    assert server.requests == []


def test_finish_detail_over_4kb_is_cropped_on_a_character_boundary(
    client: Client, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(200, {})
    detail = "é" * 3000  # 6000 bytes of 2-byte characters
    with caplog.at_level(logging.WARNING, logger="stacksapi"):
        client.finish_job("s", "j", detail=detail)
    sent = server.requests[-1].json["detail"]
    assert len(sent.encode()) <= 4096
    assert "cropped" in sent
    assert sent.startswith("é" * 100)
    assert any("cropped" in r.getMessage() for r in caplog.records)


def test_notification_detail_over_256_is_cropped(
    client: Client, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply(200, {"errors": []})
    notes = [StackNotification("a", "ok"), StackNotification("b", "ü" * 300)]
    with caplog.at_level(logging.WARNING, logger="stacksapi"):
        client.create_stack_notifications("s", notes)
    sent = [n["detail"] for n in server.requests[-1].json["notifications"]]
    assert sent[0] == "ok"
    assert len(sent[1]) == 256
    assert sent[1].startswith("ü" * 200)
    assert sent[1].endswith("[cropped]")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "notifications[1].detail" in warnings[0]
    assert "cropped" in warnings[0]


def test_empty_lists_send_nothing(client: Client, server: ScriptedServer) -> None:
    assert client.batch_reserve_jobs("s", []) == stacksapi.Reservation()
    assert client.get_job_states("s", []) == stacksapi.JobStates()
    assert client.issue_job_acquisition_tokens("s", []) == stacksapi.JobAcquisitionTokens()
    assert client.create_stack_notifications("s", []) == stacksapi.NotificationsResult()
    assert server.requests == []


def test_long_uuid_lists_go_in_requests_of_1000_and_merge(
    client: Client, server: ScriptedServer
) -> None:
    uuids = [f"u{i}" for i in range(2500)]

    def fallback(req: Any) -> Any:
        from ._server import Reply

        asked = req.json["job_uuids"]
        import msgspec

        return Reply(200, msgspec.json.encode({"states": {u: "scheduled" for u in asked}}))

    server.fallback = fallback
    states = client.get_job_states("s", uuids)
    assert [len(r.json["job_uuids"]) for r in server.requests] == [1000, 1000, 500]
    assert len(states.states) == 2500


def test_reserve_and_tokens_merge_across_chunks(client: Client, server: ScriptedServer) -> None:
    uuids = [f"u{i}" for i in range(1001)]
    server.reply(200, {"reserved": uuids[:999], "not_reserved": ["u999"]})
    server.reply(200, {"reserved": ["u1000"], "not_reserved": []})
    res = client.batch_reserve_jobs("s", uuids, reservation_expiry_seconds=60)
    assert len(res.reserved) == 1000
    assert res.not_reserved == ("u999",)
    assert all(r.json["reservation_expiry_seconds"] == 60 for r in server.requests)
    server.reply(201, {"job_acquisition_tokens": [], "not_issued": ["u0"]})
    server.reply(201, {"job_acquisition_tokens": [], "not_issued": ["u1000"]})
    tokens = client.issue_job_acquisition_tokens("s", uuids)
    assert tokens.not_issued == ("u0", "u1000")


def test_notification_error_indexes_refer_to_the_callers_list(
    client: Client, server: ScriptedServer
) -> None:
    notes = [StackNotification(f"j{i}", "hello") for i in range(1500)]
    server.reply(200, {"errors": [{"error": "too many", "indexes": [3]}]})
    server.reply(200, {"errors": [{"error": "finished", "indexes": [0, 499]}]})
    result = client.create_stack_notifications("s", notes)
    assert [len(r.json["notifications"]) for r in server.requests] == [1000, 500]
    assert result.errors[0].indexes == (3,)
    assert result.errors[1].indexes == (1000, 1499)


def test_with_response_of_a_chunked_call(client: Client, server: ScriptedServer) -> None:
    server.reply(200, {"states": {}})
    server.reply(200, {"states": {}}, headers={"RateLimit-Remaining": "3"})
    r = client.with_response.get_job_states("s", [f"u{i}" for i in range(1001)])
    assert r.status_code == 200
    assert r.rate_limit is not None
    assert r.rate_limit.remaining == 3
