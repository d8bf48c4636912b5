"""Who may see and drive the dashboard: one-time login links, sessions, and the CSRF checks.

The printed address carries a one-time login code; redeeming it (or typing the admin token into
the login form) starts a session held in an ``HttpOnly``, ``SameSite=Strict`` cookie named after
the port, so two emulators on one host do not share it. Every state-changing request must come
from the dashboard's own origin (``Origin``/``Referer``) *and* carry the session's CSRF token: a
page elsewhere, even on another port of the same host, cannot act through the visitor's cookie.
Codes and session ids are kept only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["COOKIE_PREFIX", "LOGIN_PARAM", "DashboardAuth", "Session"]

COOKIE_PREFIX = "stacksapi_dashboard_"
LOGIN_PARAM = "login"
"""The query parameter of the one-time login link: ``http://host:port/?login=CODE``."""

LOGIN_TTL_SECONDS = 24 * 3600.0
MAX_SESSIONS = 256
MAX_PENDING_LOGINS = 64


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: its CSRF token goes into every form the dashboard renders."""

    csrf: str
    started: float


class DashboardAuth:
    """Login codes and sessions of one dashboard; ``is_admin_token`` checks the login form."""

    def __init__(self, is_admin_token: Callable[[str], bool]) -> None:
        self._is_admin_token = is_admin_token
        self._lock = threading.Lock()
        self._codes: OrderedDict[str, float] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    # --- logging in ------------------------------------------------------------------------------

    def mint_login(self) -> str:
        """A new one-time login code (valid once, for a day)."""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[_digest(code)] = time.monotonic() + LOGIN_TTL_SECONDS
            while len(self._codes) > MAX_PENDING_LOGINS:
                self._codes.popitem(last=False)
        return code

    def redeem(self, code: str) -> str | None:
        """A new session id for an unused, unexpired code (which is then spent); else ``None``."""
        with self._lock:
            expiry = self._codes.pop(_digest(code), None)
        if expiry is None or expiry < time.monotonic():
            return None
        return self._start()

    def login_with_token(self, token: str) -> str | None:
        """A new session id when ``token`` is the admin token; else ``None``."""
        if not token or not self._is_admin_token(token):
            return None
        return self._start()

    def _start(self) -> str:
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[_digest(session_id)] = Session(
                csrf=secrets.token_urlsafe(24), started=time.time()
            )
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session_id

    # --- sessions --------------------------------------------------------------------------------

    @staticmethod
    def cookie_name(request: Request) -> str:
        """Cookies are per host, not per port: the name carries the port."""
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        return f"{COOKIE_PREFIX}{port}"

    def session(self, request: Request) -> Session | None:
        """The session the request's cookie names, if it is live."""
        session_id = request.cookies.get(self.cookie_name(request))
        if not session_id:
            return None
        with self._lock:
            return self._sessions.get(_digest(session_id))

    def set_cookie(self, response: Response, request: Request, session_id: str) -> None:
        response.set_cookie(
            self.cookie_name(request),
            session_id,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    def logout(self, request: Request, response: Response) -> None:
        """End the request's session and clear its cookie."""
        session_id = request.cookies.get(self.cookie_name(request))
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)
        response.delete_cookie(self.cookie_name(request), path="/", samesite="strict")

    # --- cross-site request forgery ---------------------------------------------------------------

    def refuse_post(self, request: Request, form: Mapping[str, str]) -> str | None:
        """Why a state-changing request must be refused (``None`` when it may act).

        It needs a live session, to come from this very origin, and to carry the session's CSRF
        token (form field ``csrf``).
        """
        session = self.session(request)
        if session is None:
            return "not logged in: open the address the emulator printed, or log in"
        if not same_origin(request):
            return "cross-origin request refused"
        sent = form.get("csrf", "")
        if not secrets.compare_digest(sent.encode(), session.csrf.encode()):
            return "missing or stale form token: reload the dashboard"
        return None


def own_origin(request: Request) -> str:
    """``scheme://host:port`` as the browser addressed this server."""
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}".lower()


def same_origin(request: Request) -> bool:
    """True unless ``Origin`` (or, without it, ``Referer``) names another origin than ours.

    Browsers send ``Origin`` on every POST, so a page elsewhere is always caught here; a
    non-browser client sending neither still needs the session cookie and CSRF token.
    """
    expected = own_origin(request)
    origin = request.headers.get("origin")
    if origin is not None:
        return origin.lower() == expected
    referer = request.headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == expected
    return True
