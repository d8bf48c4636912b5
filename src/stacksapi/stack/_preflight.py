"""Trying a dispatcher before the stack registers: ``stacksapi run --check``.

A dispatcher may offer ``async def check(self) -> Sequence[CheckResult]``: one line per thing it
verified (the agent command resolves on ``PATH``; the cluster answers and the service account
may create Jobs...), each ``ok`` or not. :func:`check_dispatcher` runs it (a dispatcher without
one passes, with a line saying so) and turns an exception into a failed line, so the CLI can
print every result and exit 1 when one failed, before anything is registered.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ._config import SubprocessConfig

__all__ = ["CheckResult", "CheckableDispatcher", "check_dispatcher", "check_subprocess"]


@dataclasses.dataclass(frozen=True, slots=True)
class CheckResult:
    """One thing a dispatcher check verified: ``ok``, and a line saying what (and how to fix)."""

    ok: bool
    what: str


@runtime_checkable
class CheckableDispatcher(Protocol):
    """A dispatcher that can try itself before the stack starts (see the module docstring)."""

    async def check(self) -> Sequence[CheckResult]:
        """Verify what the dispatcher needs; never starts an agent."""


async def check_dispatcher(dispatcher: object) -> list[CheckResult]:
    """Run the dispatcher's check; an exception becomes a failed result."""
    name = type(dispatcher).__name__
    if not isinstance(dispatcher, CheckableDispatcher):
        return [CheckResult(True, f"{name} offers no check(); nothing tried")]
    try:
        return list(await dispatcher.check())
    except Exception as exc:
        return [CheckResult(False, f"{name}.check() failed: {type(exc).__name__}: {exc}")]


def check_subprocess(config: SubprocessConfig) -> list[CheckResult]:
    """The agent command resolves to an executable (on the agents' ``PATH``); the work
    directory, when set, is (or can be made) writable."""
    results: list[CheckResult] = []
    program = config.command[0]
    env_path = config.env.get("PATH") or (os.environ.get("PATH") if config.inherit_env else None)
    search = env_path if env_path is not None else os.environ.get("PATH", os.defpath)
    if "{" in program:
        results.append(CheckResult(True, f"agent command {program!r} is a template: not tried"))
    elif os.sep in program:
        path = Path(program)
        ok = path.is_file() and os.access(path, os.X_OK)
        why = "" if ok else ": no such executable file"
        results.append(CheckResult(ok, f"agent command {program!r}{why}"))
    else:
        found = shutil.which(program, path=search)
        results.append(
            CheckResult(True, f"agent command {program!r} resolves to {found}")
            if found
            else CheckResult(
                False,
                f"agent command {program!r} not found on PATH ({search}); install it or set "
                "subprocess.command to its full path",
            )
        )
    if config.work_dir:
        results.append(_writable(Path(config.work_dir)))
    return results


def _writable(path: Path) -> CheckResult:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent  # the first existing ancestor is where it would be created
    ok = probe.is_dir() and os.access(probe, os.W_OK | os.X_OK)
    verb = "is writable" if ok else "is not writable"
    where = "" if probe == path else f" (created under {probe})"
    return CheckResult(ok, f"work directory {path} {verb}{where}")
