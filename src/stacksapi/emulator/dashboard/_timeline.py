"""A job's story for the job page: one ordered list of what happened, built from its history.

Transitions, reservations, issued tokens (masked) and the finish record are merged into entries
a person reads top to bottom, the way Buildkite's job page tells it: scheduled, reserved by which
stack until when, token issued, acquired, running, finished with its exit status or the stack's
error. The stack's notifications are shown apart, in the order they arrived.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from dataclasses import dataclass

from stacksapi.emulator._jobs import FinishRecord, JobInfo, ReservationRecord, Transition

__all__ = ["Entry", "timeline"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline; ``tone`` picks its colour (ok, bad, warn, info, muted)."""

    at: _dt.datetime
    title: str
    detail: str = ""
    tone: str = "info"


def _reservation(record: ReservationRecord | None) -> str:
    if record is None:
        return ""
    detail = f"until {record.expires_at:%H:%M:%S}"
    if record.extended:
        detail += f" (extended {record.extended}×)"
    if record.ended_at is not None:
        detail += f"; ended {record.ended_at:%H:%M:%S}: {record.end_reason or 'ended'}"
    return detail


def _finish(finish: FinishRecord | None) -> tuple[str, str]:
    """The finish entry's detail and tone."""
    if finish is None:
        return "", "info"
    parts: list[str] = []
    if finish.exit_status is not None:
        parts.append(f"exit status {finish.exit_status}")
    if finish.by.startswith("stack "):
        parts.append(f"finished by {finish.by}")
    elif finish.by == "agent":
        parts.append("reported by the agent")
    if finish.signal_reason:
        parts.append(f"signal reason {finish.signal_reason}")
    if finish.detail:
        parts.append(f"stack_error: {finish.detail}")
    tone = "ok" if finish.exit_status == 0 else ("muted" if finish.by == "cancel" else "bad")
    return " · ".join(parts), tone


def _transition(
    move: Transition, reservations: Iterator[ReservationRecord], info: JobInfo
) -> Entry:
    to, by = move.to_state, move.by
    if to == "reserved":
        who = by.removeprefix("stack ")
        return Entry(move.at, f"Reserved by stack {who}", _reservation(next(reservations, None)))
    if to == "scheduled":
        return Entry(move.at, "Back on the queue", by, "warn")
    if to == "accepted":
        return Entry(move.at, "Acquired by an agent", "", "info")
    if to == "running":
        return Entry(move.at, "Running", "the agent started the command", "info")
    if to == "canceling":
        return Entry(move.at, "Cancel requested", "waiting for the agent to stop", "warn")
    if to in ("finished", "canceled") and info.finish is not None:
        detail, tone = _finish(info.finish)
        return Entry(move.at, to.capitalize(), detail, tone)
    return Entry(move.at, to.replace("_", " ").capitalize(), f"by {by}", "muted")


def timeline(info: JobInfo) -> list[Entry]:
    """Every event of the job, oldest first (notifications excluded: see ``info.notifications``)."""
    rules = ", ".join(info.agent_query_rules)
    entries = [
        Entry(
            info.scheduled_at,
            f"Scheduled on queue {info.queue}",
            f"priority {info.priority} · {rules}",
        )
    ]
    reservations = iter(info.reservations)
    entries += [_transition(move, reservations, info) for move in info.transitions]
    for token in info.tokens:
        detail = f"{token.token}, valid until {token.expires_at:%H:%M:%S}"
        if token.used_at is not None:
            detail += f"; used {token.used_at:%H:%M:%S}"
        entries.append(
            Entry(token.issued_at, f"Job token issued to stack {token.stack_key}", detail)
        )
    entries.sort(key=lambda e: e.at)  # stable: same-instant events keep their order
    return entries
