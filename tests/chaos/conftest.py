"""Fixtures of the chaos suite, and the summary table it prints at the end of the session.

Each test hands its :class:`~chaos._world.RunReport` to the session's ledger (``chaos_ledger``);
``pytest_terminal_summary`` prints one row per run and a total row, so every CI log carries the
figures: runs, jobs, faults by kind, restarts, duplicates, lost jobs and time to drain.
"""

from __future__ import annotations

import pytest

from ._table import render_table
from ._world import RunReport

__all__ = ["Ledger", "anyio_backend", "chaos_ledger"]

_LEDGER = pytest.StashKey["Ledger"]()


class Ledger:
    """The reports of the chaos runs of this session, in order."""

    def __init__(self) -> None:
        self.reports: list[RunReport] = []

    def record(self, report: RunReport) -> RunReport:
        self.reports.append(report)
        return report


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def chaos_ledger(request: pytest.FixtureRequest) -> Ledger:
    """The session's ledger: record every run's report in it."""
    stash = request.config.stash
    if _LEDGER not in stash:
        stash[_LEDGER] = Ledger()
    return stash[_LEDGER]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ledger = terminalreporter.config.stash.get(_LEDGER, None)
    if ledger is None or not ledger.reports:
        return
    terminalreporter.write_sep("=", "chaos summary")
    for line in render_table(ledger.reports):
        terminalreporter.write_line(line)
