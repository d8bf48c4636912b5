"""Chaos with real stack processes: SIGKILL mid-run and restart, shared queues with a kill.

Agents are emulated-agent processes that outlive a killed stack; the restarted stack adopts them.
The invariants (:func:`chaos._world.verify`) plus: the dead stack's reservations end at their
expiry, SIGTERM exits 0 and deregisters, no token in the stacks' output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._procs import kill_and_restart, shared_key_rolling_update, shared_queue
from .conftest import Ledger

pytestmark = pytest.mark.slow


def test_stack_sigkilled_twice_and_restarted(tmp_path: Path, chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(kill_and_restart(7, 12, tmp_path, kills=2))
    assert report.ok, report.explain()
    assert report.restarts == 2


@pytest.mark.parametrize("stacks", [2, 3])
def test_shared_queue_one_stack_killed_and_restarted(
    stacks: int, tmp_path: Path, chaos_ledger: Ledger
) -> None:
    report = chaos_ledger.record(shared_queue(8 + stacks, 12, tmp_path, stacks=stacks))
    assert report.ok, report.explain()
    assert report.restarts == 1


def test_one_key_two_processes_rolling_update(tmp_path: Path, chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(shared_key_rolling_update(15, 30, tmp_path))
    assert report.ok, report.explain()
    assert report.duplicates == 0
    assert report.restarts == 1
