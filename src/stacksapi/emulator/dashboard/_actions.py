"""The dashboard's actions: each one a form of the page, each one the same operation the admin
API performs (the same ``Emulator`` method or the same helper of ``_admin``).

An action takes the decoded form and the path parameters and returns the sentence the page shows;
a refusal is an :class:`EmulatorError` naming the field and the rule, as everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from stacksapi._models import Pipeline
from stacksapi.emulator._admin import advance_clock, switch_faults
from stacksapi.emulator._faults import FaultConfig
from stacksapi.emulator._jobs import JobSpec
from stacksapi.emulator._reply import EmulatorError
from stacksapi.emulator._state import Emulator

__all__ = ["ACTIONS", "Action", "ActionContext", "parse_form"]

MAX_SCHEDULE = 10_000
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action may touch: the emulator, its fault injection, the form, the path."""

    emulator: Emulator
    faults: FaultConfig | None
    form: Mapping[str, str]
    params: Mapping[str, str]


Action = Callable[[ActionContext], str]


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (last value wins); 400 when it is not one."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise EmulatorError(400, "form: not a URL-encoded form") from None
    return dict(pairs)


def _int(form: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = form.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EmulatorError(422, f"{name}: must be a whole number") from None
    if not low <= value <= high:
        raise EmulatorError(422, f"{name}: must be between {low} and {high} (got {value})")
    return value


def schedule(ctx: ActionContext) -> str:
    """Like ``POST /_emulator/jobs/bulk`` with ``count`` and ``spec``."""
    form = ctx.form
    count = _int(form, "count", 1, 1, MAX_SCHEDULE)
    priority = _int(form, "priority", 0, -(2**31), 2**31 - 1)
    queue = form.get("queue", "").strip() or ctx.emulator.default_queue
    command = form.get("command", "").strip() or "echo 'hello from the dashboard'"
    slug = form.get("pipeline", "").strip()
    spec = JobSpec(
        queue=queue,
        priority=priority,
        command=command,
        pipeline=Pipeline(slug=slug) if slug else None,
        env={"BUILDKITE_PIPELINE_SLUG": slug} if slug else {},
    )
    ids = ctx.emulator.create_jobs(count, spec)
    return f"scheduled {len(ids)} job{'s' if len(ids) != 1 else ''} on queue {queue}"


def cancel(ctx: ActionContext) -> str:
    """Like ``POST /_emulator/jobs/{id}/cancel``."""
    job_id = ctx.params["job_id"]
    state = ctx.emulator.cancel_job(job_id)
    return f"job {job_id[:8]} is {state}"


def pause(ctx: ActionContext) -> str:
    """Like ``POST /_emulator/queues/{key}/pause``."""
    key = ctx.params["key"]
    ctx.emulator.pause_queue(key)
    return f"queue {key} paused: stacks see dispatch_paused and reserve nothing"


def resume(ctx: ActionContext) -> str:
    """Like ``POST /_emulator/queues/{key}/resume``."""
    key = ctx.params["key"]
    ctx.emulator.resume_queue(key)
    return f"queue {key} resumed"


def faults(ctx: ActionContext) -> str:
    """Like ``POST /_emulator/faults`` with ``{"enabled": ...}``."""
    wanted = ctx.form.get("enabled", "").lower()
    if wanted not in ("on", "off"):
        raise EmulatorError(422, "enabled: must be on or off")
    view = switch_faults(ctx.faults, wanted == "on")
    return f"fault injection {wanted} ({view['spec']})"


def clock(ctx: ActionContext) -> str:
    """Like ``POST /_emulator/clock/advance``."""
    raw = ctx.form.get("seconds", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        raise EmulatorError(422, "seconds: must be a number") from None
    if not math.isfinite(seconds):
        raise EmulatorError(422, "seconds: must be a finite number")
    now = advance_clock(ctx.emulator, seconds)
    return f"clock advanced {seconds:g} s to {now:%H:%M:%S} UTC"


ACTIONS: dict[str, tuple[str, Action]] = {
    "schedule": ("/dashboard/actions/jobs", schedule),
    "cancel": ("/dashboard/actions/jobs/{job_id}/cancel", cancel),
    "pause": ("/dashboard/actions/queues/{key}/pause", pause),
    "resume": ("/dashboard/actions/queues/{key}/resume", resume),
    "faults": ("/dashboard/actions/faults", faults),
    "clock": ("/dashboard/actions/clock", clock),
}
"""Every action: its path (POST) and what it does."""
