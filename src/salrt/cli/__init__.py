"""The ``salrt`` command line: one module per subcommand (flags -> a :mod:`salrt.app` call -> what
it printed), and here the parser and the mapping of errors to exit codes.

Exit codes: 0 success; 1 a run-time failure (an input, weights file or output that fails: one
line on stderr, no traceback); 2 a usage error (bad option or argument); 130 interrupted (Ctrl-C,
SIGTERM; outputs are finalised). Warnings are one line each (``salrt: warning: ...``).
Building the parser imports no torch: ``salrt --help`` starts fast on any install.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from salrt import __version__
from salrt.cli import bench, demo, distill, encode, evaluate, export, info, rd, run, serve, train
from salrt.cli.common import Parser, error, flag_of
from salrt.errors import SalrtError, UsageError, one_line

SUBCOMMANDS = (info, evaluate, train, distill, export, serve, run, demo, bench, encode, rd)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="salrt",
        description="Deployment engine for diffusion-based audio-visual saliency models. "
        "Exit codes: 0 ok, 1 run-time failure, 2 usage error, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"salrt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return p


def message(exc: BaseException) -> str:
    """One line for the user; a RunSpec field is named by its flag."""
    from salrt.spec import SpecError

    if isinstance(exc, SpecError):
        return one_line(exc.render(flag_of))
    return one_line(exc)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # during start-up (imports, parsing): as later, one line and 130
        sys.stderr.write("salrt: error: interrupted\n")
        return 130


def _main(argv: Sequence[str] | None) -> int:
    from salrt.console import cli_logging, stderr_console

    args = build_parser().parse_args(argv)  # usage errors exit 2 here
    args.console = stderr_console()
    try:
        with cli_logging(args.console, getattr(args, "quiet", False)):
            try:
                from salrt.startup import started

                started()  # arguments parsed: Ctrl-C is a KeyboardInterrupt from here on
                return int(args.func(args))
            except UsageError as exc:
                error(message(exc))
                return 2
            except (SalrtError, OSError) as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                error(message(exc))
                return 1
            except KeyboardInterrupt:
                error("interrupted")
                return 130
    except BrokenPipeError:  # the reader went away (salrt info --json | head): not an error of ours
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except Exception as exc:
        if os.environ.get("SALRT_DEBUG"):
            raise
        print(
            f"salrt: internal error: {type(exc).__name__}: {one_line(exc)} (this is a bug; "
            f"SALRT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
