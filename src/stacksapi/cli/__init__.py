"""The ``stacksapi`` command line: operator commands, ``run``, ``demo`` and the emulator.

Needs the ``cli`` extra (click and rich). This package is the only part of stacksapi that prints.
Without the extra, ``stacksapi`` prints one line naming it and exits 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from stacksapi._extras import missing_extra

if TYPE_CHECKING:
    from ._main import cli

__all__ = ["CLI_EXTRAS", "cli", "main"]

CLI_EXTRAS = ("cli", "kubernetes", "metrics")
"""The extras a command may need, in the order a missing module is matched against them."""


def main() -> None:
    """Console-script entry point (``stacksapi``)."""
    try:
        from ._main import main as run
    except ModuleNotFoundError as exc:
        error = missing_extra(exc, "the stacksapi command line", ("cli",))
        if error is None:
            raise
        sys.stderr.write(f"stacksapi: error: {error}\n")
        raise SystemExit(2) from None
    run()


def __getattr__(name: str) -> Any:
    if name == "cli":
        from ._main import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
