"""The agent-side routes (acquire, start, log, state, finish) and cancellation, over real HTTP."""

from __future__ import annotations

import threading

import httpx2
import pytest

from stacksapi.emulator import Emulator, EmulatorError

from ._helpers import STACK


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def _jat(http: httpx2.Client, job: str) -> str:
    reserve = http.put(f"stacks/{STACK}/scheduled-jobs/batch-reserve", json={"job_uuids": [job]})
    assert reserve.json()["reserved"] == [job]
    tokens = http.post(f"stacks/{STACK}/job-acquisition-tokens", json={"job_uuids": [job]})
    return str(tokens.json()["job_acquisition_tokens"][0]["job_acquisition_token"])


def test_whole_agent_run(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    job = emulator.create_job(command="make test", env={"CI": "true"})
    jat = _jat(http, job)
    acquired = http.post(f"jobs/{job}/acquire", headers=_auth(jat))
    assert acquired.status_code == 200
    body = acquired.json()
    assert (body["id"], body["command"], body["env"]) == (job, "make test", {"CI": "true"})
    access = body["access_token"]
    assert access.startswith("bkaa_")
    assert emulator.job_state(job) == "accepted"
    again = http.post(f"jobs/{job}/acquire", headers=_auth(jat))
    assert again.status_code == 401  # the token was used up
    assert http.put(f"jobs/{job}/start", headers=_auth(access)).json() == {"state": "running"}
    for chunk in ("hello ", "world\n"):
        log = http.post(f"jobs/{job}/log", headers=_auth(access), json={"content": chunk})
        assert log.status_code == 200
    assert http.get(f"jobs/{job}/state", headers=_auth(access)).json() == {"state": "running"}
    finish = http.put(
        f"jobs/{job}/finish", headers=_auth(access), json={"exit_status": 0, "signal_reason": None}
    )
    assert finish.status_code == 200
    info = emulator.job(job)
    assert info.state == "finished"
    assert info.log == "hello world\n"
    assert info.finish is not None
    assert (info.finish.by, info.finish.exit_status) == ("agent", 0)
    assert [t.to_state for t in info.transitions] == ["reserved", "accepted", "running", "finished"]
    assert info.tokens[0].used_at is not None
    assert info.reservations[0].end_reason == "acquired"
    refinish = http.put(f"jobs/{job}/finish", headers=_auth(access), json={"exit_status": 0})
    assert refinish.status_code == 422


def test_cluster_token_acquires_a_scheduled_job_even_when_paused(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    job = emulator.create_job()
    emulator.pause_queue("__default__")
    response = http.post(f"jobs/{job}/acquire")
    assert response.status_code == 200
    assert emulator.job_state(job) == "accepted"


def test_acquire_errors(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    assert http.post(f"jobs/{missing}/acquire").status_code == 404
    assert http.post(f"jobs/{missing}/acquire", headers=_auth("bkjat_nope")).status_code == 401
    done = emulator.create_job()
    emulator.cancel_job(done)
    refused = http.post(f"jobs/{done}/acquire")
    assert refused.status_code == 422
    assert "canceled" in refused.json()["message"]


def test_access_token_is_bound_to_its_job(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    a, b = emulator.create_jobs(2)
    access = http.post(f"jobs/{a}/acquire").json()["access_token"]
    http.post(f"jobs/{b}/acquire")
    assert http.get(f"jobs/{b}/state", headers=_auth(access)).status_code == 403
    assert http.get(f"jobs/{a}/state", headers=_auth("bkaa_wrong")).status_code == 401
    assert http.get(f"jobs/{a}/state").status_code == 401  # a cluster token is not enough


@pytest.mark.parametrize("state", ["scheduled", "reserved"])
def test_cancel_before_an_agent_is_immediate(
    http: httpx2.Client, stack: str, emulator: Emulator, state: str
) -> None:
    job = emulator.create_job()
    if state == "reserved":
        _jat(http, job)
    assert emulator.cancel_job(job) == "canceled"
    info = emulator.job(job)
    assert info.state == "canceled"
    assert [r.end_reason for r in info.reservations] == (
        ["canceled"] if state == "reserved" else []
    )
    assert http.post(f"jobs/{job}/acquire").status_code == 422


def test_cancel_while_running_waits_for_the_agent(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    job = emulator.create_job()
    access = http.post(f"jobs/{job}/acquire").json()["access_token"]
    http.put(f"jobs/{job}/start", headers=_auth(access))
    assert emulator.cancel_job(job) == "canceling"
    assert http.get(f"jobs/{job}/state", headers=_auth(access)).json() == {"state": "canceling"}
    finish = http.put(
        f"jobs/{job}/finish",
        headers=_auth(access),
        json={"exit_status": -1, "signal_reason": "cancel"},
    )
    assert finish.json() == {"state": "canceled"}
    info = emulator.job(job)
    assert info.finish is not None
    assert info.finish.signal_reason == "cancel"
    with pytest.raises(EmulatorError) as refused:
        emulator.cancel_job(job)
    assert refused.value.status == 422


def test_log_is_capped(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    job = emulator.create_job()
    access = http.post(f"jobs/{job}/acquire").json()["access_token"]
    chunk = "x" * (512 * 1024)
    for _ in range(3):
        response = http.post(f"jobs/{job}/log", headers=_auth(access), json={"content": chunk})
        assert response.status_code == 200
    info = emulator.job(job)
    assert len(info.log) == 1024 * 1024
    assert info.log_truncated is True


def test_agent_bad_bodies(http: httpx2.Client, stack: str, emulator: Emulator) -> None:
    job = emulator.create_job()
    access = http.post(f"jobs/{job}/acquire").json()["access_token"]
    bad = http.put(f"jobs/{job}/finish", headers=_auth(access), json={"exit_status": "zero"})
    assert bad.status_code == 400
    assert "exit_status" in bad.json()["message"]
    empty = http.post(f"jobs/{job}/log", headers=_auth(access))
    assert empty.status_code == 400


def test_wait_for_state_wakes_on_requests(
    http: httpx2.Client, stack: str, emulator: Emulator
) -> None:
    job = emulator.create_job()
    seen: list[str] = []
    waiter = threading.Thread(
        target=lambda: seen.append(emulator.wait_for_state(job, "running", "finished"))
    )
    waiter.start()
    access = http.post(f"jobs/{job}/acquire").json()["access_token"]
    http.put(f"jobs/{job}/start", headers=_auth(access))
    waiter.join(timeout=10)
    assert seen == ["running"]
    with pytest.raises(TimeoutError, match="running"):
        emulator.wait_for_state(job, "finished", timeout=0.05)
    with pytest.raises(ValueError, match="states"):
        emulator.wait_for_state(job)
