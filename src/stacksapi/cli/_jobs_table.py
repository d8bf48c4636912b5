"""The ``jobs list`` table: one line per job at any width, or everything with ``-o wide``.

The default table fits the terminal (80 columns is enough): short ids (see
:mod:`._job_ids`), and long pipelines, branches, steps and rules cut with ``…`` rather than
wrapped onto more lines. ``-o wide`` shows full uuids and every field in full, however wide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table

from stacksapi._models import ScheduledJob

from ._job_ids import short_ids
from ._render import cell, console

__all__ = ["emit_jobs_table"]


def emit_jobs_table(jobs: Sequence[ScheduledJob], *, wide: bool, title: str, caption: str) -> None:
    """Print ``jobs`` as a table on stdout."""
    show_runnable = wide or any(j.runnable_at is not None for j in jobs)
    ids = {j.id: j.id for j in jobs} if wide else short_ids([j.id for j in jobs])
    names = ["job", "prio", "pipeline", "branch", "step", "rules", "scheduled"]
    if show_runnable:
        names.append("runnable")
    rows: list[list[str]] = []
    for j in jobs:
        build = f" #{j.build.number}" if j.build.number is not None else ""
        row = [
            ids[j.id],
            cell(j.priority),
            f"{j.pipeline.slug or '-'}{build}",
            cell(j.build.branch),
            cell(j.step.key),
            cell(j.agent_query_rules),
            cell(_when(j.scheduled_at, wide)),
        ]
        if show_runnable:
            row.append(cell(_when(j.runnable_at, wide)))
        rows.append(row)
    out = console()
    if wide:  # as wide as the content: a pager or `less -S` scrolls it
        out = Console(highlight=False, soft_wrap=False, width=100_000, force_terminal=False)
    limits = {} if wide else _fit(names, rows, out.width)
    table = Table(
        title=title,
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for i, name in enumerate(names):
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            justify="right" if name == "prio" else "left",
            max_width=limits.get(i),
            min_width=None if i in limits else _natural(name, rows, i),
        )
    for row in rows:
        table.add_row(*row)
    out.print(table, crop=not wide)


def _fit(names: list[str], rows: list[list[str]], width: int) -> dict[int, int]:
    """Widest each cut-able column may be so a row fits ``width`` (ids and times are kept)."""
    natural = [_natural(n, rows, i) for i, n in enumerate(names)]
    flexible = [i for i, n in enumerate(names) if n in _CUTTABLE]
    fixed = sum(w for i, w in enumerate(natural) if i not in flexible)
    room = width - fixed - 3 * len(names)  # a rule and a space each side of it, per column
    limits = {i: natural[i] for i in flexible}
    while sum(limits.values()) > room and max(limits.values()) > _MIN_CUT:
        widest = max(limits, key=lambda i: limits[i])
        limits[widest] -= 1
    return limits


def _natural(name: str, rows: list[list[str]], i: int) -> int:
    return max([len(name), *(len(r[i]) for r in rows)])


_CUTTABLE = frozenset({"pipeline", "branch", "step", "rules"})
_MIN_CUT = 5


def _when(value: dt.datetime | None, wide: bool) -> str | None:
    """A time: ISO 8601 in full when wide, else local wall-clock time (a date if not today)."""
    if value is None:
        return None
    if wide:
        return value.isoformat()
    local = value.astimezone()
    if local.date() == dt.datetime.now().astimezone().date():
        return local.strftime("%H:%M:%S")
    return local.strftime("%Y-%m-%d %H:%M")
