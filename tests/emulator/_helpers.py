"""Small helpers shared by the emulator's tests."""

from __future__ import annotations

import httpx2

STACK = "test-stack"
QUEUE = "__default__"


def list_jobs(http: httpx2.Client, **params: str | int) -> httpx2.Response:
    query = {"queue_key": QUEUE, **params}
    return http.get(f"stacks/{STACK}/scheduled-jobs", params=query)


def listed_ids(http: httpx2.Client, **params: str | int) -> list[str]:
    response = list_jobs(http, **params)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]
