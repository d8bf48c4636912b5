"""The ASGI app (starlette): Stacks API and agent routes in ``/v3/``, admin in ``/_emulator/``.

Routing of the Stacks API goes through the shared endpoint table (``match_endpoint``), so the
emulator answers exactly the paths the clients build. Each response is counted per endpoint and
status; Stacks API responses carry ``RateLimit-*`` headers. Nothing reaches a client as a 500
or a dropped connection because of what the client sent.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Sequence
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from stacksapi._endpoints import Endpoint, match_endpoint
from stacksapi._models import (
    JobUUIDsRequest,
    NotificationsRequest,
    RegisterStackRequest,
    ReserveJobsRequest,
    TokensRequest,
)

from . import _agentapi as agentapi
from . import _api as api
from ._admin import admin_routes
from ._faults import FaultConfig
from ._http import MAX_BODY_BYTES, decode_body, read_body, request_token
from ._ratelimit import RateDecision
from ._reply import EmulatorError, encode
from ._state import Emulator
from .dashboard import Dashboard

__all__ = ["MAX_BODY_BYTES", "create_app", "read_body", "request_token"]

log = logging.getLogger("stacksapi.emulator")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_AGENT_ROUTE = re.compile(r"^jobs/(?P<uuid>[^/]+)/(?P<action>acquire|start|log|state|finish)$")
_AGENT_METHODS = {"acquire": "POST", "start": "PUT", "log": "POST", "state": "GET", "finish": "PUT"}
JSON = "application/json"
CLIENT_CLOSED = 499
"""Counted (never sent) when a client disconnects before its request body arrived."""


def _json(status: int, content: bytes, headers: dict[str, str] | None = None) -> Response:
    if status == 204:
        return Response(status_code=204, headers=headers)
    return Response(content, status_code=status, headers=headers, media_type=JSON)


class _Api:
    """Handlers of ``/v3/...``: the Stacks API (by the endpoint table) and the agent routes."""

    def __init__(self, emulator: Emulator) -> None:
        self.em = emulator

    async def handle(self, request: Request) -> Response:
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        rel = raw.split(b"?", 1)[0].decode("latin-1")
        rel = rel[rel.find("/v3/") + 4 :] if "/v3/" in rel else ""
        agent = _AGENT_ROUTE.match(rel)
        if agent is not None and request.method == _AGENT_METHODS[agent["action"]]:
            return await self._guard(f"agent_{agent['action']}", self._agent(request, agent))
        found = match_endpoint(request.method, rel)
        if found is None:
            self.em.record_response("unknown", 404)
            message = f"no such endpoint: {request.method} /v3/{rel}"
            return _json(404, encode({"message": message}))
        endpoint, params = found
        return await self._guard(endpoint.name, self._stacks(request, endpoint, params))

    async def _guard(
        self, name: str, work: Awaitable[tuple[int, bytes, dict[str, str]]]
    ) -> Response:
        try:
            status, content, headers = await work
        except EmulatorError as exc:
            status, content, headers = exc.status, exc.body(), exc.headers
        except ClientDisconnect:  # the client went away mid-body: not our error, nobody to answer
            status, content, headers = CLIENT_CLOSED, b"", {}
        except Exception:
            log.exception("emulator error in %s", name)
            status, content, headers = 500, encode({"message": "internal emulator error"}), {}
        self.em.record_response(name, status)
        return _json(status, content, headers)

    async def _stacks(
        self, request: Request, endpoint: Endpoint, params: dict[str, str]
    ) -> tuple[int, bytes, dict[str, str]]:
        em = self.em
        key = params.get("key", "")
        token = request_token(request)
        if token is None or not em.is_cluster_token(token):
            decision = em.rate(key, endpoint.scope, count=False)
            message = "missing Authorization: Token header" if token is None else "invalid token"
            raise _with_headers(EmulatorError(401, message), decision)
        register: RegisterStackRequest | None = None
        try:
            body = await read_body(request) if request.method in ("POST", "PUT") else b""
            if endpoint.name == "register_stack":
                register = decode_body(body, RegisterStackRequest)
                key = register.key
        except EmulatorError as exc:  # 400/413 before the window is known: headers all the same
            raise _with_headers(exc, em.rate(key, endpoint.scope, count=False)) from None
        if endpoint.name == "get_token":
            key = "token " + em.token_info_id(token)  # no stack: one window per token
        decision = em.rate(key, endpoint.scope)
        if endpoint.name != "get_token":
            em.count_stack_call(key, limited=decision is not None and not decision.allowed)
        if decision is not None and not decision.allowed:
            raise _with_headers(_too_many(decision), decision)
        headers = decision.headers() if decision is not None else {}
        try:
            status, content = self._run(
                request,
                name=endpoint.name,
                key=key,
                params=params,
                body=body,
                register=register,
                token=token,
            )
        except EmulatorError as exc:
            raise _with_headers(exc, decision) from None
        return status, content, headers

    def _run(
        self,
        request: Request,
        *,
        name: str,
        key: str,
        params: dict[str, str],
        body: bytes,
        register: RegisterStackRequest | None,
        token: str,
    ) -> tuple[int, bytes]:
        em = self.em
        if register is not None:
            status, stack = api.register_stack(em, register)
            return status, encode(stack)
        if name == "list_scheduled_jobs":
            q = request.query_params
            return 200, api.list_scheduled_jobs(
                em, key, q.get("queue_key"), q.get("limit"), q.get("after")
            )
        if name == "get_job":
            return 200, encode(api.get_job(em, key, params["uuid"]))
        if name == "deregister_stack":
            api.deregister_stack(em, key)
            return 204, b""
        if name == "batch_reserve_jobs":
            reserve = decode_body(body, ReserveJobsRequest)
            return 200, encode(api.reserve_jobs(em, key, reserve))
        if name == "get_job_states":
            return 200, encode(api.get_job_states(em, key, decode_body(body, JobUUIDsRequest)))
        if name == "finish_job":
            finish = decode_body(body, api.FinishBody)
            api.finish_job(em, key, params["uuid"], finish)
            return 200, b"{}"
        if name == "create_stack_notifications":
            notes = decode_body(body, NotificationsRequest)
            return 200, encode(api.notify(em, key, notes))
        if name == "issue_job_acquisition_tokens":
            tokens = decode_body(body, TokensRequest)
            return 201, encode(api.issue_tokens(em, key, tokens))
        if name == "get_token":
            return 200, encode(api.get_token(em, token))
        raise EmulatorError(404, f"endpoint {name} is not emulated")

    async def _agent(
        self, request: Request, match: re.Match[str]
    ) -> tuple[int, bytes, dict[str, str]]:
        em = self.em
        job_id = unquote(match["uuid"])
        action = match["action"]
        token = request_token(request)
        if token is None:
            raise EmulatorError(401, "missing Authorization: Token header")
        body = await read_body(request) if request.method in ("POST", "PUT") else b""
        if action == "acquire":
            return 200, encode(agentapi.acquire(em, job_id, token)), {}
        if action == "start":
            return 200, encode(agentapi.agent_start(em, job_id, token)), {}
        if action == "state":
            return 200, encode(agentapi.agent_state(em, job_id, token)), {}
        if action == "log":
            chunk = decode_body(body, agentapi.AgentLogRequest)
            agentapi.agent_log(em, job_id, token, chunk)
            return 200, b"{}", {}
        finish = decode_body(body, agentapi.AgentFinishRequest)
        return 200, encode(agentapi.agent_finish(em, job_id, token, finish)), {}


def _too_many(decision: RateDecision) -> EmulatorError:
    return EmulatorError(
        429,
        f"rate limit exceeded for scope {decision.scope}: {decision.limit} requests per second",
        extra={
            "scope": decision.scope,
            "limit": decision.limit,
            "current": decision.current,
            "reset": max(1, round(decision.reset + 0.4999)),
        },
    )


def _with_headers(exc: EmulatorError, decision: RateDecision | None) -> EmulatorError:
    """Attach the ``RateLimit-*`` headers to an error response (kept out of its body)."""
    if decision is not None:
        exc.headers = decision.headers()
    return exc


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (405 for an unrouted method, ...) as JSON like every other."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal emulator error"
    return _json(status, encode({"message": f"{detail}: {request.method} {request.url.path}"}))


async def _not_found(request: Request) -> Response:
    return _json(404, encode({"message": f"no such endpoint: {request.method} {request.url.path}"}))


def _fault_config(middleware: Sequence[Middleware]) -> FaultConfig | None:
    """The fault injection among ``middleware`` (the admin API and dashboard switch it)."""
    for item in middleware:
        config = item.kwargs.get("config")
        if isinstance(config, FaultConfig):  # as FaultConfig.middleware() passes it
            return config
    return None


def create_app(emulator: Emulator, *, middleware: Sequence[Middleware] = ()) -> Starlette:
    """The ASGI app serving ``emulator``; ``middleware`` wraps it (fault injection goes here).

    ``app.state.dashboard`` is the :class:`~.dashboard.Dashboard` served at ``/``.
    """
    faults = _fault_config(middleware)
    dashboard = Dashboard(emulator, faults=faults)
    routes: list[BaseRoute] = [
        Route("/v3/{path:path}", _Api(emulator).handle, methods=_METHODS),
        Mount("/_emulator", routes=admin_routes(emulator, faults)),
        *dashboard.routes(),
        Route("/{path:path}", _not_found, methods=_METHODS),
    ]
    app = Starlette(
        routes=routes,
        middleware=list(middleware),
        exception_handlers={HTTPException: _http_error},
    )
    app.state.emulator = emulator
    app.state.dashboard = dashboard
    return app
