"""Fixtures of the chart tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chart_helpers import helm_binary


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()
