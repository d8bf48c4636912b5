"""The first example of docs/stack.md, run as a user runs it: a stack.toml that names the
server (``base_url``) is honoured, so the cluster token goes to that server and nowhere else."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from stacksapi.emulator import Emulator, EmulatorServer

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "stack.md"


def _first_python_block() -> str:
    found = re.search(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert found is not None, "docs/stack.md has no python example"
    return found.group(1)


def test_the_guide_example_uses_the_servers_named_in_stack_toml(tmp_path: Path) -> None:
    (tmp_path / "example.py").write_text(_first_python_block())
    emulator = Emulator()
    with EmulatorServer(emulator) as server:
        (tmp_path / "stack.toml").write_text(
            f'[stack]\nkey = "guide"\nqueue_key = "__default__"\nbase_url = "{server.base_url}"\n'
            f"[subprocess]\ncommand = [{sys.executable!r}, '-c', 'pass']\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("STACKSAPI_")}
        env["BUILDKITE_CLUSTER_TOKEN"] = server.token  # and no STACKSAPI_BASE_URL
        proc = subprocess.Popen(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if [s.key for s in emulator.list_stacks()] == ["guide"]:
                    break
                time.sleep(0.1)
            registered = [s.key for s in emulator.list_stacks()]
        finally:
            proc.kill()
            output = proc.communicate(timeout=30)[0]
    assert registered == ["guide"], output
