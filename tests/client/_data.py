"""Wire-shaped sample bodies for the client tests."""

from __future__ import annotations

from typing import Any

__all__ = ["job_page", "scheduled_job", "stack_body"]


def scheduled_job(i: int) -> dict[str, Any]:
    return {
        "id": f"job-{i}",
        "priority": i % 3,
        "agent_query_rules": ["queue=default", "os=linux"],
        "scheduled_at": "2026-01-02T03:04:05Z",
        "pipeline": {"slug": "p", "uuid": "pu"},
        "build": {"uuid": "bu", "number": i, "branch": "main"},
        "step": {"key": None},
    }


def job_page(
    n: int,
    *,
    start: int = 0,
    has_next: bool = False,
    cursor: str | None = None,
    paused_field: str = "dispatch_paused",
    paused: bool = False,
) -> dict[str, Any]:
    return {
        "jobs": [scheduled_job(start + i) for i in range(n)],
        "page_info": {"has_next_page": has_next, "end_cursor": cursor},
        "cluster_queue": {"id": "q-1", paused_field: paused},
    }


def stack_body(key: str = "my-stack") -> dict[str, Any]:
    return {
        "id": "s-1",
        "organization_uuid": "o-1",
        "key": key,
        "type": "custom",
        "cluster_queue_key": "__default__",
        "metadata": {"version": "1.0"},
        "last_connected_on": None,
        "state": "connected",
        "some_future_field": {"ignored": True},
    }
