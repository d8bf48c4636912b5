"""The admin HTTP API under ``/_emulator/``: Buildkite's side of the emulator, over HTTP.

Each route mirrors a Python method of :class:`Emulator` and is protected by the emulator's admin
token (``Authorization: Token <admin token>``), never a cluster token. JSON in and out; errors
are ``{"message": ...}`` like the Stacks API.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._clock import ManualClock, to_datetime
from ._faults import FaultConfig
from ._http import decode_body, read_body, request_token
from ._jobs import JobSpec
from ._reply import EmulatorError, encode
from ._state import Emulator

__all__ = [
    "AdvanceClockRequest",
    "BulkJobsRequest",
    "CreateQueueRequest",
    "FaultsRequest",
    "SetStateRequest",
    "admin_routes",
    "advance_clock",
    "faults_view",
    "switch_faults",
]

log = logging.getLogger("stacksapi.emulator")

MAX_ADMIN_BODY_BYTES = 256 * 1024 * 1024


class BulkJobsRequest(msgspec.Struct, kw_only=True, frozen=True):
    """``jobs``: specs to create; or ``count`` copies of ``spec``."""

    jobs: list[JobSpec] | None = None
    count: int | None = None
    spec: JobSpec | None = None


class CreateQueueRequest(msgspec.Struct, kw_only=True, frozen=True):
    key: str


class SetStateRequest(msgspec.Struct, kw_only=True, frozen=True):
    state: str


class AdvanceClockRequest(msgspec.Struct, kw_only=True, frozen=True):
    seconds: float


class FaultsRequest(msgspec.Struct, kw_only=True, frozen=True):
    enabled: bool


Op = Callable[[Emulator, Request], Awaitable[tuple[int, Any]]]


def _wrap(em: Emulator, op: Op) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        try:
            token = request_token(request)
            if token is None or not em.is_admin_token(token):
                raise EmulatorError(401, "admin API: missing or invalid admin token")
            if request.method in ("POST", "PUT"):
                # An admin call without a body means "no options": the same as {}.
                request.state.body = await read_body(request, MAX_ADMIN_BODY_BYTES) or b"{}"
            status, payload = await op(em, request)
        except EmulatorError as exc:
            return Response(exc.body(), status_code=exc.status, media_type="application/json")
        except ClientDisconnect:  # the client went away mid-body: not an emulator error
            return Response(status_code=499)
        except Exception:
            log.exception("emulator admin error")
            body = encode({"message": "internal emulator error"})
            return Response(body, status_code=500, media_type="application/json")
        if status == 204:
            return Response(status_code=204)
        return Response(encode(payload), status_code=status, media_type="application/json")

    return handler


async def _overview(em: Emulator, request: Request) -> tuple[int, Any]:
    with em.lock:
        return 200, {
            "jobs": len(em.jobs),
            "queues": em.list_queues(),
            "stacks": em.list_stacks(),
            "now": to_datetime(em.now()),
            "rate_limits": em.rate_limits_enabled,
        }


async def _create_job(em: Emulator, request: Request) -> tuple[int, Any]:
    spec = decode_body(request.state.body, JobSpec)
    return 201, {"id": em.create_job(spec)}


async def _create_jobs(em: Emulator, request: Request) -> tuple[int, Any]:
    bulk: BulkJobsRequest = decode_body(request.state.body, BulkJobsRequest)
    if bulk.jobs is not None:
        return 201, {"ids": em.create_jobs(bulk.jobs)}
    if bulk.count is None:
        raise EmulatorError(400, "request body: give `jobs` (a list) or `count` (and `spec`)")
    if not 0 <= bulk.count <= 1_000_000:
        raise EmulatorError(422, "count: must be between 0 and 1000000")
    return 201, {"ids": em.create_jobs(bulk.count, bulk.spec)}


async def _list_jobs(em: Emulator, request: Request) -> tuple[int, Any]:
    q = request.query_params
    limit = q.get("limit")
    try:
        size = None if limit is None else int(limit)
    except ValueError:
        raise EmulatorError(400, "limit: must be an integer") from None
    jobs = em.list_jobs(queue=q.get("queue"), state=q.get("state"), limit=size)
    return 200, {"jobs": jobs}


async def _job(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, em.job(request.path_params["job_id"])


async def _cancel(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, {"state": em.cancel_job(request.path_params["job_id"])}


async def _set_state(em: Emulator, request: Request) -> tuple[int, Any]:
    req: SetStateRequest = decode_body(request.state.body, SetStateRequest)
    return 200, {"state": em.set_job_state(request.path_params["job_id"], req.state)}


async def _queues(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, {"queues": em.list_queues()}


async def _queue(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, em.queue(request.path_params["key"])


async def _create_queue(em: Emulator, request: Request) -> tuple[int, Any]:
    req: CreateQueueRequest = decode_body(request.state.body, CreateQueueRequest)
    return 201, em.create_queue(req.key)


async def _pause(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, em.pause_queue(request.path_params["key"])


async def _resume(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, em.resume_queue(request.path_params["key"])


async def _stacks(em: Emulator, request: Request) -> tuple[int, Any]:
    return 200, {"stacks": em.list_stacks()}


async def _counters(em: Emulator, request: Request) -> tuple[int, Any]:
    counts = em.counters()
    return 200, {
        "counters": {name: {str(s): n for s, n in per.items()} for name, per in counts.items()}
    }


async def _reset(em: Emulator, request: Request) -> tuple[int, Any]:
    em.reset()
    return 204, None


def advance_clock(em: Emulator, seconds: float) -> _dt.datetime:
    """Move a manual clock forward (409 on the system clock, 422 for a bad amount); the new now."""
    if not isinstance(em.clock, ManualClock):
        raise EmulatorError(409, "clock: this emulator runs on the system clock")
    if not seconds >= 0:  # NaN too
        raise EmulatorError(422, "seconds: must be >= 0")
    try:
        to_datetime(em.clock.now() + seconds)
    except (OverflowError, ValueError, OSError):
        # Past year 9999 no time can be written any more: every later response would be a 500.
        raise EmulatorError(422, "seconds: would move the clock past year 9999") from None
    return to_datetime(em.clock.advance(seconds))


async def _advance(em: Emulator, request: Request) -> tuple[int, Any]:
    req: AdvanceClockRequest = decode_body(request.state.body, AdvanceClockRequest)
    return 200, {"now": advance_clock(em, req.seconds)}


def faults_view(faults: FaultConfig | None) -> dict[str, Any]:
    """Fault injection as the admin API shows it: configured, enabled, spec, injected so far."""
    if faults is None:
        return {"configured": False, "enabled": False, "spec": None, "injected": {}}
    return {
        "configured": True,
        "enabled": faults.enabled,
        "spec": faults.spec(),
        "injected": faults.totals(),
    }


def switch_faults(faults: FaultConfig | None, enabled: bool) -> dict[str, Any]:
    """Turn fault injection on or off (409 when the emulator was started without any)."""
    if faults is None:
        raise EmulatorError(
            409, "faults: this emulator was started without fault injection (serve --faults SPEC)"
        )
    faults.enabled = enabled
    log.info("emulator fault injection switched %s", "on" if enabled else "off")
    return faults_view(faults)


def admin_routes(em: Emulator, faults: FaultConfig | None = None) -> list[BaseRoute]:
    """The routes mounted at ``/_emulator``; ``faults`` is the injection the app runs with."""

    def route(path: str, op: Op, method: str) -> Route:
        return Route(path, _wrap(em, op), methods=[method])

    async def get_faults(em: Emulator, request: Request) -> tuple[int, Any]:
        return 200, faults_view(faults)

    async def set_faults(em: Emulator, request: Request) -> tuple[int, Any]:
        req: FaultsRequest = decode_body(request.state.body, FaultsRequest)
        return 200, switch_faults(faults, req.enabled)

    return [
        route("/", _overview, "GET"),
        route("/jobs", _create_job, "POST"),
        route("/jobs", _list_jobs, "GET"),
        route("/jobs/bulk", _create_jobs, "POST"),
        route("/jobs/{job_id}", _job, "GET"),
        route("/jobs/{job_id}/cancel", _cancel, "POST"),
        route("/jobs/{job_id}/state", _set_state, "POST"),
        route("/queues", _queues, "GET"),
        route("/queues", _create_queue, "POST"),
        route("/queues/{key}", _queue, "GET"),
        route("/queues/{key}/pause", _pause, "POST"),
        route("/queues/{key}/resume", _resume, "POST"),
        route("/stacks", _stacks, "GET"),
        route("/counters", _counters, "GET"),
        route("/reset", _reset, "POST"),
        route("/clock/advance", _advance, "POST"),
        route("/faults", get_faults, "GET"),
        route("/faults", set_faults, "POST"),
    ]
