"""``python -m stacksapi.stack --config FILE``: run a stack from a TOML file."""

import sys

from stacksapi.stack._entry import main

sys.exit(main())
