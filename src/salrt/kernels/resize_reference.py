"""The eager reference of :mod:`salrt.kernels.resize` (torch only, no Triton): what DiffSal's head
and UpEmbed run without the fused kernel, and what the kernel's parity tests compare against."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resize_tap_sum(
    taps: list[torch.Tensor],
    co: int,
    size: tuple[int, int],
    dilation: int = 1,
    bias: torch.Tensor | None = None,
    kernel: int | None = None,
) -> torch.Tensor:
    """Resize each (B, K*K*Co, h_i, w_i) tap tensor (tap-major channels) to ``size``, sum them,
    and add every tap's Co channels shifted by its kernel offset (times ``dilation``), zeros
    outside: (B, Co, *size). ``kernel``: K (default: from the channel count; give it when tracing,
    where shapes are tensors). The eager path; the reference of the fused kernel."""
    k = kernel if kernel is not None else math.isqrt(int(taps[0].shape[1]) // co)
    z: torch.Tensor | None = None
    for y in taps:
        if tuple(y.shape[-2:]) != tuple(size):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        z = y if z is None else z + y
    assert z is not None
    pad = dilation * (k // 2)
    z = F.pad(z, (pad, pad, pad, pad))
    h, w = size
    out: torch.Tensor | None = None
    for i in range(k):
        for j in range(k):
            tap = (i * k + j) * co
            part = z[:, tap : tap + co, i * dilation : i * dilation + h, j * dilation : j * dilation + w]
            out = part if out is None else out + part
    assert out is not None
    return out if bias is None else out + bias[None, :, None, None]
