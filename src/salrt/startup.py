"""Ctrl-C during start-up: until the CLI has parsed its arguments nothing has been written, and a
KeyboardInterrupt raised inside a native extension's import (pybind11 modules: onnxruntime, torch)
aborts the process (``terminate called after throwing ... KeyboardInterrupt``, exit -6). So SIGINT
then ends the process at once, one line and exit 130; :func:`started` restores Python's handler."""

from __future__ import annotations

import os
import signal


def begin() -> None:
    """Start-up: SIGINT ends the process at once (exit 130)."""
    signal.signal(signal.SIGINT, _start_up_interrupt)


def _start_up_interrupt(signum: int, frame: object) -> None:
    os.write(2, b"salrt: error: interrupted\n")
    os._exit(130)


def started() -> None:
    """Start-up is over: Ctrl-C raises KeyboardInterrupt again (runs finalise their outputs)."""
    if signal.getsignal(signal.SIGINT) is _start_up_interrupt:
        signal.signal(signal.SIGINT, signal.default_int_handler)
