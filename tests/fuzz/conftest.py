"""Fixtures of the fuzz suite, and the per-endpoint table of cases tried printed at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ._cases import CASES


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the cases tried per endpoint; write them as JSON to ``$STACKSAPI_FUZZ_CASES``."""
    if not CASES:
        return
    terminalreporter.section("fuzz cases tried per endpoint")
    width = max(len(name) for name in CASES)
    for name, count in sorted(CASES.items()):
        terminalreporter.write_line(f"{name:<{width}}  {count:>6}")
    terminalreporter.write_line(f"{'total':<{width}}  {sum(CASES.values()):>6}")
    target = os.environ.get("STACKSAPI_FUZZ_CASES")
    if target:
        Path(target).write_text(json.dumps(dict(sorted(CASES.items())), indent=2) + "\n")
