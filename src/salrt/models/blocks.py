"""Building blocks shared by the one-pass and diffusion models (DTFSal, AVRSP, MUBiC, TAVDiff)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from salrt.errors import UsageError


def check_input(model: nn.Module, name: str, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Validate ``x`` as (B, *shape) floating point; return it on the model's device and dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise UsageError(f"{name} must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    p = next(model.parameters())
    return x.to(device=p.device, dtype=p.dtype)


def check_batch(*xs: torch.Tensor) -> int:
    """The common batch size of ``xs``; a clear error when they differ."""
    sizes = {int(x.shape[0]) for x in xs}
    if len(sizes) != 1:
        raise UsageError(f"inputs have different batch sizes: {sorted(sizes)}")
    return sizes.pop()


class ConvBNReLU3d(nn.Sequential):
    """Conv3d + BatchNorm3d + ReLU with 'same' padding for odd kernels."""

    def __init__(
        self, cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1)
    ) -> None:
        pad = tuple(k // 2 for k in kernel)
        super().__init__(nn.Conv3d(cin, cout, kernel, stride, pad, bias=False), nn.BatchNorm3d(cout), nn.ReLU())


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) -> (B, ..., C) with explicit non-negative axes (exports to a valid ONNX Transpose)."""
    return x.permute(0, *range(2, x.dim()), 1)


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """(B, ..., C) -> (B, C, ...)."""
    return x.permute(0, x.dim() - 1, *range(1, x.dim() - 1))


class LayerNorm3d(nn.LayerNorm):
    """LayerNorm over the channel axis of (B, C, T, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_first(super().forward(channels_last(x)))


class DeformConv2d(nn.Module):
    """Deformable 3x3 convolution (Dai et al., 2017), applied to every frame of (B, C, T, H, W).

    Offsets (2 per tap) come from a plain 3x3 conv; each tap samples the input bilinearly (zeros
    outside) at its shifted position, and one matrix product mixes the 9 sampled maps, so it
    exports to ONNX (GridSample) without custom ops. Offsets start at zero: a plain 3x3 conv.
    """

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.offset = nn.Conv2d(cin, 2 * k * k, k, padding=k // 2)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.weight = nn.Parameter(torch.empty(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        f = x.transpose(1, 2).reshape(b * t, c, h, w)
        off = self.offset(f).reshape(b * t, self.k * self.k, 2, h, w)
        ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
        xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
        r = self.k // 2
        taps = []
        for i in range(self.k * self.k):
            dy, dx = i // self.k - r, i % self.k - r
            py = ys + dy + off[:, i, 0]  # (N, h, w) absolute sample rows
            px = xs + dx + off[:, i, 1]
            grid = torch.stack((2 * px / max(w - 1, 1) - 1, 2 * py / max(h - 1, 1) - 1), dim=-1)
            taps.append(F.grid_sample(f, grid, mode="bilinear", padding_mode="zeros", align_corners=True))
        cols = torch.stack(taps, dim=2).reshape(b * t, c * self.k * self.k, h * w)  # (N, C*9, h*w)
        out = self.weight.reshape(self.weight.shape[0], -1) @ cols + self.bias[:, None]
        return out.reshape(b, t, -1, h, w).transpose(1, 2)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sin/cos embedding (DDPM/DiT convention, max period 10000)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def upsample_to(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Trilinear (5-D) or bilinear (4-D) resize to ``size``."""
    mode = "trilinear" if x.dim() == 5 else "bilinear"
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention with ``nn.MultiheadAttention``'s parameter names
    (``in_proj_weight``/``in_proj_bias``/``out_proj``: checkpoints load unchanged), written with
    scaled_dot_product_attention so that it exports to ONNX (PyTorch's fused inference path does not)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """q (B, Nq, D), kv (B, Nk, D), additive ``mask`` (Nq, Nk) -> (B, Nq, D)."""
        b, nq, d = q.shape
        h = self.heads
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)

        def split(x):
            return x.reshape(b, x.shape[1], h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(F.linear(q, wq, bq)), split(F.linear(kv, wk, bk)), split(F.linear(kv, wv, bv)), attn_mask=mask
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, nq, d))
