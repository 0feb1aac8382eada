"""The ``salrt`` console script: the CLI, with a Ctrl-C during start-up (imports, argument parsing)
ending as one later does: one line and exit 130, never a traceback."""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from salrt.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("salrt: error: interrupted\n")
        return 130
