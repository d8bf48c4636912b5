"""A local emulator of Buildkite's Stacks API: state, ASGI app, server, pytest fixtures.

``Emulator`` holds the state and the Python driving methods; ``create_app`` serves it as an ASGI
app (starlette); ``EmulatorServer`` runs that app with uvicorn in a background thread. Names are
imported on first use, so ``import stacksapi.emulator`` stays cheap and needs no extras until a
server is wanted. Without the ``emulator`` extra (starlette, uvicorn), ``Emulator`` still works and
the server parts raise one ``ModuleNotFoundError`` line naming the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from stacksapi._extras import missing_extra

if TYPE_CHECKING:
    from ._app import create_app
    from ._clock import Clock, ManualClock, SystemClock
    from ._faults import ConnectionDroppedError, FaultConfig, FaultRates, parse_fault_spec
    from ._jobs import (
        FinishRecord,
        JobInfo,
        JobSpec,
        NotificationRecord,
        ReservationRecord,
        TokenRecord,
        Transition,
        mask_token,
    )
    from ._reply import EmulatorError
    from ._serve import ServeInfo, sample_jobs, serve
    from ._server import EmulatorServer
    from ._state import Emulator, QueueInfo

__all__ = [
    "Clock",
    "ConnectionDroppedError",
    "Emulator",
    "EmulatorError",
    "EmulatorServer",
    "FaultConfig",
    "FaultRates",
    "FinishRecord",
    "JobInfo",
    "JobSpec",
    "ManualClock",
    "NotificationRecord",
    "QueueInfo",
    "ReservationRecord",
    "ServeInfo",
    "SystemClock",
    "TokenRecord",
    "Transition",
    "create_app",
    "mask_token",
    "parse_fault_spec",
    "sample_jobs",
    "serve",
]

_WHERE = {
    "Clock": "._clock",
    "ManualClock": "._clock",
    "SystemClock": "._clock",
    "Emulator": "._state",
    "QueueInfo": "._state",
    "EmulatorError": "._reply",
    "EmulatorServer": "._server",
    "create_app": "._app",
    "FinishRecord": "._jobs",
    "JobInfo": "._jobs",
    "JobSpec": "._jobs",
    "NotificationRecord": "._jobs",
    "ReservationRecord": "._jobs",
    "TokenRecord": "._jobs",
    "Transition": "._jobs",
    "mask_token": "._jobs",
    "ConnectionDroppedError": "._faults",
    "FaultConfig": "._faults",
    "FaultRates": "._faults",
    "parse_fault_spec": "._faults",
    "ServeInfo": "._serve",
    "sample_jobs": "._serve",
    "serve": "._serve",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module, __name__), name)
    except ModuleNotFoundError as exc:
        # Only the state (Emulator, JobSpec, clocks...) works without the extra's server parts.
        error = missing_extra(exc, f"stacksapi.emulator.{name}", ("emulator",))
        if error is None:
            raise
        raise error from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
