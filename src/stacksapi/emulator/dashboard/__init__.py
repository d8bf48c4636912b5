"""The emulator's dashboard: the Buildkite side of a stack, live in a browser.

Served at ``/`` by every emulator app next to the Stacks API (``/v3/``) and the admin API
(``/_emulator/``), protected like the admin API: a one-time login link, or the admin token.
Server-rendered pages (Jinja2 templates shipped in this package), updated live over server-sent
events by a small script of our own; every action is an admin API operation.
"""

from __future__ import annotations

from ._auth import DashboardAuth
from ._routes import Dashboard

__all__ = ["Dashboard", "DashboardAuth"]
