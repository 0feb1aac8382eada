"""Fused kernels of the Saliency-UNet's compressed cross-attention (ECA).

- :func:`compress_tokens`: strided depthwise "compression" conv (kernel = stride = k, no padding,
  no bias) + LayerNorm over channels in one pass: (N, C, H, W) -> (N, L, C), L = (H/k)(W/k).
- :func:`attention`: softmax(Q K^T * scale) V per (frame, head) with online softmax over key
  blocks (no score matrix in memory), written straight into the (N, Lq, heads*D) layout the
  output projection reads.

Each has a plain PyTorch reference (``*_reference``) used by the parity tests. Accumulation is
fp32 for fp32/fp16/bf16 inputs. Under ``TRITON_INTERPRET=1`` they run on CPU tensors (tests).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


# ----------------------------------------------------------------------------- compression
@triton.jit
def _compress_kernel(
    x_ptr, w_ptr, g_ptr, b_ptr, out_ptr, C, W, WO, L, s_n, s_c, s_p, eps, K: tl.constexpr, BLOCK_C: tl.constexpr
):
    pid = tl.program_id(0)
    n = pid // L
    tok = pid % L
    oy = tok // WO
    ox = tok % WO
    c = tl.arange(0, BLOCK_C)
    cm = c < C
    acc = tl.zeros([BLOCK_C], dtype=tl.float32)
    base = x_ptr + n * s_n + c * s_c
    # run-time loops: a K x K static unroll took minutes to compile at K = 16 (stage 3) for sm_90
    for i in range(K):
        for j in range(K):
            pix = (oy * K + i) * W + (ox * K + j)
            xv = tl.load(base + pix * s_p, mask=cm, other=0.0).to(tl.float32)
            wv = tl.load(w_ptr + c * K * K + i * K + j, mask=cm, other=0.0).to(tl.float32)
            acc += xv * wv
    mean = tl.sum(acc, axis=0) / C
    d = tl.where(cm, acc - mean, 0.0)
    var = tl.sum(d * d, axis=0) / C
    y = d / tl.sqrt(var + eps)
    g = tl.load(g_ptr + c, mask=cm, other=1.0).to(tl.float32)
    bb = tl.load(b_ptr + c, mask=cm, other=0.0).to(tl.float32)
    tl.store(out_ptr + pid * C + c, (y * g + bb).to(out_ptr.dtype.element_ty), mask=cm)


def compress_tokens(
    x: torch.Tensor,
    weight: torch.Tensor,
    ln_weight: torch.Tensor,
    ln_bias: torch.Tensor,
    k: int,
    eps: float = 1e-5,
    hw: tuple[int, int] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Depthwise weight (C, k, k) + LayerNorm -> tokens (N, (H/k)(W/k), C).

    ``x`` is an image (N, C, H, W), or tokens (N, H*W, C) with ``hw=(H, W)`` (read in place,
    no transpose copy).
    """
    if hw is None:
        n, c, h, w = x.shape
        s_n, s_c, s_p = x.stride(0), x.stride(1), x.stride(3)
        if x.stride(2) != w * s_p:
            x = x.contiguous()
            s_n, s_c, s_p = x.stride(0), x.stride(1), x.stride(3)
    else:
        (n, _, c), (h, w) = x.shape, hw
        if x.stride(1) != c * x.stride(2):
            x = x.contiguous()
        s_n, s_c, s_p = x.stride(0), x.stride(2), x.stride(1)
    ho, wo = h // k, w // k
    out = torch.empty((n, ho * wo, c), device=x.device, dtype=x.dtype) if out is None else out
    _compress_kernel[(n * ho * wo,)](
        x,
        weight.contiguous(),
        ln_weight,
        ln_bias,
        out,
        c,
        w,
        wo,
        ho * wo,
        s_n,
        s_c,
        s_p,
        eps,
        K=k,
        BLOCK_C=triton.next_power_of_2(c),
    )
    return out


def compress_tokens_reference(
    x: torch.Tensor, weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor, k: int, eps: float = 1e-5
) -> torch.Tensor:
    """The eager sequence the kernel replaces (conv2d groups=C, flatten, LayerNorm)."""
    y = F.conv2d(x, weight[:, None], stride=k, groups=x.shape[1])
    return F.layer_norm(y.flatten(2).transpose(1, 2), (x.shape[1],), ln_weight, ln_bias, eps)


# ----------------------------------------------------------------------------- attention
def _attn_configs() -> list[triton.Config]:
    if _INTERPRET:
        return [triton.Config({"BLOCK_M": 128}, num_warps=4)]
    return [
        triton.Config({"BLOCK_M": bm}, num_warps=nw, num_stages=ns)
        for bm in (64, 128)
        for nw in (4, 8)
        for ns in (1, 2)
    ]


@triton.autotune(configs=_attn_configs(), key=["LQ", "LK", "D"])
@triton.jit
def _attn_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    o_ptr,
    HEADS,
    LQ,
    LK,
    D,
    scale,
    sq_n,
    sq_h,
    sq_l,
    sk_n,
    sk_h,
    sk_l,
    so_n,
    so_l,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    pid_m = tl.program_id(0)
    nh = tl.program_id(1)
    n = nh // HEADS
    h = nh % HEADS
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rd = tl.arange(0, BLOCK_D)
    mm, dm = rm < LQ, rd < D
    q = tl.load(
        q_ptr + n * sq_n + h * sq_h + rm[:, None] * sq_l + rd[None, :], mask=mm[:, None] & dm[None, :], other=0.0
    )
    if UPCAST:
        q = q.to(tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start in range(0, LK, BLOCK_N):
        rn = start + tl.arange(0, BLOCK_N)
        nm = rn < LK
        kt = tl.load(
            k_ptr + n * sk_n + h * sk_h + rn[None, :] * sk_l + rd[:, None], mask=dm[:, None] & nm[None, :], other=0.0
        )
        if UPCAST:
            kt = kt.to(tl.float32)
        s = tl.dot(q, kt, out_dtype=tl.float32, input_precision=PRECISION) * scale
        s = tl.where(nm[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        p = tl.exp(s - m_new[:, None])
        alpha = tl.exp(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(
            v_ptr + n * sk_n + h * sk_h + rn[:, None] * sk_l + rd[None, :], mask=nm[:, None] & dm[None, :], other=0.0
        )
        if UPCAST:
            v = v.to(tl.float32)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, out_dtype=tl.float32, input_precision=PRECISION)
        m_i = m_new
    out = acc / l_i[:, None]
    optr = o_ptr + n * so_n + rm[:, None] * so_l + h * D + rd[None, :]
    tl.store(optr, out.to(o_ptr.dtype.element_ty), mask=mm[:, None] & dm[None, :])


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """q (N, heads, Lq, D), k/v (N, heads, Lk, D) -> (N, Lq, heads*D), softmax(q k^T scale) v."""
    n, heads, lq, d = q.shape
    lk = k.shape[2]
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty((n, lq, heads * d), device=q.device, dtype=q.dtype) if out is None else out
    block_d = max(16, triton.next_power_of_2(d))
    block_n = max(16, min(64, triton.next_power_of_2(lk)))

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(lq, meta["BLOCK_M"]), n * heads)

    _attn_kernel[grid](
        q,
        k,
        v,
        out,
        heads,
        lq,
        lk,
        d,
        scale,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        out.stride(0),
        out.stride(1),
        BLOCK_N=block_n,
        BLOCK_D=block_d,
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",
        # Triton 3.9's interpreter computes bf16 tl.dot wrongly: upcast there only.
        UPCAST=_INTERPRET and q.dtype == torch.bfloat16,
    )
    return out


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Eager reference: materialised scores, softmax in fp32, then the (N, Lq, heads*D) layout."""
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    out = torch.softmax(s, dim=-1) @ v.float()
    n, heads, lq, d = q.shape
    return out.transpose(1, 2).reshape(n, lq, heads * d).to(q.dtype)
