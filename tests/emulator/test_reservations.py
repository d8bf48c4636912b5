"""Reservations, their expiry, job acquisition tokens and job states, over real HTTP."""

from __future__ import annotations

import httpx2
import pytest

from stacksapi import Client
from stacksapi.emulator import Emulator, EmulatorServer, ManualClock, mask_token

from ._helpers import QUEUE, STACK, listed_ids

OTHER = "other-stack"


def _reserve(http: httpx2.Client, ids: list[str], stack: str = STACK, **extra: object) -> dict:  # type: ignore[type-arg]
    response = http.put(
        f"stacks/{stack}/scheduled-jobs/batch-reserve", json={"job_uuids": ids, **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _tokens(http: httpx2.Client, ids: list[str], stack: str = STACK, **extra: object) -> dict:  # type: ignore[type-arg]
    response = http.post(f"stacks/{stack}/job-acquisition-tokens", json={"job_uuids": ids, **extra})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _register(http: httpx2.Client, key: str) -> None:
    body = {"key": key, "type": "custom", "queue_key": QUEUE, "metadata": {}}
    assert http.post("stacks/register", json=body).status_code == 201


def test_reserved_jobs_leave_the_list(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    ids = emulator.create_jobs(3)
    result = _reserve(http, ids[:2])
    assert result == {"reserved": ids[:2], "not_reserved": []}
    assert listed_ids(http) == ids[2:]
    assert {emulator.job_state(i) for i in ids[:2]} == {"reserved"}


def test_reservation_expires_after_default_900s(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    (job,) = emulator.create_jobs(1)
    _reserve(http, [job])
    clock.advance(899)
    assert listed_ids(http) == []
    clock.advance(1)
    assert listed_ids(http) == [job]
    info = emulator.job(job)
    assert info.state == "scheduled"
    assert info.reservations[-1].end_reason == "expired"
    assert [t.to_state for t in info.transitions] == ["reserved", "scheduled"]


def test_default_expiry_is_configurable_within_the_api_limits(clock: ManualClock) -> None:
    emulator = Emulator(clock=clock, reservation_expiry_seconds=60)
    (job,) = emulator.create_jobs(1)
    with EmulatorServer(emulator) as server, Client(server.token, base_url=server.base_url) as c:
        c.register_stack(STACK, queue_key=QUEUE)
        assert c.batch_reserve_jobs(STACK, [job]).reserved == (job,)
        clock.advance(59)
        assert emulator.job_state(job) == "reserved"
        clock.advance(1)
        assert emulator.job_state(job) == "scheduled"
    for bad in (0, 3601, 1.5, True):
        with pytest.raises(ValueError, match="reservation_expiry_seconds"):
            Emulator(reservation_expiry_seconds=bad)  # type: ignore[arg-type]


def test_re_reserving_extends(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    (job,) = emulator.create_jobs(1)
    _reserve(http, [job], reservation_expiry_seconds=10)
    clock.advance(8)
    assert _reserve(http, [job], reservation_expiry_seconds=10)["reserved"] == [job]
    clock.advance(8)
    assert emulator.job_state(job) == "reserved"
    clock.advance(2)
    assert emulator.job_state(job) == "scheduled"
    info = emulator.job(job)
    assert len(info.reservations) == 1
    assert info.reservations[0].extended == 1


def test_jobs_held_by_another_stack_are_not_reserved(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    _register(http, OTHER)
    ids = emulator.create_jobs(2)
    _reserve(http, ids[:1], stack=OTHER)
    missing = "00000000-0000-4000-8000-000000000000"
    canceled = emulator.create_job()
    emulator.cancel_job(canceled)
    result = _reserve(http, [*ids, missing, canceled])
    assert result["reserved"] == ids[1:]
    assert result["not_reserved"] == [ids[0], missing, canceled]


def test_paused_queue_refuses_reservations(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    ids = emulator.create_jobs(1)
    emulator.pause_queue(QUEUE)
    assert _reserve(http, ids) == {"reserved": [], "not_reserved": ids}
    emulator.resume_queue(QUEUE)
    assert _reserve(http, ids)["reserved"] == ids


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"job_uuids": []}, "job_uuids"),
        ({"job_uuids": ["x"] * 1001}, "job_uuids"),
        ({"job_uuids": ["x"], "reservation_expiry_seconds": 0}, "reservation_expiry_seconds"),
        ({"job_uuids": ["x"], "reservation_expiry_seconds": 3601}, "reservation_expiry_seconds"),
    ],
)
def test_reserve_limits(
    http: httpx2.Client, stack: str, body: dict[str, object], field: str
) -> None:
    response = http.put(f"stacks/{stack}/scheduled-jobs/batch-reserve", json=body)
    assert response.status_code == 422
    assert response.json()["message"].startswith(field)


def test_tokens_only_for_jobs_this_stack_reserved(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    _register(http, OTHER)
    mine, theirs, free = emulator.create_jobs(3)
    _reserve(http, [mine])
    _reserve(http, [theirs], stack=OTHER)
    result = _tokens(http, [mine, theirs, free])
    (issued,) = result["job_acquisition_tokens"]
    assert issued["job_uuid"] == mine
    assert issued["job_acquisition_token"].startswith("bkjat_")
    assert issued["expires_at"]
    assert result["not_issued"] == [theirs, free]
    history = emulator.job(mine).tokens
    assert [t.token for t in history] == [mask_token(issued["job_acquisition_token"])]
    assert issued["job_acquisition_token"] not in repr(emulator.job(mine))


def test_tokens_are_random(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    ids = emulator.create_jobs(2)
    _reserve(http, ids)
    first = _tokens(http, ids)["job_acquisition_tokens"]
    second = _tokens(http, ids)["job_acquisition_tokens"]
    values = {t["job_acquisition_token"] for t in first + second}
    assert len(values) == 4


def test_token_lifetime_limits(http: httpx2.Client, stack: str) -> None:
    for lifetime in (0, 3601):
        response = http.post(
            f"stacks/{stack}/job-acquisition-tokens",
            json={"job_uuids": ["x"], "token_lifetime_seconds": lifetime},
        )
        assert response.status_code == 422
        assert response.json()["message"].startswith("token_lifetime_seconds")


def _acquire(http: httpx2.Client, job: str, token: str) -> httpx2.Response:
    return http.post(f"jobs/{job}/acquire", headers={"Authorization": f"Token {token}"})


def test_token_stops_at_its_lifetime(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    (job,) = emulator.create_jobs(1)
    _reserve(http, [job])
    token = _tokens(http, [job], token_lifetime_seconds=60)["job_acquisition_tokens"][0]
    clock.advance(60)
    response = _acquire(http, job, token["job_acquisition_token"])
    assert response.status_code == 401
    assert "bkjat_" not in response.text


def test_token_stops_when_the_reservation_ends(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    (job,) = emulator.create_jobs(1)
    _reserve(http, [job], reservation_expiry_seconds=30)
    token = _tokens(http, [job], token_lifetime_seconds=600)["job_acquisition_tokens"][0]
    clock.advance(31)
    _reserve(http, [job])  # reserved again: a new reservation, the old token stays dead
    assert _acquire(http, job, token["job_acquisition_token"]).status_code == 401


def test_token_for_another_job_is_403(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    a, b = emulator.create_jobs(2)
    _reserve(http, [a, b])
    token = _tokens(http, [a])["job_acquisition_tokens"][0]["job_acquisition_token"]
    assert _acquire(http, b, token).status_code == 403
    assert _acquire(http, a, token).status_code == 200


def test_get_states(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    scheduled, reserved, canceled = emulator.create_jobs(3)
    _reserve(http, [reserved])
    emulator.cancel_job(canceled)
    missing = "00000000-0000-4000-8000-000000000000"
    response = http.post(
        f"stacks/{stack}/jobs/get-states",
        json={"job_uuids": [scheduled, reserved, canceled, missing]},
    )
    assert response.status_code == 200
    assert response.json() == {
        "states": {scheduled: "scheduled", reserved: "reserved", canceled: "canceled"}
    }
    too_many = http.post(f"stacks/{stack}/jobs/get-states", json={"job_uuids": ["x"] * 1001})
    assert too_many.status_code == 422


def test_deregister_releases_reservations(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    _register(http, OTHER)
    (job,) = emulator.create_jobs(1)
    _reserve(http, [job], stack=OTHER)
    assert http.post(f"stacks/{OTHER}/deregister").status_code == 204
    assert emulator.job_state(job) == "scheduled"
    assert listed_ids(http) == [job]


def test_job_expires_when_nobody_takes_it(
    http: httpx2.Client, stack: str, emulator: Emulator, clock: ManualClock
) -> None:
    job = emulator.create_job(expire_after=60)
    _reserve(http, [job])
    clock.advance(61)
    assert emulator.job_state(job) == "expired"
    assert listed_ids(http) == []
