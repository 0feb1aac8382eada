"""The ``salrt`` console script: the CLI, with a Ctrl-C during start-up (imports, argument parsing)
ending as one later does: one line and exit 130, never a traceback.

During start-up nothing has been written yet, and a KeyboardInterrupt raised inside a native
extension's import (pybind11 modules: onnxruntime, torch) aborts the process (``terminate called
after throwing ... KeyboardInterrupt``, exit -6). So until the CLI has parsed its arguments, SIGINT
ends the process at once; the CLI then restores Python's own handler (:func:`started`).
"""

from __future__ import annotations

import sys

from salrt.startup import begin


def main() -> int:
    begin()
    try:
        from salrt.cli import main as cli_main

        return cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("salrt: error: interrupted\n")
        return 130
