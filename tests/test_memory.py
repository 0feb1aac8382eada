"""salrt.memory.release_free_memory hands free heap pages back: the RSS falls."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# 300 touched 100 kB blocks (below glibc's mmap threshold: heap), all freed but the last, which
# pins the heap's top so glibc's own trimming cannot return the space below it
PROBE = """
import ctypes, re
from salrt.memory import release_free_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
blocks = [libc.malloc(100_000) for _ in range(300)]
for b in blocks:
    ctypes.memset(b, 1, 100_000)
for b in blocks[:-1]:
    libc.free(b)
before = rss_mb()
released = release_free_memory()
print(released, before - rss_mb())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_free_heap_pages_go_back() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    released, fell_mb = r.stdout.split()
    assert released == "True" and float(fell_mb) > 20  # about 30 MB were free below the pinned top


def test_runs_release_on_their_own_schedule() -> None:
    from salrt.errors import UsageError
    from salrt.runtime import RunOptions

    assert RunOptions().release_memory_s == 30.0 and RunOptions(release_memory_s=0).release_memory_s == 0
    with pytest.raises(UsageError, match="release_memory_s"):
        RunOptions(release_memory_s=-1)


def test_release_every_runs_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from salrt import memory

    calls = threading.Semaphore(0)
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.release() or True)
    stop = memory.release_every(0.01)
    assert calls.acquire(timeout=5) and calls.acquire(timeout=5)  # called, and again
    stop.set()
    names = [t.name for t in threading.enumerate()]
    for _ in range(100):
        if "salrt-release-memory" not in names:
            break
        threading.Event().wait(0.02)
        names = [t.name for t in threading.enumerate()]
    assert "salrt-release-memory" not in names
