"""The dashboard's routes: the page at ``/``, a job's page, their live streams, login, actions.

:class:`Dashboard` owns its login state and is handed the emulator (and its fault injection); it
reads the emulator's own state on every render and every tick of a stream, never a copy. Pages
are rendered on the server; the streams (server-sent events) carry the same fragments re-rendered,
sent at a steady interval and only when something changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from stacksapi.emulator._clock import ManualClock
from stacksapi.emulator._faults import FaultConfig
from stacksapi.emulator._http import read_body
from stacksapi.emulator._reply import EmulatorError
from stacksapi.emulator._state import Emulator

from ._actions import ACTIONS, MAX_FORM_BYTES, Action, ActionContext, parse_form
from ._auth import LOGIN_PARAM, DashboardAuth, Session, own_origin, same_origin
from ._live import event_stream
from ._render import render
from ._snapshot import CANCELLABLE, STATE_ORDER, JobFilter, take_snapshot
from ._timeline import timeline

__all__ = ["Dashboard"]

log = logging.getLogger("stacksapi.emulator")

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
_FRAGMENTS = ("queues", "jobs", "stacks", "status", "controls")
SHORT_ID_MIN = 4
"""The fewest characters of a uuid that open a job page (a longer prefix must be unique)."""


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _safe_next(target: str) -> str:
    """Only a path of this server to go back to after a form (no ``//elsewhere``)."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


class Dashboard:
    """The emulator's dashboard; ``interval`` is the seconds between two stream ticks."""

    def __init__(
        self, emulator: Emulator, *, faults: FaultConfig | None = None, interval: float = 0.5
    ) -> None:
        self.emulator = emulator
        self.faults = faults
        self.interval = interval
        self.auth = DashboardAuth(emulator.is_admin_token)
        self.closing = threading.Event()
        """Set while the server shuts down: open streams end so shutdown need not cut them."""

    def login_path(self) -> str:
        """``/?login=CODE``: a new one-time login (append it to the server's address)."""
        return f"/?{LOGIN_PARAM}={self.auth.mint_login()}"

    # --- rendering -------------------------------------------------------------------------------

    def _fragments(self, wanted: JobFilter, session: Session | None) -> dict[str, Any]:
        """The main page's live parts: HTML fragments by element id, and datalist values."""
        snap = take_snapshot(self.emulator, wanted)
        context = {
            "snap": snap,
            "csrf": session.csrf if session is not None else "",
            "faults": self.faults,
            "manual_clock": isinstance(self.emulator.clock, ManualClock),
            "states": STATE_ORDER,
        }
        html = {name: render(f"_{name}.html", **context) for name in _FRAGMENTS}
        lists = {
            "pipelines": list(snap.pipelines),
            "stack-keys": sorted({s.key for s in snap.stacks}),
            "queue-keys": [q.key for q in snap.queues],
        }
        return {"html": html, "lists": lists}

    def _job_fragments(self, job_id: str, session: Session | None) -> dict[str, Any]:
        info = self.emulator.job(job_id)
        html = render(
            "_job.html",
            job=info,
            entries=timeline(info),
            csrf=session.csrf if session is not None else "",
            cancellable=info.state in CANCELLABLE,
        )
        return {"html": {"job": html}, "lists": {}}

    def _login_page(self, message: str = "", status: int = 401) -> HTMLResponse:
        return _page(render("login.html", message=message), status)

    # --- pages -----------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        """``/``: redeems a ``?login=`` code, else the page for a session, else the login form."""
        code = request.query_params.get(LOGIN_PARAM)
        if code is not None:
            session_id = self.auth.redeem(code)
            if session_id is None and self.auth.session(request) is not None:
                return RedirectResponse("/", status_code=303, headers=_HEADERS)  # logged in
            if session_id is None:
                return self._login_page(
                    "This login link was already used or has expired. Enter the admin token."
                )
            response = RedirectResponse("/", status_code=303, headers=_HEADERS)
            self.auth.set_cookie(response, request, session_id)
            return response
        session = self.auth.session(request)
        if session is None:
            return self._login_page()
        wanted = JobFilter.from_query(dict(request.query_params))
        html = render(
            "index.html",
            cluster=self.emulator.cluster_name,
            filter=wanted,
            csrf=session.csrf,
            fragments=self._fragments(wanted, session),
            states=STATE_ORDER,
            queues=list(self.emulator.queues),
            default_queue=self.emulator.default_queue,
        )
        return _page(html)

    async def job_page(self, request: Request) -> Response:
        """A job's timeline, the stack's notifications and the agent's log (live by its stream)."""
        session = self.auth.session(request)
        if session is None:
            return self._login_page()
        job_id = request.path_params["job_id"]
        try:
            fragments = self._job_fragments(job_id, session)
        except EmulatorError as exc:
            matches = self._jobs_starting_with(job_id)
            if len(matches) == 1:
                return RedirectResponse(f"/dashboard/jobs/{matches[0]}", 303, headers=_HEADERS)
            message = exc.message
            if matches:
                shown = ", ".join(m[:13] + "…" for m in matches[:5])
                message = f"{len(matches)} jobs start with {job_id!r} ({shown}): give more of it"
            return _page(render("missing.html", message=message), exc.status)
        return _page(render("job.html", job_id=job_id, fragments=fragments, csrf=session.csrf))

    def _jobs_starting_with(self, prefix: str) -> list[str]:
        """Jobs whose uuid starts with ``prefix`` (4 characters at least), like git's short ids."""
        if len(prefix) < SHORT_ID_MIN:
            return []
        with self.emulator.lock:
            return [job_id for job_id in self.emulator.jobs if job_id.startswith(prefix.lower())]

    async def static(self, request: Request) -> Response:
        """The stylesheet and the script shipped in the package (no other file is served)."""
        name = request.path_params["name"]
        media_type = _STATIC.get(name)
        if media_type is None:
            return Response("not found", status_code=404, media_type="text/plain")
        content = resources.files(__package__).joinpath("static", name).read_bytes()
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(content, media_type=media_type, headers=headers)

    # --- login -----------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        """The login form: the admin token starts a session (from this origin only)."""
        try:
            form = parse_form(await read_body(request, MAX_FORM_BYTES))
        except EmulatorError as exc:
            return self._login_page(exc.message, exc.status)
        if not same_origin(request):
            return self._login_page("Cross-origin login refused.", 403)
        session_id = self.auth.login_with_token(form.get("token", "").strip())
        if session_id is None:
            return self._login_page("That is not this emulator's admin token.")
        response = RedirectResponse("/", status_code=303, headers=_HEADERS)
        self.auth.set_cookie(response, request, session_id)
        return response

    async def _guarded_form(self, request: Request) -> dict[str, str]:
        """The form of a state-changing request that may act; else ``EmulatorError``: 400/413
        for a bad body, 401 without a session, 403 from another origin or without the token."""
        form = parse_form(await read_body(request, MAX_FORM_BYTES))
        refused = self.auth.refuse_post(request, form)
        if refused is not None:
            status = 401 if self.auth.session(request) is None else 403
            log.warning("dashboard refused %s %s: %s", request.method, request.url.path, refused)
            raise EmulatorError(status, refused)
        return form

    async def logout(self, request: Request) -> Response:
        """Ends the session; guarded like an action, so another page cannot log a visitor out."""
        try:
            await self._guarded_form(request)
        except EmulatorError as exc:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        response = RedirectResponse("/", status_code=303, headers=_HEADERS)
        self.auth.logout(request, response)
        return response

    async def login_link(self, request: Request) -> Response:
        """A new one-time login, for another browser or a phone; guarded like an action.

        Without it, a person whose printed link was used would have to restart ``serve`` with
        ``--show-admin-token`` (losing the emulator's state) to log in a second browser.
        """
        try:
            await self._guarded_form(request)
        except EmulatorError as exc:
            return JSONResponse({"message": exc.message}, status_code=exc.status)
        link = own_origin(request) + self.login_path()
        message = f"Open this in another browser or on a phone (it logs in once): {link}"
        return JSONResponse({"message": message, "link": link}, headers=_HEADERS)

    # --- actions ---------------------------------------------------------------------------------

    def _action(self, action: Action) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            wants_json = "application/json" in request.headers.get("accept", "")
            try:
                form = await self._guarded_form(request)
                message = action(
                    ActionContext(self.emulator, self.faults, form, request.path_params)
                )
            except EmulatorError as exc:
                return JSONResponse({"message": exc.message}, status_code=exc.status)
            if wants_json:
                return JSONResponse({"message": message})
            return RedirectResponse(_safe_next(form.get("next", "/")), status_code=303)

        return handler

    # --- live streams ----------------------------------------------------------------------------

    def _stream(self, request: Request, build: Callable[[], dict[str, Any]]) -> Response:
        if self.auth.session(request) is None:
            return JSONResponse({"message": "not logged in"}, status_code=401)
        return event_stream(
            build,
            interval=self.interval,
            logged_in=lambda: self.auth.session(request) is not None,
            closing=self.closing.is_set,
        )

    async def events(self, request: Request) -> Response:
        """The main page's stream: its fragments for the filter in the query string."""
        wanted = JobFilter.from_query(dict(request.query_params))
        session = self.auth.session(request)
        return self._stream(request, lambda: self._fragments(wanted, session))

    async def job_events(self, request: Request) -> Response:
        """A job page's stream: the job's fragment as it moves."""
        job_id = request.path_params["job_id"]
        session = self.auth.session(request)
        return self._stream(request, lambda: self._job_fragments(job_id, session))

    # --- routing ---------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The dashboard's routes: ``/`` and everything under ``/dashboard/``."""
        routes: list[BaseRoute] = [
            Route("/", self.index, methods=["GET"]),
            Route("/dashboard/login", self.login, methods=["POST"]),
            Route("/dashboard/logout", self.logout, methods=["POST"]),
            Route("/dashboard/login-link", self.login_link, methods=["POST"]),
            Route("/dashboard/events", self.events, methods=["GET"]),
            Route("/dashboard/jobs/{job_id}", self.job_page, methods=["GET"]),
            Route("/dashboard/jobs/{job_id}/events", self.job_events, methods=["GET"]),
            Route("/dashboard/static/{name}", self.static, methods=["GET"]),
        ]
        routes += [
            Route(path, self._action(action), methods=["POST"]) for path, action in ACTIONS.values()
        ]
        return routes
