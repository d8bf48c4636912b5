"""Counts of fuzz cases tried, per endpoint or input kind, for the run's summary.

Each property test calls :func:`record` once per generated case; ``conftest.py`` prints the table
at the end of the run and, when ``STACKSAPI_FUZZ_CASES`` names a file, writes it there as JSON so
``docs/reliability.md`` can quote the figures of a real run.
"""

from __future__ import annotations

import os
from collections import Counter

__all__ = ["CASES", "examples", "record"]

CASES: Counter[str] = Counter()


def record(name: str) -> None:
    """Count one generated case for ``name`` (an endpoint, or a kind of input)."""
    CASES[name] += 1


def examples(default: int) -> int:
    """``max_examples`` for a property: ``default`` times ``STACKSAPI_FUZZ_SCALE`` (default 1).

    CI runs the bounded default; a larger run is ``STACKSAPI_FUZZ_SCALE=20 pytest tests/fuzz``.
    """
    try:
        scale = float(os.environ.get("STACKSAPI_FUZZ_SCALE", "1"))
    except ValueError:
        scale = 1.0
    return max(1, int(default * max(scale, 0.01)))
