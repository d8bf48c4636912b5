"""``make`` on a machine without uv: it bootstraps uv into ./.tools, says so, and never installs
anything into the system Python.

The real Makefile runs under real make and bash; only the Python and uv it calls are stand-ins
that record their arguments, so the test needs no network and changes nothing on the machine.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PYTHON = """#!/bin/bash
echo "system-python $*" >> "$MAKE_LOG"
case "$1 $2" in
  "-m uv") exit 1 ;;  # no uv module in this Python
  "-m venv") mkdir -p "$3/bin" && cp "$(dirname "$0")/tools-python" "$3/bin/python" ;;
esac
"""
_TOOLS_PYTHON = """#!/bin/bash
echo "tools-python $*" >> "$MAKE_LOG"
if [ "$1 $2 $3" = "-m pip install" ]; then
  printf '#!/bin/bash\\necho "uv $*" >> "$MAKE_LOG"\\n' > "$(dirname "$0")/uv"
  chmod +x "$(dirname "$0")/uv"
fi
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_bootstraps_uv_into_tools_and_never_into_the_system_python(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "python3", _PYTHON)
    _script(bin_dir / "tools-python", _TOOLS_PYTHON)
    work = tmp_path / "clone"
    work.mkdir()
    log = tmp_path / "calls.log"
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",  # no uv anywhere on it
        "HOME": str(tmp_path),
        "MAKE_LOG": str(log),
    }
    if shutil.which("uv", path=env["PATH"]):
        pytest.skip("uv is installed system-wide here")

    def make() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(work), "env",
             f"PYTHON={bin_dir / 'python3'}"],
            env={**env, "MAKEFLAGS": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )  # fmt: skip

    first = make()
    assert first.returncode == 0, first.stderr
    assert "installing it into" in first.stdout
    assert "not the system Python" in first.stdout
    calls = log.read_text().splitlines()
    tools = work / ".tools"
    assert f"system-python -m venv {tools}" in calls
    assert any(c.startswith("tools-python -m pip install") and c.endswith(" uv") for c in calls)
    assert not any(c.startswith("system-python -m pip") for c in calls), calls
    sync = [c for c in calls if c.startswith("uv sync")]
    assert len(sync) == 1
    assert "--locked" in sync[0]
    assert "--group docs" in sync[0]
    assert (tools / "bin" / "uv").exists()

    log.write_text("")
    again = make()  # the next run finds ./.tools/bin/uv: no second bootstrap, no message
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stdout
    assert [c.split()[:2] for c in log.read_text().splitlines()] == [
        ["system-python", "-m"],  # the `python3 -m uv --version` probe
        ["uv", "sync"],
    ]


def test_readme_names_commands_that_exist_after_make() -> None:
    """The README's next commands after ``make`` use ``.venv/bin/...``, which make creates."""
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert ".venv/bin/stacksapi" in quick
    assert ".tools" in quick
    assert "pip install --user" not in readme
    assert "pip install stacksapi" not in readme  # no release yet: installs go from a clone
