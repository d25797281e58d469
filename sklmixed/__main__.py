"""``python -m sklmixed``: the command line."""

import sys

from sklmixed._cli import main

sys.exit(main())
