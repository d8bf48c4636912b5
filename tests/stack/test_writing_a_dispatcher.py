"""The guide "Writing a dispatcher" (docs/stack.md) runs: its example against the emulator.

Every Python block of the guide is quoted from ``examples/writing_a_dispatcher.py``, so the code a
reader copies is the code this test runs.
"""

from __future__ import annotations

import asyncio
import re
import runpy
from pathlib import Path

import pytest

from stacksapi.emulator import EmulatorServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "writing_a_dispatcher.py"


def guide_blocks() -> list[str]:
    text = (ROOT / "docs" / "stack.md").read_text()
    section = text.split("## Writing a dispatcher", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_every_python_block_of_the_guide_is_quoted_from_the_example() -> None:
    blocks = guide_blocks()
    assert len(blocks) >= 5
    source = EXAMPLE.read_text()
    for block in blocks:
        assert block in source, block


def test_the_example_dispatcher_runs_against_the_emulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = runpy.run_path(str(EXAMPLE), run_name="example")
    with EmulatorServer() as server:
        outcome = asyncio.run(example["run"](server))
    assert outcome == {
        "python": "exit 0 by agent",
        "node": "exit 0 by agent",
        "more-1": "exit 0 by agent",
        "more-2": "exit 0 by agent",
        "refused": "exit -1 by stack example-slots",
    }
    out = capsys.readouterr().out
    deferred = re.search(r"dispatches deferred \(slots full\): (\d+)", out)
    assert deferred is not None
    assert int(deferred.group(1)) >= 1  # two slots, four jobs at once: "not now", then run
    assert "image node:22" in out  # chosen from the job's docker plugin
