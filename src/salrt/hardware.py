"""What this machine's CPU is and can do (torch-free; read from ``/proc/cpuinfo`` on Linux).

The CPU paths differ by several times between machines of the same name: whether the CPU has
AVX-512, native bf16 (AVX-512 BF16, AMX) or int8 dot products (VNNI) decides which precisions are
worth running at all (torch's bf16 on a CPU without native bf16 runs ~100x slower than fp32).
Benchmarks record :func:`cpu_isa` beside :func:`cpu_name`; the CLI refuses precisions the CPU
cannot run natively (:func:`salrt.backends.precision_problem`).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# flags of native bf16 arithmetic (what makes --precision bf16 worth running on a CPU)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor in a ``/proc/cpuinfo`` text."""
    name, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return name, flags


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        return "", frozenset()


def cpu_name() -> str:
    """The CPU's model name (``AMD EPYC``), or what the platform says."""
    return _cpuinfo()[0] or platform.processor() or "unknown"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (empty where they cannot be read)."""
    return _cpuinfo()[1]


def cpu_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX-BF16)."""
    return any(f in cpu_flags() for f in _BF16_FLAGS)


def cpu_isa() -> str:
    """The vector extensions that set this CPU's speed, e.g. ``AVX-512 (BF16, VNNI)`` or ``AVX2``."""
    flags = cpu_flags()
    if not flags:
        return platform.machine() or "unknown"
    extras = [
        name for flag, name in (("avx512_bf16", "BF16"), ("amx_bf16", "AMX"), ("avx512_vnni", "VNNI")) if flag in flags
    ]
    if "avx512f" in flags:
        return "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    if "avx2" in flags:
        return "AVX2" + (" (VNNI)" if "avx_vnni" in flags else "")
    return "no AVX2"
