"""What the dashboard shows: the emulator's own state, live over server-sent events, bounded with
10,000 jobs, with rate-limit budgets and per-stack calls, and never a token."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from stacksapi import Pipeline
from stacksapi.emulator import Emulator, EmulatorServer, ManualClock, sample_jobs

ROW = re.compile(r'<tr data-job="([0-9a-f-]{36})" data-state="([a-z_]+)"')


def _updates(client: httpx2.Client, path: str) -> Iterator[dict[str, Any]]:
    """The ``update`` events of a stream, decoded."""
    with client.stream("GET", path) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "update":
                yield json.loads(line.removeprefix("data: "))


@contextlib.contextmanager
def _register(server: EmulatorServer, key: str, queue: str) -> Iterator[httpx2.Client]:
    """A plain HTTP client of the Stacks API, as the registered stack ``key``."""
    headers = {"Authorization": f"Token {server.token}"}
    with httpx2.Client(base_url=server.base_url, headers=headers, timeout=10) as client:
        body = {"key": key, "type": "custom", "queue_key": queue, "metadata": {}}
        assert client.post("stacks/register", json=body).status_code == 201
        yield client


def test_the_stream_follows_the_state(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    updates = _updates(browser, "/dashboard/events")
    first = next(updates)
    assert set(first["html"]) == {"queues", "jobs", "stacks", "status", "controls"}
    assert ROW.findall(first["html"]["jobs"]) == []
    job = emulator.create_job(queue="linux", pipeline=Pipeline(slug="web"))
    second = next(updates)  # sent because something changed
    assert ROW.findall(second["html"]["jobs"]) == [(job, "scheduled")]
    assert "web" in second["lists"]["pipelines"]
    emulator.cancel_job(job)
    third = next(updates)
    assert ROW.findall(third["html"]["jobs"]) == [(job, "canceled")]


def test_ten_thousand_jobs_send_counts_and_one_page(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    emulator.create_jobs(sample_jobs(10_000, ["linux"], seed=3))
    newest = list(emulator.jobs)[-1]
    page = browser.get("/")
    assert len(ROW.findall(page.text)) == 50
    assert "10000 jobs" in page.text
    updates = _updates(browser, "/dashboard/events?state=scheduled&page=3")
    first = next(updates)
    rows = ROW.findall(first["html"]["jobs"])
    assert len(rows) == 50
    assert newest not in {job for job, _ in rows}  # page 3, not page 1
    assert "page 3 of 200" in first["html"]["jobs"]
    assert "<b>10000</b> scheduled" in first["html"]["queues"]
    assert len(json.dumps(first)) < 200_000  # a page of rows, not ten thousand
    started = time.monotonic()
    emulator.create_job(queue="linux")
    second = next(updates)
    assert "<b>10001</b> scheduled" in second["html"]["queues"]
    assert time.monotonic() - started < 30  # generous: the point is that it comes at all


def test_filters_by_state_pipeline_stack_and_queue(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    web = emulator.create_job(queue="linux", pipeline=Pipeline(slug="web"))
    api = emulator.create_job(queue="linux", pipeline=Pipeline(slug="api"))
    other = emulator.create_job(pipeline=Pipeline(slug="web"))
    with _register(server, "picker", "linux") as stack:
        reserve = stack.put("stacks/picker/scheduled-jobs/batch-reserve", json={"job_uuids": [api]})
        assert reserve.json()["reserved"] == [api]

    def shown(query: str) -> set[str]:
        return {job for job, _ in ROW.findall(browser.get("/?" + query).text)}

    assert shown("pipeline=web") == {web, other}
    assert shown("queue=linux") == {web, api}
    assert shown("stack=picker") == {api}
    assert shown("state=reserved") == {api}
    assert shown("state=scheduled&pipeline=web&queue=linux") == {web}
    assert shown("page=nonsense") == {web, api, other}


def test_queues_show_budgets_and_stacks_show_calls_and_429s(emulator: Emulator) -> None:
    limited = Emulator(queues=["linux"], rate_limits={"list-scheduled-jobs": 2})
    with (
        EmulatorServer(limited) as server,
        httpx2.Client(base_url=server.url, timeout=10) as client,
        _register(server, "poller", "linux") as stack,
    ):
        client.get(server.dashboard_login_url())
        statuses = [
            stack.get("stacks/poller/scheduled-jobs", params={"queue_key": "linux"}).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        page = client.get("/").text
        queues = page[page.index('id="queues"') : page.index('id="jobs"')]
        assert "rate-limit budget of poller" in queues
        assert re.search(r"list-scheduled-jobs</span>\s*<meter[^>]*value=\"0\"", queues)
        assert ">0/2<" in queues
        stacks = page[page.index('id="stacks"') :]
        row = stacks[stacks.index('data-stack="poller"') :]
        cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', row)[:3]
        assert cells == ["0", "4", "1"]  # held, calls (register + 3 lists), 429s
        assert "connected" in row


def test_the_job_page_tells_the_story(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    job = emulator.create_job(queue="linux")
    with _register(server, "teller", "linux") as stack:
        stack.put("stacks/teller/scheduled-jobs/batch-reserve", json={"job_uuids": [job]})
        issued = stack.post(
            "stacks/teller/job-acquisition-tokens", json={"job_uuids": [job]}
        ).json()
        secret = issued["job_acquisition_tokens"][0]["job_acquisition_token"]
        note = {
            "notifications": [
                {"job_uuid": job, "detail": "Provisioning pod web-1", "timestamp": _now()}
            ]
        }
        assert stack.post("stacks/teller/notifications", json=note).status_code == 200
        finish = {"exit_status": -1, "detail": "image pull failed: no such image"}
        assert stack.post(f"stacks/teller/jobs/{job}/finish", json=finish).status_code == 200
    page = browser.get(f"/dashboard/jobs/{job}")
    assert page.status_code == 200
    text = page.text
    order = [
        "Scheduled on queue linux",
        "Reserved by stack teller",
        "Job token issued to stack teller",
        "Finished",
    ]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions)
    assert "stack_error: image pull failed: no such image" in text
    assert "exit status -1" in text
    assert "Provisioning pod web-1" in text
    assert secret not in text
    assert secret[:12] not in text
    assert "bkjat_…#" in text  # the fingerprint only
    missing = browser.get("/dashboard/jobs/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


def test_the_timeline_shows_an_expired_reservation_and_a_cancel() -> None:
    clock = ManualClock()
    emulator = Emulator(clock=clock, queues=["linux"], rate_limits=False)
    job = emulator.create_job(queue="linux")
    with (
        EmulatorServer(emulator) as server,
        httpx2.Client(base_url=server.url, timeout=10) as browser,
    ):
        browser.get(server.dashboard_login_url())
        with _register(server, "slow", "linux") as stack:
            body = {"job_uuids": [job], "reservation_expiry_seconds": 60}
            stack.put("stacks/slow/scheduled-jobs/batch-reserve", json=body)
        clock.advance(61)
        page = browser.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        cancel = browser.post(f"/dashboard/actions/jobs/{job}/cancel", data={"csrf": csrf[1]})
        assert cancel.status_code == 303
        text = browser.get(f"/dashboard/jobs/{job}").text
    order = ["Reserved by stack slow", "expired", "Back on the queue", "Canceled"]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions)
    assert "reservation expiry" in text
    assert "Cancel job" not in text  # nothing left to cancel


def test_no_page_or_stream_shows_a_token(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    job = emulator.create_job(queue="linux", env={"NOTE": "plain"})
    texts = [browser.get("/").text, browser.get(f"/dashboard/jobs/{job}").text]
    texts.append(json.dumps(next(_updates(browser, "/dashboard/events"))))
    texts.append(json.dumps(next(_updates(browser, f"/dashboard/jobs/{job}/events"))))
    for text in texts:
        assert server.admin_token not in text
        assert server.token not in text


def test_what_jobs_carry_is_shown_as_text_never_as_markup(
    browser: httpx2.Client, emulator: Emulator
) -> None:
    evil = "<script>alert(1)</script>"
    job = emulator.create_job(queue="linux", pipeline=Pipeline(slug=evil), command=evil)
    for text in (browser.get("/").text, browser.get(f"/dashboard/jobs/{job}").text):
        assert evil not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_dashboard_leaves_the_stacks_api_alone(
    server: EmulatorServer, browser: httpx2.Client, emulator: Emulator
) -> None:
    browser.get("/")
    assert emulator.counters() == {}  # not counted as Stacks API traffic
    unknown = browser.get("/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["message"] == "no such endpoint: GET /nothing-here"
    assert browser.get("/dashboard/static/dashboard.js").status_code == 200
    assert browser.get("/dashboard/static/nope.js").status_code == 404


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat()


@pytest.fixture(autouse=True)
def _fast_ticks(server: EmulatorServer) -> None:
    server.app.state.dashboard.interval = 0.05
