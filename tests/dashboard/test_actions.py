"""The dashboard's actions do what the admin API does, refuse bad input by field, and the admin
API gained the fault switch the dashboard shows."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest

from stacksapi.emulator import Emulator, EmulatorServer, ManualClock, parse_fault_spec

from .conftest import csrf_of


def _act(client: httpx2.Client, path: str, **fields: str) -> httpx2.Response:
    """Post a dashboard form as its script does (answer as JSON)."""
    data = {"csrf": csrf_of(client), **fields}
    return client.post(path, data=data, headers={"Accept": "application/json"})


def test_schedule_jobs_like_the_bulk_admin_call(browser: httpx2.Client, emulator: Emulator) -> None:
    response = _act(
        browser,
        "/dashboard/actions/jobs",
        count="3",
        queue="gpu",
        pipeline="web",
        command="echo hi",
        priority="5",
    )
    assert response.status_code == 200, response.text
    assert response.json()["message"] == "scheduled 3 jobs on queue gpu"
    jobs = emulator.list_jobs(queue="gpu")
    assert len(jobs) == 3
    assert {(j.command, j.priority, j.pipeline.slug, j.state) for j in jobs} == {
        ("echo hi", 5, "web", "scheduled")
    }


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"count": "0"}, "count: must be between 1 and 10000 (got 0)"),
        ({"count": "many"}, "count: must be a whole number"),
        ({"count": "1", "priority": "high"}, "priority: must be a whole number"),
    ],
)
def test_bad_schedule_input_names_the_field(
    browser: httpx2.Client, emulator: Emulator, fields: dict[str, str], message: str
) -> None:
    response = _act(browser, "/dashboard/actions/jobs", **fields)
    assert response.status_code == 422
    assert response.json()["message"] == message
    assert emulator.list_jobs() == []


def test_cancel_pause_and_resume(browser: httpx2.Client, emulator: Emulator) -> None:
    job = emulator.create_job(queue="linux")
    cancel = _act(browser, f"/dashboard/actions/jobs/{job}/cancel")
    assert cancel.status_code == 200
    assert emulator.job_state(job) == "canceled"
    again = _act(browser, f"/dashboard/actions/jobs/{job}/cancel")
    assert again.status_code == 422  # the admin API's own refusal, word for word
    assert "it cannot be canceled" in again.json()["message"]
    assert _act(browser, "/dashboard/actions/jobs/nope/cancel").status_code == 404
    assert _act(browser, "/dashboard/actions/queues/linux/pause").status_code == 200
    assert emulator.queue("linux").paused
    assert _act(browser, "/dashboard/actions/queues/linux/resume").status_code == 200
    assert not emulator.queue("linux").paused
    assert _act(browser, "/dashboard/actions/queues/nope/pause").status_code == 404


def test_a_form_without_script_is_redirected_back(browser: httpx2.Client) -> None:
    csrf = csrf_of(browser)
    response = browser.post(
        "/dashboard/actions/queues/linux/pause", data={"csrf": csrf, "next": "//evil.example/"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"  # never off this server


def test_clock_advances_only_a_manual_clock(browser: httpx2.Client) -> None:
    refused = _act(browser, "/dashboard/actions/clock", seconds="60")
    assert refused.status_code == 409
    assert "system clock" in refused.json()["message"]
    clock = ManualClock()
    with (
        EmulatorServer(Emulator(clock=clock)) as manual,
        httpx2.Client(base_url=manual.url, timeout=10) as client,
    ):
        client.get(manual.dashboard_login_url())
        before = clock.now()
        ok = _act(client, "/dashboard/actions/clock", seconds="90")
        assert ok.status_code == 200, ok.text
        assert clock.now() == pytest.approx(before + 90)
        for bad in ("-1", "nan", "inf", "soon"):
            response = _act(client, "/dashboard/actions/clock", seconds=bad)
            assert response.status_code == 422, bad
            assert response.json()["message"].startswith("seconds:")
        assert clock.now() == pytest.approx(before + 90)


@pytest.fixture
def faulty() -> Iterator[EmulatorServer]:
    faults = parse_fault_spec("500=1", seed=1)
    with EmulatorServer(Emulator(), middleware=[faults.middleware()]) as running:
        yield running


def test_fault_injection_switches_off_and_on(faulty: EmulatorServer) -> None:
    admin = {"Authorization": f"Token {faulty.admin_token}"}
    stacks_api = {"Authorization": f"Token {faulty.token}"}
    with httpx2.Client(base_url=faulty.url, timeout=10) as client:
        assert client.get("/v3/token", headers=stacks_api).status_code == 500
        client.get(faulty.dashboard_login_url())
        off = _act(client, "/dashboard/actions/faults", enabled="off")
        assert off.status_code == 200, off.text
        assert off.json()["message"] == "fault injection off (500=1)"
        assert client.get("/v3/token", headers=stacks_api).status_code == 200
        view = client.get("/_emulator/faults", headers=admin).json()
        assert view == {
            "configured": True,
            "enabled": False,
            "spec": "500=1",
            "injected": {"500": 1, "503": 0, "429": 0, "drop": 0, "latency": 0},
        }
        # The admin API switches it back on.
        on = client.post("/_emulator/faults", json={"enabled": True}, headers=admin)
        assert on.status_code == 200
        assert on.json()["enabled"] is True
        assert client.get("/v3/token", headers=stacks_api).status_code == 500
        assert _act(client, "/dashboard/actions/faults", enabled="maybe").status_code == 422


def test_fault_switch_without_fault_injection(
    server: EmulatorServer, browser: httpx2.Client
) -> None:
    admin = {"Authorization": f"Token {server.admin_token}"}
    assert browser.get("/_emulator/faults", headers=admin).json()["configured"] is False
    refused = browser.post("/_emulator/faults", json={"enabled": True}, headers=admin)
    assert refused.status_code == 409
    assert "--faults" in refused.json()["message"]
    assert _act(browser, "/dashboard/actions/faults", enabled="on").status_code == 409
    assert browser.get("/_emulator/faults").status_code == 401  # admin API: token only
