"""The dashboard's Jinja2 environment: templates shipped in the package, autoescaped, and the
few filters they use (times in UTC, short job ids, state colours)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import jinja2

__all__ = ["render"]

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("stacksapi.emulator.dashboard", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: float | _dt.datetime | None, precise: bool = False) -> str:
    """``HH:MM:SS`` (``.mmm`` when precise) in UTC; an em dash for never."""
    if value is None:
        return "—"
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime.fromtimestamp(value, _dt.UTC)
    text = value.astimezone(_dt.UTC).strftime("%H:%M:%S.%f" if precise else "%H:%M:%S")
    return text[:-3] if precise else text


def _iso(value: float | _dt.datetime | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime.fromtimestamp(value, _dt.UTC)
    return value.astimezone(_dt.UTC).isoformat(timespec="milliseconds")


def _short(job_id: str) -> str:
    return job_id[:8]


_TONES = {
    "finished": "ok",
    "running": "info",
    "accepted": "info",
    "reserved": "warn",
    "canceling": "warn",
    "scheduled": "muted",
    "connected": "ok",
}


def _tone(state: str) -> str:
    return _TONES.get(state, "bad" if state in ("expired", "timed_out", "broken") else "muted")


_ENV.filters.update(when=_when, iso=_iso, short=_short, tone=_tone)


def render(template: str, **context: Any) -> str:
    """Render one template of the package with ``context``."""
    return _ENV.get_template(template).render(**context)
