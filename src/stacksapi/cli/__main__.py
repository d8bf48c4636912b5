"""``python -m stacksapi.cli``: the same as the ``stacksapi`` command."""

from . import main

main()
