"""Register, deregister, list scheduled jobs, get job, GET token, auth: over real HTTP."""

from __future__ import annotations

import datetime as dt

import httpx2
import msgspec
import pytest

from stacksapi import Build, Pipeline, ScheduledJobsPage, Stack, Step, TokenInfo
from stacksapi.emulator import Emulator, EmulatorServer, JobSpec, ManualClock

from ._helpers import QUEUE, STACK, list_jobs, listed_ids

REGISTER = {"key": STACK, "type": "custom", "queue_key": QUEUE, "metadata": {"v": "1"}}


def test_register_is_an_upsert(http: httpx2.Client) -> None:
    first = http.post("stacks/register", json=REGISTER)
    assert first.status_code == 201
    stack = first.json()
    assert msgspec.json.decode(first.content, type=Stack).key == STACK
    assert stack["key"] == STACK
    assert stack["cluster_queue_key"] == QUEUE
    assert stack["state"] == "connected"
    assert stack["last_connected_on"] is not None
    again = http.post("stacks/register", json={**REGISTER, "metadata": {"v": "2"}})
    assert again.status_code == 200
    assert again.json()["metadata"] == {"v": "2"}
    assert again.json()["id"] == stack["id"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key": "bad key!"}, "key"),
        ({"key": "k" * 81}, "key"),
        ({"type": "mainframe"}, "type"),
        ({"metadata": {f"k{i}": "v" for i in range(101)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 257}}, "metadata"),
    ],
)
def test_register_limits(http: httpx2.Client, change: dict[str, object], field: str) -> None:
    response = http.post("stacks/register", json={**REGISTER, **change})
    assert response.status_code == 422
    assert response.json()["message"].startswith(field)


def test_register_unknown_queue_is_404(http: httpx2.Client) -> None:
    response = http.post("stacks/register", json={**REGISTER, "queue_key": "nope"})
    assert response.status_code == 404
    assert "queue_key" in response.json()["message"]


def test_active_stack_cap_gives_403_until_one_deregisters(clock: ManualClock) -> None:
    with EmulatorServer(Emulator(clock=clock, max_active_stacks=2, rate_limits=False)) as srv:
        headers = {"Authorization": f"Token {srv.token}"}
        with httpx2.Client(base_url=srv.base_url, headers=headers) as http:
            for key in ("a", "b"):
                assert (
                    http.post("stacks/register", json={**REGISTER, "key": key}).status_code == 201
                )
            refused = http.post("stacks/register", json={**REGISTER, "key": "c"})
            assert refused.status_code == 403
            assert "stack limit" in refused.json()["message"]
            assert http.post("stacks/register", json={**REGISTER, "key": "a"}).status_code == 200
            assert http.post("stacks/b/deregister").status_code == 204
            assert http.post("stacks/register", json={**REGISTER, "key": "c"}).status_code == 201


def test_deregister_then_unknown_stack_is_404(http: httpx2.Client, stack: str) -> None:
    response = http.post(f"stacks/{stack}/deregister")
    assert response.status_code == 204
    assert response.content == b""
    again = http.post(f"stacks/{stack}/deregister")
    assert again.status_code == 404
    assert stack in again.json()["message"]
    assert list_jobs(http).status_code == 404


def test_list_pages_in_schedule_order_with_cursor(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    ids = emulator.create_jobs(5)
    first = list_jobs(http, limit=2)
    assert first.status_code == 200
    page = first.json()
    assert [j["id"] for j in page["jobs"]] == ids[:2]
    assert page["page_info"]["has_next_page"] is True
    cursor = page["page_info"]["end_cursor"]
    assert isinstance(cursor, str)
    second = list_jobs(http, limit=2, after=cursor).json()
    assert [j["id"] for j in second["jobs"]] == ids[2:4]
    third = list_jobs(http, limit=2, after=second["page_info"]["end_cursor"]).json()
    assert [j["id"] for j in third["jobs"]] == ids[4:]
    assert third["page_info"]["has_next_page"] is False


def test_list_orders_by_scheduled_at_then_id(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    at = dt.datetime.fromtimestamp(clock.now() - 60, tz=dt.UTC)
    late = emulator.create_job(scheduled_at=at + dt.timedelta(seconds=10))
    ties = sorted(emulator.create_jobs([JobSpec(scheduled_at=at), JobSpec(scheduled_at=at)]))
    assert listed_ids(http) == [*ties, late]


def test_list_job_shape_nested_objects_and_runnable_at(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    runnable = dt.datetime.fromtimestamp(clock.now() + 30, tz=dt.UTC)
    full = emulator.create_job(
        priority=5,
        agent_query_rules=("queue=default", "os=linux"),
        pipeline=Pipeline(slug="web", uuid="p-1"),
        build=Build(uuid="b-1", number=42, branch="main"),
        step=Step(key="test"),
        runnable_at=runnable,
    )
    bare = emulator.create_job()
    raw = list_jobs(http)
    page = raw.json()
    jobs = {j["id"]: j for j in page["jobs"]}
    assert jobs[full]["priority"] == 5
    assert jobs[full]["agent_query_rules"] == ["queue=default", "os=linux"]
    assert jobs[full]["pipeline"] == {"slug": "web", "uuid": "p-1"}
    assert jobs[full]["build"] == {"uuid": "b-1", "number": 42, "branch": "main"}
    assert jobs[full]["step"] == {"key": "test"}
    assert jobs[full]["runnable_at"].startswith(runnable.strftime("%Y-%m-%dT%H:%M:%S"))
    assert jobs[bare]["pipeline"] == {"slug": None, "uuid": None}
    assert jobs[bare]["build"] == {"uuid": None, "number": None, "branch": None}
    assert jobs[bare]["step"] == {"key": None}
    assert jobs[bare]["agent_query_rules"] == [f"queue={QUEUE}"]
    decoded = msgspec.json.decode(raw.content, type=ScheduledJobsPage)
    assert {j.id for j in decoded.jobs} == {full, bare}


def test_paused_queue_reports_both_flags(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    queue = list_jobs(http).json()["cluster_queue"]
    assert queue["dispatch_paused"] is False
    assert queue["paused"] is False
    emulator.pause_queue(QUEUE)
    queue = list_jobs(http).json()["cluster_queue"]
    assert queue["dispatch_paused"] is True
    assert queue["paused"] is True
    emulator.resume_queue(QUEUE)
    assert list_jobs(http).json()["cluster_queue"]["paused"] is False


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"limit": 0}, 400, "limit"),
        ({"limit": 1001}, 400, "limit"),
        ({"limit": "ten"}, 400, "limit"),
        ({"after": "not-a-cursor!"}, 400, "after"),
        ({"queue_key": "missing"}, 404, "queue_key"),
    ],
)
def test_list_bad_parameters(
    http: httpx2.Client, stack: str, params: dict[str, str | int], status: int, field: str
) -> None:
    response = list_jobs(http, **params)
    assert response.status_code == status
    assert response.json()["message"].startswith(field)


def test_list_needs_queue_key(http: httpx2.Client, stack: str) -> None:
    response = http.get(f"stacks/{stack}/scheduled-jobs")
    assert response.status_code == 400
    assert response.json()["message"].startswith("queue_key")


def test_default_page_size_and_max(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    emulator.create_jobs(1200)
    assert len(listed_ids(http)) == 100
    assert len(listed_ids(http, limit=1000)) == 1000


def test_queue_connected_when_polled_within_30s(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    assert emulator.queue(QUEUE).connected is False
    list_jobs(http)
    assert emulator.queue(QUEUE).connected is True
    clock.advance(29)
    assert emulator.queue(QUEUE).connected is True
    clock.advance(2)
    assert emulator.queue(QUEUE).connected is False


def test_get_job_returns_env_and_command(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    big = "x" * 120_000
    job_id = emulator.create_job(command="make test", env={"A": "1", "BIG": big})
    response = http.get(f"stacks/{stack}/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json() == {"id": job_id, "env": {"A": "1", "BIG": big}, "command": "make test"}
    missing = http.get(f"stacks/{stack}/jobs/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


def test_get_token(http: httpx2.Client, emulator: Emulator) -> None:
    response = http.get("token")
    assert response.status_code == 200
    info = msgspec.json.decode(response.content, type=TokenInfo)
    assert info.is_clustered
    assert info.cluster_uuid == emulator.cluster_uuid
    assert info.organization_slug == emulator.organization_slug


@pytest.mark.parametrize("header", [None, "Token wrong", "Basic abc", "Token"])
def test_auth_refused_with_401_and_no_token_echo(
    server: EmulatorServer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx2.Client(base_url=server.base_url, headers=headers) as http:
        response = http.get("token")
    assert response.status_code == 401
    assert response.json()["message"]
    assert server.token not in response.text


def test_configured_tokens_replace_the_default() -> None:
    emulator = Emulator(tokens=["bkct_one", "bkct_two"], rate_limits=False)
    assert emulator.token == "bkct_one"
    with EmulatorServer(emulator) as srv:
        for token, status in (("bkct_one", 200), ("bkct_two", 200), ("bkct_three", 401)):
            headers = {"Authorization": f"Token {token}"}
            with httpx2.Client(base_url=srv.base_url, headers=headers) as http:
                assert http.get("token").status_code == status


def test_a_single_token_string_is_one_token() -> None:
    assert Emulator(tokens="bkct_single").tokens == ("bkct_single",)
    with pytest.raises(ValueError, match="tokens"):
        Emulator(tokens=["bkct_ok", ""])


def test_default_token_is_random_per_instance() -> None:
    a, b = Emulator(), Emulator()
    assert a.token.startswith("bkct_")
    assert a.token != b.token
    assert a.token not in repr(a)
    assert a.admin_token != a.token


def test_stack_key_with_dot_is_escaped_and_routed(http: httpx2.Client) -> None:
    body = {**REGISTER, "key": "my_stack-1"}
    assert http.post("stacks/register", json=body).status_code == 201
    response = http.get("stacks/my_stack%2D1/scheduled-jobs", params={"queue_key": QUEUE})
    assert response.status_code == 200
    dotted = http.get("stacks/a%2Eb/scheduled-jobs", params={"queue_key": QUEUE})
    assert dotted.status_code == 404
    assert "'a.b'" in dotted.json()["message"]
