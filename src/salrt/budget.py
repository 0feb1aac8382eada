"""What bounds the runtime's memory: the bytes of kept source frames in flight."""

from __future__ import annotations

import threading


class ByteBudget:
    """Bytes of kept source frames in flight; ``acquire`` waits while over budget (one item is
    always let through, so a frame larger than the budget cannot deadlock)."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self.limit, self.used, self.stop = limit, 0, stop
        self.cond = threading.Condition()

    def acquire(self, n: int) -> None:
        with self.cond:
            while self.used and self.used + n > self.limit and not self.stop.is_set():
                self.cond.wait(0.1)
            self.used += n

    def release(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()
