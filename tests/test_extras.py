"""An install without an extra never ends in a traceback: one line says which extra to install.

Each test runs a real subprocess in which the extra's modules cannot be imported: a
``sitecustomize`` on ``PYTHONPATH`` puts a finder first on ``sys.meta_path`` that refuses them,
exactly as Python reports a module that is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_BLOCKER = """
import importlib.abc
import sys

_HIDDEN = {hidden!r}


class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _Hide())
"""

_CLI_EXTRA = ("click", "rich")
_EMULATOR_EXTRA = ("starlette", "uvicorn")


def _env(tmp_path: Path, hidden: tuple[str, ...]) -> dict[str, str]:
    site = tmp_path / "hide"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER.format(hidden=set(hidden)))
    env = {k: v for k, v in os.environ.items() if k not in ("STACKSAPI_DEBUG", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    return env


def _run(
    args: list[str], tmp_path: Path, hidden: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    env = _env(tmp_path, hidden)
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)


def _stacksapi_command() -> str:
    command = Path(sys.executable).parent / "stacksapi"
    assert command.exists(), f"the console script is not installed next to {sys.executable}"
    return str(command)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_blocker_really_hides_the_modules(tmp_path: Path) -> None:
    done = _run([sys.executable, "-c", "import click"], tmp_path, _CLI_EXTRA)
    assert done.returncode == 1
    assert "No module named 'click'" in done.stderr


@pytest.mark.parametrize("hidden", [("click",), ("rich",), _CLI_EXTRA])
@pytest.mark.parametrize("args", [["--help"], ["--version"], ["demo"], ["emulator", "serve"]])
def test_cli_without_its_extra_says_which_extra(
    tmp_path: Path, hidden: tuple[str, ...], args: list[str]
) -> None:
    done = _run([_stacksapi_command(), *args], tmp_path, hidden)
    line = _one_line(done.stderr)
    assert done.returncode == 2, done.stderr
    assert "stacksapi[cli]" in line
    assert repr(hidden[0]) in line or hidden[0] in line  # names what is missing
    assert done.stdout == ""


def test_a_command_whose_module_is_missing_names_the_extra(tmp_path: Path) -> None:
    # click and rich are there, so the command starts; serving needs starlette.
    done = _run([_stacksapi_command(), "emulator", "serve"], tmp_path, ("starlette",))
    assert done.returncode == 2, done.stderr
    line = _one_line(done.stderr)
    assert "this command needs the 'cli' extra" in line
    assert "'starlette'" in line


def test_python_m_cli_without_its_extra(tmp_path: Path) -> None:
    done = _run([sys.executable, "-m", "stacksapi.cli", "--help"], tmp_path, _CLI_EXTRA)
    assert done.returncode == 2
    assert "stacksapi[cli]" in _one_line(done.stderr)


_EMULATOR_SCRIPT = """
from stacksapi.emulator import Emulator  # the state alone needs no extra
emulator = Emulator()
try:
    from stacksapi.emulator import EmulatorServer
    EmulatorServer(emulator)
except ImportError as exc:
    print(exc)
    raise SystemExit(3)
"""


@pytest.mark.parametrize("hidden", [("starlette",), ("uvicorn",), _EMULATOR_EXTRA])
def test_emulator_server_without_its_extra_says_which_extra(
    tmp_path: Path, hidden: tuple[str, ...]
) -> None:
    done = _run([sys.executable, "-c", _EMULATOR_SCRIPT], tmp_path, hidden)
    assert done.returncode == 3, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    assert "stacksapi[emulator]" in lines[0]
    assert "EmulatorServer" in lines[0]


def test_uncaught_missing_extra_ends_in_the_one_line(tmp_path: Path) -> None:
    done = _run(
        [sys.executable, "-c", "from stacksapi.emulator import EmulatorServer; EmulatorServer()"],
        tmp_path,
        _EMULATOR_EXTRA,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "stacksapi[emulator]" in last
    # Only our error, not the import machinery's chain of "During handling..." tracebacks.
    assert "During handling" not in done.stderr
    assert done.stderr.count("Traceback") == 1


def test_client_needs_no_extra(tmp_path: Path) -> None:
    hidden = (*_CLI_EXTRA, *_EMULATOR_EXTRA, "prometheus_client", "lightkube", "yaml")
    script = "import stacksapi, stacksapi.stack; stacksapi.Client('bkct_x'); print('ok')"
    done = _run([sys.executable, "-c", script], tmp_path, hidden)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("hidden", [("lightkube",), ("yaml",)])
def test_kubernetes_without_its_extra_says_which_extra_like_the_others(
    tmp_path: Path, hidden: tuple[str, ...]
) -> None:
    script = (
        "try:\n    import stacksapi.kubernetes\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n    raise SystemExit(3)\n"
    )
    done = _run([sys.executable, "-c", script], tmp_path, hidden)
    assert done.returncode == 3, done.stderr
    line = done.stdout.strip()
    assert line.startswith("MissingExtraError stacksapi.kubernetes needs the 'kubernetes' extra")
    assert repr(hidden[0]) in line  # names what is missing
    assert "from a clone: pip install '.[kubernetes]'" in line  # no release exists yet
