"""Fused kernels of the Saliency-UNet's compressed cross-attention (ECA).

- :func:`compress_tokens`: strided depthwise "compression" conv (kernel = stride = k, no padding,
  no bias) + LayerNorm over channels in one pass: (N, C, H, W) -> (N, L, C), L = (H/k)(W/k).
- :func:`attention`: softmax(Q K^T * scale) V per (frame, head) with online softmax over key
  blocks (no score matrix in memory), written straight into the (N, Lq, heads*D) layout the
  output projection reads.

Each has a plain PyTorch reference (``*_reference``) used by the parity tests. Accumulation is
fp32 for fp32/fp16/bf16 inputs. Under ``TRITON_INTERPRET=1`` they run on CPU tensors (tests).

Compile time and registers: no loop is unrolled by a shape parameter; the attention's autotune
space is pruned by head width (at D >= 256 padded, only 16/32-row tiles, which hold the fp32
accumulator in registers without spilling) to at most four configs; autotune results are cached on
disk by Triton (``cache_results``, where the installed Triton has it) and tuned configs can be
shipped per GPU (``tuned_configs.json`` next to this file, or ``SALRT_TUNED_CONFIGS``), which
skips autotuning. fp32 attention at D >= 192 never takes the IEEE FMA dot path: it uses TF32
tensor-core dots when ``torch.backends.cuda.matmul.allow_tf32`` is on, else PyTorch's SDPA.
"""

from __future__ import annotations

import inspect
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from salrt.kernels.launch import LaunchSpec, TuneConfig, dtype_name, ptr_type, recorder

_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
# fp32 attention from this head width on: TF32 dots or SDPA, not IEEE FMA (spills, minutes of ptxas)
FP32_IEEE_MAX_D = 192


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
    rec = recorder()
    if rec is not None:
        rec.append(_compress_spec(x, c, k))
        return out
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


def _compress_spec(x: torch.Tensor, c: int, k: int) -> LaunchSpec:
    ptr = ptr_type(x)
    sig = {n: ptr for n in ("x_ptr", "w_ptr", "g_ptr", "b_ptr", "out_ptr")}
    sig.update({n: "i32" for n in ("C", "W", "WO", "L", "s_n", "s_c", "s_p")}, eps="fp32")
    sig.update(K="constexpr", BLOCK_C="constexpr")
    return LaunchSpec(
        "eca_compress",
        _compress_kernel,
        sig,
        {"K": k, "BLOCK_C": triton.next_power_of_2(c)},
        (TuneConfig({}, num_warps=4, num_stages=3),),  # Triton's launch defaults
        f"C={c},k={k}",
        dtype_name(x),
    )


def compress_tokens_reference(
    x: torch.Tensor, weight: torch.Tensor, ln_weight: torch.Tensor, ln_bias: torch.Tensor, k: int, eps: float = 1e-5
) -> torch.Tensor:
    """The eager sequence the kernel replaces (conv2d groups=C, flatten, LayerNorm)."""
    y = F.conv2d(x, weight[:, None], stride=k, groups=x.shape[1])
    return F.layer_norm(y.flatten(2).transpose(1, 2), (x.shape[1],), ln_weight, ln_bias, eps)


# ----------------------------------------------------------------------------- attention
def attention_configs(d: int, lq: int, interpret: bool | None = None) -> list[TuneConfig]:
    """The tuning space for head width ``d`` and ``lq`` query rows: at most four configs. Wide heads
    (padded D >= 256) get 16/32-row tiles only: a 64 x 512 fp32 accumulator alone is 128 registers
    per thread at 8 warps, and spilled at every config tried for sm_90."""
    if _INTERPRET if interpret is None else interpret:
        return [TuneConfig({"BLOCK_M": 64}, num_warps=4, num_stages=1)]
    block_d = max(16, triton.next_power_of_2(d))
    rows = (16, 32) if block_d >= 256 else (64, 128) if block_d <= 64 else (32, 64)
    rows = tuple(r for r in rows if r <= max(16, triton.next_power_of_2(lq))) or (16,)
    warps = (4, 8) if block_d >= 128 else (4,)
    stages = (1,) if block_d >= 256 else (1, 2)
    out = [TuneConfig({"BLOCK_M": m}, num_warps=w, num_stages=st) for m in rows for w in warps for st in stages]
    return out[:4]


def _all_attention_configs() -> list[triton.Config]:
    seen: dict[str, triton.Config] = {}
    for d in (16, 64, 128, 512):
        for lq in (16, 4096):
            for c in attention_configs(d, lq):
                seen[c.label()] = triton.Config(dict(c.constexprs), num_warps=c.num_warps, num_stages=c.num_stages)
    return list(seen.values())


def _prune(configs: list[Any], nargs: dict[str, Any], *args: Any, **kwargs: Any) -> list[Any]:
    """Autotune's early prune: only the configs :func:`attention_configs` allows for this shape."""
    allowed = {c.label() for c in attention_configs(int(nargs["D"]), int(nargs["LQ"]))}
    keep = [c for c in configs if TuneConfig(dict(c.kwargs), c.num_warps, c.num_stages).label() in allowed]
    return keep or configs[:1]


def _autotune_options() -> dict[str, Any]:
    opts: dict[str, Any] = {"prune_configs_by": {"early_config_prune": _prune}}
    if "cache_results" in inspect.signature(triton.autotune).parameters:  # Triton >= 3.2: on-disk results
        opts["cache_results"] = True
    return opts


@triton.jit
def _attn_jit(
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


_attn_kernel = triton.autotune(configs=_all_attention_configs(), key=["LQ", "LK", "D"], **_autotune_options())(
    _attn_jit
)


def _config_key(dtype: str, lq: int, lk: int, d: int) -> str:
    return f"{dtype}|LQ={lq}|LK={lk}|D={d}"


@lru_cache(maxsize=4)
def _shipped(path: str) -> dict[str, dict[str, dict[str, int]]]:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else {}


def shipped_config(device: torch.device, dtype: str, lq: int, lk: int, d: int) -> TuneConfig | None:
    """A tuned config shipped for this GPU and shape (``tuned_configs.json`` or the file named by
    ``SALRT_TUNED_CONFIGS``: ``{gpu name: {"bf16|LQ=..|LK=..|D=..": {"BLOCK_M", "num_warps",
    "num_stages"}}}``), or None (then the autotuner picks)."""
    if device.type != "cuda":
        return None
    path = os.environ.get("SALRT_TUNED_CONFIGS") or str(Path(__file__).with_name("tuned_configs.json"))
    entry = _shipped(path).get(torch.cuda.get_device_name(device), {}).get(_config_key(dtype, lq, lk, d))
    if entry is None:
        return None
    return TuneConfig({"BLOCK_M": int(entry["BLOCK_M"])}, int(entry["num_warps"]), int(entry["num_stages"]))


def tuned_configs() -> dict[str, dict[str, int]]:
    """The autotuner's choices so far in this process, in ``tuned_configs.json``'s per-GPU format
    (the GPU check writes them next to its results, ready to ship)."""
    out = {}
    for key, cfg in getattr(_attn_kernel, "cache", {}).items():
        lq, lk, d = (int(x) for x in key[:3])
        dt = next((s for s in map(str, key[3:]) if s.endswith(("float32", "float16", "bfloat16"))), "")
        name = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(dt, dt)
        out[_config_key(name, lq, lk, d)] = {
            "BLOCK_M": int(cfg.kwargs["BLOCK_M"]),
            "num_warps": int(cfg.num_warps),
            "num_stages": int(cfg.num_stages),
        }
    return out


def attention_precision(dtype: torch.dtype, d: int) -> str | None:
    """The dot precision of the kernel for inputs of ``dtype`` and head width ``d``; None when the
    kernel is not used (fp32 at D >= 192 without TF32: PyTorch's SDPA instead)."""
    if dtype != torch.float32:
        return "tf32"  # ignored by tl.dot for 16-bit inputs
    if torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee" if d < FP32_IEEE_MAX_D else None


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, out: torch.Tensor | None = None
) -> torch.Tensor:
    """q (N, heads, Lq, D), k/v (N, heads, Lk, D) -> (N, Lq, heads*D), softmax(q k^T scale) v."""
    n, heads, lq, d = q.shape
    lk = k.shape[2]
    precision = attention_precision(q.dtype, d)
    if precision is None:  # fp32, wide heads, no TF32: SDPA (the IEEE FMA dot path spills badly)
        y = F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).reshape(n, lq, heads * d)
        return y if out is None else out.copy_(y)
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out = torch.empty((n, lq, heads * d), device=q.device, dtype=q.dtype) if out is None else out
    block_d = max(16, triton.next_power_of_2(d))
    block_n = max(16, min(64, triton.next_power_of_2(lk)))
    consts = {"BLOCK_N": block_n, "BLOCK_D": block_d, "PRECISION": precision}
    # Triton 3.9's interpreter computes bf16 tl.dot wrongly: upcast there only.
    consts["UPCAST"] = _INTERPRET and q.dtype == torch.bfloat16
    rec = recorder()
    if rec is not None:
        rec.append(_attention_spec(q, consts, lq, lk, d))
        return out
    args = (q, k, v, out, heads, lq, lk, d, scale, *q.stride()[:3], *k.stride()[:3], out.stride(0), out.stride(1))
    tuned = shipped_config(q.device, dtype_name(q), lq, lk, d)
    if tuned is not None:  # shipped for this GPU: no autotuning
        bm = tuned.constexprs["BLOCK_M"]
        _attn_jit[(triton.cdiv(lq, bm), n * heads)](
            *args, BLOCK_M=bm, num_warps=tuned.num_warps, num_stages=tuned.num_stages, **consts
        )
        return out

    def grid(meta: dict) -> tuple[int, int]:
        return (triton.cdiv(lq, meta["BLOCK_M"]), n * heads)

    _attn_kernel[grid](*args, **consts)
    return out


def _attention_spec(q: torch.Tensor, consts: dict[str, Any], lq: int, lk: int, d: int) -> LaunchSpec:
    ptr = ptr_type(q)
    sig = {n: ptr for n in ("q_ptr", "k_ptr", "v_ptr", "o_ptr")}
    ints = ("HEADS", "LQ", "LK", "D")
    strides = ("sq_n", "sq_h", "sq_l", "sk_n", "sk_h", "sk_l", "so_n", "so_l")
    sig.update({n: "i32" for n in ints}, scale="fp32")
    sig.update({n: "i32" for n in strides})
    sig.update({n: "constexpr" for n in ("BLOCK_M", "BLOCK_N", "BLOCK_D", "PRECISION", "UPCAST")})
    return LaunchSpec(
        "eca_attention",
        _attn_jit,
        sig,
        {**consts, "UPCAST": False},  # what a GPU compiles (the interpreter's upcast is a CPU workaround)
        tuple(attention_configs(d, lq, interpret=False)),
        f"LQ={lq},LK={lk},D={d},{consts['PRECISION']}",
        dtype_name(q),
    )


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Eager reference: materialised scores, softmax in fp32, then the (N, Lq, heads*D) layout."""
    s = (q.float() @ k.float().transpose(-1, -2)) * scale
    out = torch.softmax(s, dim=-1) @ v.float()
    n, heads, lq, d = q.shape
    return out.transpose(1, 2).reshape(n, lq, heads * d).to(q.dtype)
