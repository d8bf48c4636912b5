"""The ``stacksapi`` command line: operator commands, ``run``, ``demo`` and the emulator.

Needs the ``cli`` extra (click and rich). This package is the only part of stacksapi that prints.
"""

from ._main import cli, main

__all__ = ["cli", "main"]
