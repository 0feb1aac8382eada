"""``python -m salrt.cli``: the ``salrt`` command."""

import sys

from salrt.cli import main

sys.exit(main())
