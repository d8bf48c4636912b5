"""The Stacks API's endpoints as data: name, method, path template, rate-limit scope and limit.

One table read by the client (paths, log names), the emulator (routing, rate limits, counters,
fault injection) and the stack runtime (staying under the limits). No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

__all__ = ["ENDPOINTS", "Endpoint", "escape_path_segment", "match_endpoint"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of the Stacks API.

    ``path`` is relative to the ``/v3/`` base and holds ``{key}`` / ``{uuid}`` placeholders.
    ``scope`` and ``per_second`` are the documented rate limit (per stack, 1 s sliding window).
    """

    name: str
    method: str
    path: str
    scope: str
    per_second: int

    @property
    def pattern(self) -> re.Pattern[str]:
        return _PATTERNS[self.name]


ENDPOINTS: dict[str, Endpoint] = {
    e.name: e
    for e in (
        Endpoint("register_stack", "POST", "stacks/register", "default", 10),
        Endpoint("deregister_stack", "POST", "stacks/{key}/deregister", "default", 10),
        Endpoint(
            "list_scheduled_jobs",
            "GET",
            "stacks/{key}/scheduled-jobs",
            "list-scheduled-jobs",
            10,
        ),
        Endpoint(
            "batch_reserve_jobs",
            "PUT",
            "stacks/{key}/scheduled-jobs/batch-reserve",
            "batch-reserve",
            10,
        ),
        Endpoint("get_job", "GET", "stacks/{key}/jobs/{uuid}", "show-job", 1000),
        Endpoint(
            "get_job_states",
            "POST",
            "stacks/{key}/jobs/get-states",
            "batch-load-job-states",
            20,
        ),
        Endpoint("finish_job", "POST", "stacks/{key}/jobs/{uuid}/finish", "finish-job", 100),
        Endpoint(
            "create_stack_notifications",
            "POST",
            "stacks/{key}/notifications",
            "stack-notification",
            200,
        ),
        Endpoint(
            "issue_job_acquisition_tokens",
            "POST",
            "stacks/{key}/job-acquisition-tokens",
            "default",
            10,
        ),
        Endpoint("get_token", "GET", "token", "default", 10),
    )
}
"""Every endpoint, by the client method name that calls it."""

# A segment is anything but "/" (dots and escapes included; the caller decodes it).
_PATTERNS: dict[str, re.Pattern[str]] = {
    e.name: re.compile(
        "^"
        + re.escape(e.path)
        .replace(r"\{key\}", "(?P<key>[^/]+)")
        .replace(r"\{uuid\}", "(?P<uuid>[^/]+)")
        + "$"
    )
    for e in ENDPOINTS.values()
}


def escape_path_segment(value: str) -> str:
    """Percent-escape one path segment; ``.`` becomes ``%2E`` (Rails treats dots as formats)."""
    return quote(value, safe="").replace(".", "%2E")


def match_endpoint(method: str, path: str) -> tuple[Endpoint, dict[str, str]] | None:
    """Find the endpoint for ``method`` and a path relative to ``/v3/`` (raw, still escaped).

    Returns the endpoint and its decoded path parameters, or ``None``. ``jobs/get-states`` wins
    over ``jobs/{uuid}`` because the table is checked method first and the fixed path matches.
    """
    path = path.strip("/")
    found: tuple[Endpoint, dict[str, str]] | None = None
    for endpoint in ENDPOINTS.values():
        if endpoint.method != method:
            continue
        m = endpoint.pattern.match(path)
        if m is None:
            continue
        params = {k: unquote(v) for k, v in m.groupdict().items()}
        if "{" not in endpoint.path:
            return endpoint, params  # a fixed path beats any template
        if found is None:
            found = (endpoint, params)
    return found
