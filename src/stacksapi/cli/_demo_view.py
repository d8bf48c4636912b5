"""The demo's live progress: a rich bar and recent events on a terminal, plain lines otherwise.

On a terminal the view redraws in place (rich ``Live``); in CI or a pipe it prints one line per
notable event instead, so a log shows the same story; with ``--json`` it prints nothing.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

__all__ = ["DemoView"]

_RECENT = 8


class DemoView:
    """Shows progress; ``mode`` is ``live`` (terminal), ``lines`` (no terminal) or ``quiet``."""

    def __init__(self, console: Console, *, total: int, mode: str) -> None:
        self.console = console
        self.mode = mode
        self.total = total
        self.done = 0
        self.running = 0
        self.status = "starting"
        self.recent: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=_RECENT)
        self._t0 = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]jobs"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self.progress.add_task("jobs", total=total, status="")
        self._live: Live | None = None

    def __enter__(self) -> DemoView:
        if self.mode == "live":
            self._live = Live(self._render(), console=self.console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live = None

    def _render(self) -> Group:
        self.progress.update(
            self._task,
            completed=self.done,
            status=f"{self.running} running · {self.status}",
        )
        events = Table(box=None, pad_edge=False, header_style="dim")
        events.add_column("time", style="dim", no_wrap=True)
        events.add_column("event", no_wrap=True)
        events.add_column("detail", no_wrap=True, overflow="ellipsis")
        for when, what, detail in self.recent:
            events.add_row(when, what, detail)
        return Group(self.progress, events)

    def refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def event(self, what: str, detail: str, *, style: str = "") -> None:
        """Record one notable event (and print it as a line when not live)."""
        when = f"{time.monotonic() - self._t0:6.2f}s"
        if self.mode == "lines":
            line = Text(f"{when}  {what:<11} {detail}")
            if style:
                line.stylize(style, len(when) + 2, len(when) + 2 + len(what))
            try:
                self.console.print(line, highlight=False, soft_wrap=True)
            except (OSError, SystemExit):
                # The reader went away (`stacksapi demo | head`): keep running, stop printing.
                self.mode = "quiet"
        elif self.mode == "live":
            self.recent.append((when, f"[{style}]{what}[/]" if style else what, detail))
            self.refresh()

    def set_status(self, status: str) -> None:
        self.status = status
        self.refresh()

    def set_counts(self, *, done: int, running: int) -> None:
        self.done, self.running = done, running
        self.refresh()
