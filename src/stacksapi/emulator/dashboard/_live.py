"""Server-sent events: one page's live parts, re-rendered at a steady cadence, sent on change.

Each tick builds the payload (under the emulator's lock for the snapshot part), sends it only
when it differs from the last one, and otherwise a keep-alive comment now and then. The cadence
does not drift with the cost of an update; the stream ends when the session ends (telling the
page to log in again) or when the server shuts down.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.responses import StreamingResponse

from stacksapi.emulator._reply import EmulatorError

__all__ = ["event_stream"]

log = logging.getLogger("stacksapi.emulator")

KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000


async def _updates(
    build: Callable[[], dict[str, Any]],
    *,
    interval: float,
    logged_in: Callable[[], bool],
    closing: Callable[[], bool],
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    last = ""
    quiet = 0.0
    tick = time.monotonic()
    while not closing() and logged_in():
        try:
            payload = json.dumps(build())
        except EmulatorError as exc:  # the job went away, ...: say so, keep the stream
            payload = json.dumps({"error": exc.message})
        except Exception:  # a bug here must not end every viewer's stream silently
            log.exception("dashboard: cannot render an update")
            payload = json.dumps({"error": "internal dashboard error (see the log)"})
        if payload != last:
            yield f"event: update\ndata: {payload}\n\n"
            last, quiet = payload, 0.0
        elif quiet >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet = 0.0
        tick += interval  # a steady cadence, whatever an update cost
        await anyio.sleep(max(0.0, tick - time.monotonic()))
        tick = max(tick, time.monotonic() - interval)  # never a burst to catch up
        quiet += interval
    if not closing():
        yield "event: logout\ndata: {}\n\n"


def event_stream(
    build: Callable[[], dict[str, Any]],
    *,
    interval: float,
    logged_in: Callable[[], bool],
    closing: Callable[[], bool],
) -> StreamingResponse:
    """A ``text/event-stream`` response of ``update`` events carrying ``build()`` as JSON."""
    updates = _updates(build, interval=interval, logged_in=logged_in, closing=closing)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(updates, media_type="text/event-stream", headers=headers)
