"""What a kernel launch needs, as data: the jit function, its Triton signature, the compile-time
constants and the tuning configs that apply to that shape. The wrappers in :mod:`salrt.kernels.eca`
and :mod:`salrt.kernels.ddim` build one per call; inside :func:`recording` they hand it to the
recorder instead of launching, so the real shapes of a whole model run (on meta tensors, no GPU)
become a list of :class:`LaunchSpec` that :mod:`salrt.app.aot` compiles for a GPU target.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

_PTR = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}
_RECORDER: contextvars.ContextVar[list[LaunchSpec] | None] = contextvars.ContextVar("salrt_kernel_record", default=None)


@dataclass(frozen=True)
class TuneConfig:
    """One compile variant: extra constexprs (e.g. BLOCK_M) and the launch options."""

    constexprs: dict[str, Any] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 2

    def label(self) -> str:
        cx = ",".join(f"{k}={v}" for k, v in sorted(self.constexprs.items()))
        return f"{cx}{',' if cx else ''}w{self.num_warps}s{self.num_stages}"


@dataclass(frozen=True)
class LaunchSpec:
    """A kernel at one shape: ``fn`` (the raw ``@triton.jit`` function), ``signature`` (argument ->
    Triton type, constexprs as ``"constexpr"``), ``constexprs`` (fixed for this shape), ``configs``
    (the tuning variants that would be compiled for it) and a readable ``shape``."""

    kernel: str
    fn: Any
    signature: dict[str, str]
    constexprs: dict[str, Any]
    configs: tuple[TuneConfig, ...]
    shape: str
    dtype: str

    def key(self) -> tuple[str, str, str]:
        return (self.kernel, self.dtype, self.shape)


def ptr_type(t: torch.Tensor) -> str:
    """Triton's pointer type of a tensor's dtype (``*fp32``, ``*fp16``, ``*bf16``)."""
    return _PTR[t.dtype]


def dtype_name(t: torch.Tensor) -> str:
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[t.dtype]


def recorder() -> list[LaunchSpec] | None:
    """The list launches are recorded into, when inside :func:`recording`."""
    return _RECORDER.get()


@contextlib.contextmanager
def recording() -> Iterator[list[LaunchSpec]]:
    """Record launches instead of running them: each wrapper appends its :class:`LaunchSpec` and
    returns an uninitialised output of the right shape (meta tensors work), per context."""
    calls: list[LaunchSpec] = []
    token = _RECORDER.set(calls)
    try:
        yield calls
    finally:
        _RECORDER.reset(token)
