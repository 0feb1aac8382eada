"""Triton kernels against their PyTorch references (interpreted on CPU; full shapes on CUDA)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from salrt import kernels
from salrt.kernels.ddim import ddim_update, ddim_update_reference
from salrt.kernels.eca import attention, attention_reference, compress_tokens, compress_tokens_reference
from salrt.kernels.resize import resize_tap_sum, resize_tap_sum_reference
from salrt.sampling import DDIMScheduler

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c,h,w,k", [(3, 24, 8, 12, 2), (2, 20, 16, 16, 4), (1, 13, 16, 24, 8), (2, 12, 32, 48, 16)])
def test_compress_parity(dtype: torch.dtype, n: int, c: int, h: int, w: int, k: int) -> None:
    g = torch.Generator().manual_seed(n * 100 + c)
    x = torch.randn(n, c, h, w, generator=g).to(DEV)
    wt, lw, lb = (torch.randn(*s, generator=g).to(DEV) for s in ((c, k, k), (c,), (c,)))
    ref = compress_tokens_reference(x, wt, lw, lb, k)
    out = torch.full((n, (h // k) * (w // k), c), float("nan"), device=DEV, dtype=dtype)  # poisoned
    got = compress_tokens(x.to(dtype), wt.to(dtype), lw.to(dtype), lb.to(dtype), k, out=out)
    assert torch.isfinite(got).all()
    assert _err(got, ref) < TOL[dtype] * (3 if dtype == torch.bfloat16 else 1)
    tokens = x.flatten(2).transpose(1, 2).contiguous()  # (N, H*W, C) read in place
    assert _err(compress_tokens(tokens, wt, lw, lb, k, hw=(h, w)), ref) < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "n,heads,lq,lk,d", [(3, 2, 100, 18, 12), (2, 1, 129, 5, 96), (2, 4, 33, 80, 24), (1, 1, 7, 1, 16)]
)
def test_attention_parity(dtype: torch.dtype, n: int, heads: int, lq: int, lk: int, d: int) -> None:
    g = torch.Generator().manual_seed(lq * 7 + lk)
    q, k, v = (torch.randn(n, heads, ln, d, generator=g).to(DEV) for ln in (lq, lk, lk))
    scale = (heads * d) ** -0.5
    ref = attention_reference(q, k, v, scale)
    out = torch.full((n, lq, heads * d), float("nan"), device=DEV, dtype=dtype)
    got = attention(q.to(dtype), k.to(dtype), v.to(dtype), scale, out=out)
    assert torch.isfinite(got).all()
    assert _err(got, ref) < TOL[dtype]


# DiffSal's real widths (paper size): (C, k, H, W) of the K/V compression and (heads, Lq, Lk, D) of
# the attention at its four stages (interpreted on CPU, compiled on CUDA)
REAL_COMPRESS = [(768, 2, 7, 12), (384, 4, 14, 24), (192, 8, 28, 48), (96, 16, 56, 96)]
REAL_ATTENTION = [(2, 84, 18, 384), (2, 336, 18, 192), (2, 1344, 18, 96), (2, 5376, 18, 48)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c,k,h,w", REAL_COMPRESS)
def test_compress_parity_at_real_shapes(dtype: torch.dtype, c: int, k: int, h: int, w: int) -> None:
    g = torch.Generator().manual_seed(c + k)
    x = torch.randn(1, h * w, c, generator=g).to(DEV)  # tokens, read in place as the model does
    wt, lw, lb = (torch.randn(*s, generator=g).to(DEV) for s in ((c, k, k), (c,), (c,)))
    ref = compress_tokens_reference(x.transpose(1, 2).reshape(1, c, h, w), wt, lw, lb, k)
    got = compress_tokens(x.to(dtype), wt.to(dtype), lw.to(dtype), lb.to(dtype), k, hw=(h, w))
    assert _err(got, ref) < TOL[dtype] * (3 if dtype == torch.bfloat16 else 1)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
@pytest.mark.parametrize("heads,lq,lk,d", REAL_ATTENTION)
def test_attention_parity_at_real_shapes(precision: str, heads: int, lq: int, lk: int, d: int) -> None:
    """fp32 with TF32 off: the IEEE kernel below D = 192, SDPA from there on; TF32 on: the kernel."""
    from salrt.kernels.eca import attention_precision

    dtype = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    g = torch.Generator().manual_seed(lq + d)
    q, k, v = (torch.randn(1, heads, ln, d, generator=g).to(DEV) for ln in (lq, lk, lk))
    scale = (heads * d) ** -0.5
    ref = attention_reference(q, k, v, scale)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        path = attention_precision(dtype, d)
        assert path != "ieee" or d < 192  # never the IEEE FMA path on wide heads
        got = attention(q.to(dtype), k.to(dtype), v.to(dtype), scale)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    tol = {"fp32": 1e-5, "tf32": 3e-3}.get(precision, TOL[dtype])
    assert _err(got, ref) < tol


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("clamp", [None, (0.0, 1.0)])
def test_ddim_update_parity(steps: int, clamp: tuple[float, float] | None) -> None:
    s = DDIMScheduler()
    g = torch.Generator().manual_seed(steps)
    x0 = torch.rand(2, 1, 37, 53, generator=g).to(DEV)
    xt = torch.randn(2, 1, 37, 53, generator=g).to(DEV)
    for st in s.timesteps(steps):
        c = s.coefficients(st, 0.0)
        out = torch.full_like(x0, float("nan"))
        got = ddim_update(x0, xt, c, clamp=clamp, out=out)
        ref = ddim_update_reference(x0, xt, c, clamp=clamp)
        assert _err(got, ref) < 1e-6
        if clamp is None:
            assert _err(got, s.step(x0, xt, st)) < 1e-6


def test_ddim_noise_is_seeded_gaussian() -> None:
    s = DDIMScheduler()
    st = s.timesteps(4)[0]
    c = s.coefficients(st, 1.0)
    x0 = torch.zeros(1, 1, 128, 256, device=DEV)
    xt = torch.zeros_like(x0)
    a, b = ddim_update(x0, xt, c, seed=5), ddim_update(x0, xt, c, seed=5)
    assert torch.equal(a, b) and not torch.equal(a, ddim_update(x0, xt, c, seed=6))
    z = a / c["c1"]
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02


def test_model_with_kernels_equals_eager(tiny) -> None:
    import copy

    from salrt.models.synthetic import synthetic_inputs

    # compiled kernels on a CUDA machine (CUDA tensors), the interpreter on CPU (forced)
    cuda = torch.cuda.is_available()
    model = copy.deepcopy(tiny).cuda() if cuda else tiny
    c = model.config
    v, a, n = (x.to(next(model.parameters()).device) for x in synthetic_inputs(c.video_shape, c.audio_shape, 1, seed=3))
    ref = model.sample(v, a, steps=1, noise=n)
    kernels.enable(model, force=not cuda)
    try:
        got = model.sample(v, a, steps=1, noise=n)
    finally:
        kernels.disable(model)
    assert float((got - ref).abs().max()) < 1e-5
    assert torch.equal(model.sample(v, a, steps=1, noise=n), ref)  # disable restores the eager path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "sizes,size,co,dil,bias",
    [
        ([(1, 2), (2, 3), (4, 6), (8, 12)], (16, 24), 3, 1, True),  # DiffSal's head: four sides, x16..x2
        ([(7, 9)], (14, 18), 6, 2, False),  # UpEmbed: x2, dilation 2
        ([(5, 7), (10, 14)], (10, 14), 3, 1, True),  # an input already at the output size
        ([(3, 5)], (7, 11), 4, 1, False),  # non-integer scales
    ],
)
def test_resize_tap_sum_parity(dtype: torch.dtype, sizes: list, size: tuple, co: int, dil: int, bias: bool) -> None:
    g = torch.Generator().manual_seed(co * 10 + dil)
    taps = [torch.randn(2 if len(sizes) == 1 else 1, 9 * co, h, w, generator=g).to(DEV) for h, w in sizes]
    b = torch.randn(co, generator=g).to(DEV) if bias else None
    ref = resize_tap_sum_reference(taps, co, size, dil, b)
    out = torch.full((taps[0].shape[0], co, *size), float("nan"), device=DEV, dtype=dtype)  # poisoned
    got = resize_tap_sum([t.to(dtype) for t in taps], co, size, dil, None if b is None else b.to(dtype), out=out)
    assert got.shape == ref.shape and torch.isfinite(got).all()
    assert _err(got, ref) < TOL[dtype] * (3 if dtype == torch.bfloat16 else 1)


def test_resize_tap_sum_rejects_bad_taps() -> None:
    with pytest.raises(ValueError, match="1..4 inputs"):
        resize_tap_sum([], 3, (4, 4))
    with pytest.raises(ValueError, match="K odd"):
        resize_tap_sum([torch.zeros(1, 12, 2, 2)], 3, (4, 4))  # 4 taps: an even kernel
