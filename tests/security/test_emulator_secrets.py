"""Property: the emulator's admin API and logs never hold a token it issued, only fingerprints.

Over real HTTP, a stack reserves jobs and takes job acquisition tokens (some used by an agent to
acquire, some refreshed by a second issue); then every admin view (overview, job list, each job's
history, stacks, counters) and every emulator log record is searched for the tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stacksapi.emulator import Emulator, EmulatorServer
from stacksapi.emulator._jobs import mask_token

from ._capture import capture_logs, leaks

QUEUE = "secrets"


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(
        Emulator(rate_limits=False, queues=[QUEUE], max_active_stacks=10_000)
    ) as running:
        yield running


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    jobs=st.integers(min_value=1, max_value=4),
    rounds=st.integers(min_value=1, max_value=3),
    acquire=st.booleans(),
    stack=st.from_regex(r"[a-z][a-z0-9-]{2,20}", fullmatch=True),
)
def test_admin_views_and_logs_hold_no_token(
    server: EmulatorServer, jobs: int, rounds: int, acquire: bool, stack: str
) -> None:
    auth = {"Authorization": f"Token {server.token}"}
    admin = {"Authorization": f"Token {server.admin_token}"}
    em = server.emulator
    ids = em.create_jobs(jobs, queue=QUEUE)
    tokens: list[str] = []
    with capture_logs() as logs, httpx2.Client(base_url=server.base_url, timeout=10) as http:
        body = {"key": stack, "type": "custom", "queue_key": QUEUE, "metadata": {}}
        assert http.post("stacks/register", json=body, headers=auth).status_code in (200, 201)
        reserve = {"job_uuids": ids}
        assert http.put(f"stacks/{stack}/scheduled-jobs/batch-reserve", json=reserve, headers=auth)
        for _ in range(rounds):
            issued = http.post(
                f"stacks/{stack}/job-acquisition-tokens", json={"job_uuids": ids}, headers=auth
            ).json()["job_acquisition_tokens"]
            tokens += [t["job_acquisition_token"] for t in issued]
        assert len(tokens) == jobs * rounds
        access: list[str] = []
        if acquire:
            mine = next(t["job_acquisition_token"] for t in issued if t["job_uuid"] == ids[0])
            r = http.post(f"jobs/{ids[0]}/acquire", headers={"Authorization": f"Token {mine}"})
            assert r.status_code == 200
            access.append(r.json()["access_token"])
        views = [http.get(server.admin_url + path, headers=admin).text for path in _VIEWS]
        views += [http.get(f"{server.admin_url}jobs/{j}", headers=admin).text for j in ids]
        http.post(f"stacks/{stack}/deregister", headers=auth)
    text = "\n".join(views)
    assert all(mask_token(t) in text for t in tokens)  # each issue is in the history, masked
    assert not leaks(text, server.token, *tokens, *access)
    assert not leaks(logs.text, server.token, *tokens, *access)


_VIEWS = ["", "jobs", "stacks", "counters", "queues"]
