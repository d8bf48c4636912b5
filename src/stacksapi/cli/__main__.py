"""``python -m stacksapi.cli``: the same as the ``stacksapi`` command."""

from ._main import main

main()
