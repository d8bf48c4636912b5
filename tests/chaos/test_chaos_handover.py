"""Chaos where work changes hands or outlives its token (issue 9, items 1, 6 and 9).

Invariants of :func:`chaos._world.verify`, plus: every job finished by its agent with exit
status 0 (a restart or a slow provisioning fails nothing), and no agent refused a stale token.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._handover import killed_while_provisioning, sigterm_restarts, slow_provisioning
from .conftest import Ledger


@pytest.mark.anyio
@pytest.mark.parametrize("refresh", [True, False], ids=["fresh-token", "re-dispatch"])
async def test_slow_provisioning_outlives_its_tokens(refresh: bool, chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(await slow_provisioning(21 + refresh, 12, refresh=refresh))
    assert report.ok, report.explain()


@pytest.mark.slow
def test_stack_killed_while_its_agents_provision(tmp_path: Path, chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(killed_while_provisioning(23, 8, tmp_path))
    assert report.ok, report.explain()
    assert report.restarts == 1


@pytest.mark.slow
def test_sigterm_restarts_fail_nothing(tmp_path: Path, chaos_ledger: Ledger) -> None:
    report = chaos_ledger.record(sigterm_restarts(24, 8, tmp_path, restarts=2))
    assert report.ok, report.explain()
    assert report.restarts == 2
