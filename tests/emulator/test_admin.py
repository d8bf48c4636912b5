"""The admin HTTP API under /_emulator/ and the Python driving methods it mirrors."""

from __future__ import annotations

import httpx2
import pytest

from stacksapi.emulator import Emulator, EmulatorError, EmulatorServer, JobSpec, ManualClock

from ._helpers import QUEUE, STACK, listed_ids


def test_admin_needs_its_own_token(server: EmulatorServer) -> None:
    for header in (None, f"Token {server.token}", "Token nope"):
        headers = {} if header is None else {"Authorization": header}
        with httpx2.Client(base_url=server.admin_url, headers=headers) as client:
            response = client.get("jobs")
        assert response.status_code == 401
        assert "admin" in response.json()["message"]


def test_the_admin_token_is_not_a_cluster_token(server: EmulatorServer) -> None:
    headers = {"Authorization": f"Token {server.admin_token}"}
    with httpx2.Client(base_url=server.base_url, headers=headers) as client:
        assert client.get("token").status_code == 401


def test_create_one_job_with_every_field(admin: httpx2.Client, emulator: Emulator) -> None:
    spec = {
        "queue": "linux",
        "priority": 3,
        "agent_query_rules": ["queue=linux", "os=linux"],
        "pipeline": {"slug": "web", "uuid": "p"},
        "build": {"uuid": "b", "number": 7, "branch": "main"},
        "step": {"key": "test"},
        "env": {"A": "1"},
        "command": "make",
        "runnable_at": "2030-01-01T00:00:00Z",
        "scheduled_at": "2026-01-01T00:00:00Z",
        "unknown": "ignored",
    }
    response = admin.post("jobs", json=spec)
    assert response.status_code == 201
    info = emulator.job(response.json()["id"])
    assert (info.queue, info.priority, info.command, info.env) == ("linux", 3, "make", {"A": "1"})
    assert info.agent_query_rules == ("queue=linux", "os=linux")
    assert (info.pipeline.slug, info.build.number, info.step.key) == ("web", 7, "test")
    assert info.runnable_at is not None
    assert info.runnable_at.year == 2030
    assert info.scheduled_at.year == 2026


def test_bulk_create_by_list_and_by_count(admin: httpx2.Client, emulator: Emulator) -> None:
    listed = admin.post("jobs/bulk", json={"jobs": [{"command": "a"}, {"command": "b"}]})
    assert listed.status_code == 201
    counted = admin.post("jobs/bulk", json={"count": 3, "spec": {"queue": "linux"}})
    assert counted.status_code == 201
    assert len(listed.json()["ids"]) == 2
    assert len(counted.json()["ids"]) == 3
    assert len(emulator.list_jobs(queue="linux")) == 3
    assert admin.post("jobs/bulk", json={}).status_code == 400
    assert admin.post("jobs/bulk", json={"count": -1}).status_code == 422


def test_bad_job_specs(admin: httpx2.Client) -> None:
    wrong_type = admin.post("jobs", json={"priority": "high"})
    assert wrong_type.status_code == 400
    assert "priority" in wrong_type.json()["message"]
    assert admin.post("jobs", content=b"{nope").status_code == 400
    bad_id = admin.post("jobs", json={"id": "not-a-uuid"})
    assert bad_id.status_code == 422
    assert bad_id.json()["message"].startswith("id")


def test_list_and_show_jobs_with_history(
    admin: httpx2.Client, http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    a, b = emulator.create_jobs(2)
    http.put(f"stacks/{STACK}/scheduled-jobs/batch-reserve", json={"job_uuids": [a]})
    tokens = http.post(f"stacks/{STACK}/job-acquisition-tokens", json={"job_uuids": [a]})
    raw_token = tokens.json()["job_acquisition_tokens"][0]["job_acquisition_token"]
    http.post(
        f"stacks/{STACK}/notifications", json={"notifications": [{"job_uuid": a, "detail": "hi"}]}
    )
    everything = admin.get("jobs")
    assert everything.status_code == 200
    assert [j["id"] for j in everything.json()["jobs"]] == [a, b]
    assert raw_token not in everything.text
    reserved = admin.get("jobs", params={"state": "reserved"}).json()["jobs"]
    assert [j["id"] for j in reserved] == [a]
    one = admin.get(f"jobs/{a}").json()
    assert one["reservations"][0]["stack_key"] == STACK
    assert one["tokens"][0]["token"].startswith("bkjat_…#")
    assert one["notifications"][0]["detail"] == "hi"
    assert one["transitions"][0]["to_state"] == "reserved"
    assert admin.get("jobs/00000000-0000-4000-8000-000000000000").status_code == 404
    assert [j["id"] for j in admin.get("jobs", params={"limit": 1}).json()["jobs"]] == [a]
    for bad in ("0", "-1"):
        refused = admin.get("jobs", params={"limit": bad})
        assert refused.status_code == 422
        assert refused.json()["message"].startswith("limit")


def test_cancel_over_http(admin: httpx2.Client, emulator: Emulator) -> None:
    job = emulator.create_job()
    response = admin.post(f"jobs/{job}/cancel")
    assert response.json() == {"state": "canceled"}
    again = admin.post(f"jobs/{job}/cancel")
    assert again.status_code == 422


def test_pause_resume_and_create_queues(
    admin: httpx2.Client, http: httpx2.Client, stack: str
) -> None:
    assert admin.post(f"queues/{QUEUE}/pause").json()["paused"] is True
    page = http.get(f"stacks/{STACK}/scheduled-jobs", params={"queue_key": QUEUE}).json()
    assert page["cluster_queue"]["paused"] is True
    assert admin.post(f"queues/{QUEUE}/resume").json()["paused"] is False
    assert admin.post("queues/nope/pause").status_code == 404
    created = admin.post("queues", json={"key": "gpu"})
    assert created.status_code == 201
    keys = [q["key"] for q in admin.get("queues").json()["queues"]]
    assert keys == [QUEUE, "linux", "gpu"]
    assert [q["connected"] for q in admin.get("queues").json()["queues"]] == [True, False, False]
    one = admin.get("queues/gpu")
    assert one.status_code == 200
    assert (one.json()["key"], one.json()["paused"], one.json()["scheduled_jobs"]) == (
        "gpu",
        False,
        0,
    )
    assert admin.get("queues/nope").status_code == 404


def test_stacks_and_counters(admin: httpx2.Client, http: httpx2.Client, stack: str) -> None:
    http.get("token")
    http.get("token", headers={"Authorization": "Token wrong"})
    stacks = admin.get("stacks").json()["stacks"]
    assert [s["key"] for s in stacks] == [STACK]
    counters = admin.get("counters").json()["counters"]
    assert counters["register_stack"] == {"201": 1}
    assert counters["get_token"] == {"200": 1, "401": 1}


def test_reset_forgets_everything_but_configuration(
    admin: httpx2.Client, http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    emulator.create_jobs(3)
    emulator.pause_queue(QUEUE)
    assert admin.post("reset").status_code == 204
    assert emulator.list_jobs() == []
    assert emulator.list_stacks() == []
    assert emulator.counters() == {}
    assert emulator.queue(QUEUE).paused is False
    assert http.get("token").status_code == 200  # tokens survive


def test_advance_the_manual_clock(
    admin: httpx2.Client, http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    (job,) = emulator.create_jobs(1)
    http.put(
        f"stacks/{STACK}/scheduled-jobs/batch-reserve",
        json={"job_uuids": [job], "reservation_expiry_seconds": 5},
    )
    assert admin.post("clock/advance", json={"seconds": 5}).status_code == 200
    assert listed_ids(http) == [job]
    assert admin.post("clock/advance", json={"seconds": -1}).status_code == 422


def test_advance_refused_on_the_system_clock() -> None:
    with EmulatorServer(Emulator()) as srv:
        headers = {"Authorization": f"Token {srv.admin_token}"}
        with httpx2.Client(base_url=srv.admin_url, headers=headers) as admin:
            assert admin.post("clock/advance", json={"seconds": 1}).status_code == 409
            overview = admin.get("").json()
            assert overview["jobs"] == 0
            assert overview["queues"][0]["key"] == QUEUE


def test_python_driving_errors(emulator: Emulator) -> None:
    with pytest.raises(EmulatorError) as missing:
        emulator.cancel_job("nope")
    assert missing.value.status == 404
    with pytest.raises(EmulatorError):
        emulator.pause_queue("nope")
    job = emulator.create_job(id="00000000-0000-4000-8000-000000000001")
    with pytest.raises(EmulatorError, match="already exists"):
        emulator.create_job(JobSpec(id=job))


def test_seed_makes_job_ids_reproducible(clock: ManualClock) -> None:
    first = Emulator(seed=7, clock=clock).create_jobs(3)
    second = Emulator(seed=7, clock=clock).create_jobs(3)
    other = Emulator(seed=8, clock=clock).create_jobs(3)
    assert first == second
    assert first != other


def test_force_any_state(
    admin: httpx2.Client, http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    job = emulator.create_job()
    response = admin.post(f"jobs/{job}/state", json={"state": "waiting"})
    assert response.json() == {"state": "waiting"}
    assert listed_ids(http) == []
    states = http.post(f"stacks/{STACK}/jobs/get-states", json={"job_uuids": [job]}).json()
    assert states == {"states": {job: "waiting"}}
    assert emulator.set_job_state(job, "scheduled") == "scheduled"
    assert listed_ids(http) == [job]
    assert admin.post(f"jobs/{job}/state", json={"state": ""}).status_code == 422


def test_finished_by_and_exit_status_at_the_top(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    job = emulator.create_job()
    http.post(f"stacks/{STACK}/jobs/{job}/finish", json={"exit_status": 2, "detail": "x"})
    info = emulator.job(job)
    assert (info.finished_by, info.exit_status) == (f"stack {STACK}", 2)
