"""Terminal output of the CLI: rich progress bars and one-line warnings through ``logging``.

One stderr console serves both, so a warning printed while a bar is live appears above the bar
instead of being written onto its line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger("salrt")


def stderr_console() -> Console:
    """The console progress bars and warnings share (stderr; plain text when not a terminal)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class _RateColumn(ProgressColumn):
    """Items per second since the start (``12.3 frames/s``)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}s/s" if speed else f"-- {self.unit}s/s")


class Bar:
    """A progress display: a bar with ETA when ``total`` is known, a spinner with the count and
    rate when it is not. ``advance`` is thread-safe. Does nothing when ``quiet``."""

    def __init__(self, desc: str, total: int | None, unit: str, quiet: bool, console: Console) -> None:
        self._progress: Progress | None = None
        self._lock = threading.Lock()
        if quiet:
            return
        if total:
            cols: list[Any] = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RateColumn(unit),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
            ]
        else:
            cols = [
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("{task.completed:.0f} " + unit + "s"),
                _RateColumn(unit),
                TimeElapsedColumn(),
            ]
        self._progress = Progress(*cols, console=console, transient=False, refresh_per_second=5)
        self._task = self._progress.add_task(desc, total=total or None)
        self._progress.start()

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress.advance(self._task, n)

    @contextlib.contextmanager
    def status(self, text: str) -> Iterator[None]:
        """``text`` in place of the bar's description for the ``with`` block: a status line while
        the bar is shown (rich allows one live display at a time, so no second spinner)."""
        if self._progress is None:
            yield
            return
        desc = self._progress.tasks[0].description
        self._progress.update(self._task, description=text)
        try:
            yield
        finally:
            if self._progress is not None:
                self._progress.update(self._task, description=desc)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[Any], total: int, desc: str, quiet: bool, console: Console) -> Iterator[Any]:
    """Iterate ``items`` with a bar (``unit`` items)."""
    with Bar(desc, total, "item", quiet, console) as bar:
        for x in items:
            yield x
            bar.advance()


class _OneLine(logging.Handler):
    """``salrt: warning: <message>`` on the shared console, one line per record."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = " ".join(record.getMessage().split())
            self.console.print(f"salrt: {record.levelname.lower()}: {msg}", markup=False, highlight=False)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def cli_logging(console: Console, quiet: bool) -> Iterator[None]:
    """Route salrt's log records and Python warnings (ours and third parties') to one clean line each
    (``quiet``: warnings and errors only, no progress notes); restores the previous state on exit."""
    handler = _OneLine(console)
    old_level, old_show = log.level, warnings.showwarning
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        log.warning("%s", message)

    warnings.showwarning = show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show
            yield
    finally:
        warnings.showwarning = old_show
        log.removeHandler(handler)
        log.setLevel(old_level)
        log.propagate = True
