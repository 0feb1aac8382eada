"""Handing freed heap memory back to the OS during long runs.

A run passes frames, clips, maps and encoder buffers between threads (decode, model, writers).
glibc's malloc gives threads their own arenas (up to 8 per core) and raises its mmap threshold to
the largest block freed, so freed blocks stay behind as free space spread over many arenas: the
RSS creeps up faster than the memory in use. Measured on this project's 2-core machine
(``benchmarks/results/robustness/allocator/``): 16 arenas, bytes in use +2% while RSS +5% in 18
minutes, one ``malloc_trim(0)`` handing back 34 MB. Runs call :func:`release_free_memory` every
``RunOptions.release_memory_s`` (30 s; well under a millisecond a call); in the soak
(``benchmarks/robustness/soak.py``) it kept a run without ``--live`` within 0.9% over 35 minutes
and a live run 35-45 MB lower than without it, which still grew (a cause not yet found). Fixing
glibc's thresholds instead was flat but made every frame-sized buffer an mmap (720p 1.5x slower).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to call
        return None


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim(0)``, every arena); True when
    some memory was released, False when none was or the C library has no such call."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def release_every(interval_s: float) -> threading.Event:
    """Call :func:`release_free_memory` every ``interval_s`` seconds on a daemon thread (for a
    process that serves for days, such as ``salrt serve``); set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            release_free_memory()

    threading.Thread(target=loop, name="salrt-release-memory", daemon=True).start()
    return stop


def reset_peak_memory(device: str) -> bool:
    """Start a new peak-memory window; False where only the process's lifetime peak is known."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats()
        return True
    try:  # Linux: "5" resets the process's peak RSS (VmHWM) to its current RSS
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: str) -> float:
    """Peak memory since :func:`reset_peak_memory`: the CUDA allocator's, or the process's peak
    RSS on CPU (its lifetime peak where the window cannot be reset)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource  # POSIX only, like the fallback it serves

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
