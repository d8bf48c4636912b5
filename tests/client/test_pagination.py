"""iter_scheduled_jobs: follows end_cursor, stops on the last page, max_pages, or a stuck cursor."""

from __future__ import annotations

import pytest

import stacksapi
from stacksapi import Client

from ._data import job_page
from ._server import ScriptedServer


def test_follows_cursors_to_the_last_page(client: Client, server: ScriptedServer) -> None:
    server.reply(200, job_page(2, has_next=True, cursor="c1"))
    server.reply(200, job_page(2, start=2, has_next=True, cursor="c2"))
    server.reply(200, job_page(1, start=4, has_next=False, cursor=None))
    ids = [j.id for j in client.iter_scheduled_jobs("s", queue_key="q", page_size=2)]
    assert ids == [f"job-{i}" for i in range(5)]
    assert [r.query.get("after") for r in server.requests] == [None, "c1", "c2"]
    assert all(r.query["limit"] == "2" for r in server.requests)


def test_max_pages(client: Client, server: ScriptedServer) -> None:
    server.reply(200, job_page(1, has_next=True, cursor="c1"))
    server.reply(200, job_page(1, start=1, has_next=True, cursor="c2"))
    ids = [j.id for j in client.iter_scheduled_jobs("s", queue_key="q", max_pages=2)]
    assert ids == ["job-0", "job-1"]
    assert len(server.requests) == 2


def test_a_repeated_cursor_stops_instead_of_looping(client: Client, server: ScriptedServer) -> None:
    server.reply(200, job_page(1, has_next=True, cursor="same"))
    server.reply(200, job_page(1, start=1, has_next=True, cursor="same"))
    ids = [j.id for j in client.iter_scheduled_jobs("s", queue_key="q")]
    assert ids == ["job-0", "job-1"]
    assert len(server.requests) == 2


def test_arguments_checked_before_iterating(client: Client, server: ScriptedServer) -> None:
    with pytest.raises(stacksapi.RequestValidationError, match="page_size"):
        client.iter_scheduled_jobs("s", queue_key="q", page_size=5000)
    with pytest.raises(stacksapi.RequestValidationError, match="max_pages"):
        client.iter_scheduled_jobs("s", queue_key="q", max_pages=0)
    assert server.requests == []
