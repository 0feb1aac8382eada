"""Fused DDIM update: one launch per step computes eps and x_next (eta = 0 or eta > 0 with
in-kernel Philox noise), the final step's x0, and optional clamping."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from salrt.kernels.launch import LaunchSpec, TuneConfig, dtype_name, ptr_type, recorder
from salrt.sampling.schedule import apply_ddim

BLOCK = 1024


@triton.jit
def _ddim_kernel(
    x0_ptr,
    xt_ptr,
    out_ptr,
    n,
    recip_sqrt,
    recipm1_sqrt,
    a_next_sqrt,
    c1,
    c2,
    seed,
    lo,
    hi,
    FINAL: tl.constexpr,
    NOISE: tl.constexpr,
    CLAMP: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = offs < n
    x0 = tl.load(x0_ptr + offs, mask=m, other=0.0).to(tl.float32)
    if FINAL:
        y = x0
    else:
        xt = tl.load(xt_ptr + offs, mask=m, other=0.0).to(tl.float32)
        eps = (recip_sqrt * xt - x0) / recipm1_sqrt
        y = a_next_sqrt * x0
        if NOISE:
            y = y + c1 * tl.randn(seed, offs)
        y = y + c2 * eps
    if CLAMP:
        y = tl.minimum(tl.maximum(y, lo), hi)
    tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=m)


def ddim_update(
    x0: torch.Tensor,
    x_t: torch.Tensor,
    coef: dict[str, float],
    seed: int = 0,
    clamp: tuple[float, float] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x_next from the denoiser's x0 and x_t with the scheduler's ``coefficients(step, eta)``.

    ``coef["final"]`` -> returns x0 (clamped if asked). With ``c1 != 0`` the noise z is drawn in
    the kernel from ``seed`` (Philox; deterministic per seed and element, not torch's RNG stream).
    """
    x0c, xtc = x0.contiguous(), x_t.contiguous()
    out = torch.empty_like(x0c) if out is None else out
    n = x0c.numel()
    block = BLOCK
    lo, hi = clamp if clamp is not None else (0.0, 0.0)
    flags = {"FINAL": bool(coef["final"]), "NOISE": coef["c1"] != 0.0, "CLAMP": clamp is not None}
    rec = recorder()
    if rec is not None:
        rec.append(_ddim_spec(x0c, flags))
        return out
    _ddim_kernel[(triton.cdiv(n, block),)](
        x0c,
        xtc,
        out,
        n,
        coef["recip_sqrt"],
        coef["recipm1_sqrt"],
        coef["a_next_sqrt"],
        coef["c1"],
        coef["c2"],
        seed,
        lo,
        hi,
        BLOCK=block,
        **flags,
    )
    return out


def _ddim_spec(x0: torch.Tensor, flags: dict[str, bool]) -> LaunchSpec:
    ptr = ptr_type(x0)
    sig = {"x0_ptr": ptr, "xt_ptr": ptr, "out_ptr": ptr, "n": "i32"}
    sig.update({k: "fp32" for k in ("recip_sqrt", "recipm1_sqrt", "a_next_sqrt", "c1", "c2")})
    sig.update(seed="i32", lo="fp32", hi="fp32")
    sig.update({k: "constexpr" for k in ("FINAL", "NOISE", "CLAMP", "BLOCK")})
    shape = ",".join(f"{k}={int(v)}" for k, v in flags.items())
    return LaunchSpec(
        "ddim_update", _ddim_kernel, sig, {**flags, "BLOCK": BLOCK}, (TuneConfig({}, 4, 3),), shape, dtype_name(x0)
    )


def ddim_update_reference(
    x0: torch.Tensor,
    x_t: torch.Tensor,
    coef: dict[str, float],
    noise: torch.Tensor | None = None,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """The eager chain the kernel replaces (fp32 arithmetic, the scheduler's formula)."""
    y = apply_ddim(x0.float(), x_t.float(), coef, None if noise is None else noise.float())
    if clamp is not None:
        y = y.clamp(*clamp)
    return y.to(x0.dtype)
