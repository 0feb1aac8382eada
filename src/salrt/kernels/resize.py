"""Fused resize, sum and shift of a 3x3 convolution's tap mixings (DiffSal's head and UpEmbed).

:func:`salrt.models.saliency_unet.conv_of_resized_sum` runs a convolution's channel mixing per
tap at its inputs' own resolutions; what is left is, for every output pixel,

    out[b, o, y, x] = bias[o] + sum_tap sum_i bilinear(z_i[b, tap * Co + o], y + dy_tap, x + dx_tap)

with zeros outside the image (the convolution's padding) and the bilinear sampling of
``F.interpolate(..., mode="bilinear", align_corners=False)``. Eagerly that writes every input's
(K*K*Co)-channel tensor at full size and reads it back (DiffSal's head: four 864-channel tensors at
112x192 per step, ~0.3 GB in fp32); here one launch reads only the low-resolution inputs
(cache-resident) and writes the Co-channel output once.
Reference: :func:`salrt.kernels.resize_reference.resize_tap_sum` (the eager path).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from salrt.kernels.launch import LaunchSpec, TuneConfig, dtype_name, ptr_type, recorder
from salrt.kernels.resize_reference import resize_tap_sum as resize_tap_sum_reference

MAX_INPUTS = 4


def _block(n_in: int) -> int:
    """Output pixels per program: one per thread with several inputs (36 bilinear samples per pixel
    for four: 255 registers at two per thread on sm_90), two with one."""
    return 256 if n_in == 1 else 128


__all__ = ["resize_tap_sum", "resize_tap_sum_reference"]


@triton.jit
def _sample(z_ptr, chan_base, h_in, w_in, H, W, yy, xx, inside):
    """Bilinear sample (align_corners=False, PyTorch's index rule) of one (h_in, w_in) plane at
    output positions (yy, xx) of an (H, W) grid; 0 where ``inside`` is false."""
    sy = tl.maximum((yy.to(tl.float32) + 0.5) * (h_in.to(tl.float32) / H) - 0.5, 0.0)
    sx = tl.maximum((xx.to(tl.float32) + 0.5) * (w_in.to(tl.float32) / W) - 0.5, 0.0)
    y0 = tl.minimum(sy.to(tl.int32), h_in - 1)  # floor: sy >= 0
    x0 = tl.minimum(sx.to(tl.int32), w_in - 1)
    y1 = tl.minimum(y0 + 1, h_in - 1)
    x1 = tl.minimum(x0 + 1, w_in - 1)
    ly = sy - y0.to(tl.float32)
    lx = sx - x0.to(tl.float32)
    base = z_ptr + chan_base
    v00 = tl.load(base + y0 * w_in + x0, mask=inside, other=0.0).to(tl.float32)
    v01 = tl.load(base + y0 * w_in + x1, mask=inside, other=0.0).to(tl.float32)
    v10 = tl.load(base + y1 * w_in + x0, mask=inside, other=0.0).to(tl.float32)
    v11 = tl.load(base + y1 * w_in + x1, mask=inside, other=0.0).to(tl.float32)
    v = (1.0 - ly) * ((1.0 - lx) * v00 + lx * v01) + ly * ((1.0 - lx) * v10 + lx * v11)
    return tl.where(inside, v, 0.0)


@triton.jit
def _resize_tap_sum_kernel(
    z0_ptr,
    z1_ptr,
    z2_ptr,
    z3_ptr,
    bias_ptr,
    out_ptr,
    h0,
    w0,
    h1,
    w1,
    h2,
    w2,
    h3,
    w3,
    CO,
    H,
    W,
    N_IN: tl.constexpr,
    K: tl.constexpr,
    DIL: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    bo = tl.program_id(0)  # b * CO + o
    b = bo // CO
    o = bo % CO
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = offs < H * W
    y = offs // W
    x = offs % W
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in tl.static_range(K):
        for j in tl.static_range(K):
            yy = y + (i - K // 2) * DIL
            xx = x + (j - K // 2) * DIL
            inside = m & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            chan = b * (K * K * CO) + (i * K + j) * CO + o
            acc += _sample(z0_ptr, chan * h0 * w0, h0, w0, H, W, yy, xx, inside)
            if N_IN > 1:
                acc += _sample(z1_ptr, chan * h1 * w1, h1, w1, H, W, yy, xx, inside)
            if N_IN > 2:
                acc += _sample(z2_ptr, chan * h2 * w2, h2, w2, H, W, yy, xx, inside)
            if N_IN > 3:
                acc += _sample(z3_ptr, chan * h3 * w3, h3, w3, H, W, yy, xx, inside)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + o).to(tl.float32)
    tl.store(out_ptr + bo * H * W + offs, acc.to(out_ptr.dtype.element_ty), mask=m)


def resize_tap_sum(
    taps: list[torch.Tensor],
    co: int,
    size: tuple[int, int],
    dilation: int = 1,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The fused second half of a convolution of resized inputs: ``taps`` are 1..4 tensors
    (B, K*K*Co, h_i, w_i) with tap-major channels (K odd); returns (B, Co, *size)."""
    if not 1 <= len(taps) <= MAX_INPUTS:
        raise ValueError(f"resize_tap_sum takes 1..{MAX_INPUTS} inputs, got {len(taps)}")
    zs = [z.contiguous() for z in taps]
    b, kkco = zs[0].shape[:2]
    k = round((kkco // co) ** 0.5)
    if k * k * co != kkco or k % 2 == 0 or any(z.shape[:2] != (b, kkco) for z in zs):
        raise ValueError(f"tap tensors must all be (B, K*K*{co}, h, w) with K odd, got {[tuple(z.shape) for z in zs]}")
    h, w = size
    out = torch.empty((b, co, h, w), device=zs[0].device, dtype=zs[0].dtype) if out is None else out
    flags = {"N_IN": len(zs), "K": k, "DIL": int(dilation), "HAS_BIAS": bias is not None}
    rec = recorder()
    if rec is not None:
        rec.append(_spec(zs[0], co, size, flags))
        return out
    pad = zs + [zs[0]] * (MAX_INPUTS - len(zs))  # unused slots: never read (N_IN)
    dims = [d for z in pad for d in z.shape[-2:]]
    block = _block(len(zs))
    _resize_tap_sum_kernel[(b * co, triton.cdiv(h * w, block))](
        *pad, bias if bias is not None else out, out, *dims, co, h, w, BLOCK=block, **flags
    )
    return out


def _spec(z: torch.Tensor, co: int, size: tuple[int, int], flags: dict[str, object]) -> LaunchSpec:
    ptr = ptr_type(z)
    sig = {n: ptr for n in ("z0_ptr", "z1_ptr", "z2_ptr", "z3_ptr", "bias_ptr", "out_ptr")}
    sig.update({n: "i32" for n in ("h0", "w0", "h1", "w1", "h2", "w2", "h3", "w3", "CO", "H", "W")})
    sig.update({n: "constexpr" for n in ("N_IN", "K", "DIL", "HAS_BIAS", "BLOCK")})
    shape = f"CO={co},H={size[0]},W={size[1]},N={flags['N_IN']},DIL={flags['DIL']}"
    return LaunchSpec(
        "resize_tap_sum",
        _resize_tap_sum_kernel,
        sig,
        {**flags, "BLOCK": _block(int(flags["N_IN"]))},  # type: ignore[call-overload]
        (TuneConfig({}, num_warps=4, num_stages=3),),
        shape,
        dtype_name(z),
    )
