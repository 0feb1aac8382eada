"""GPU benchmark of the Triton kernels (needs CUDA; refuses on CPU).

Per decoder stage at the paper's shapes (N = 9 frames per clip x batch): fused compression +
attention vs the eager PyTorch sequence and vs scaled_dot_product_attention on pre-compressed
K/V, with achieved bandwidth against a measured device-to-device copy; the fused resize-and-shift
of the head's and UpEmbed's tap mixings vs the eager resize + pad + slices; the DDIM update vs the
eager chain; the whole sampler with and without the CUDA graph.

Usage: python benchmarks/bench_kernels.py [--batch 1] [--dtype bf16] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


def timed(fn, reps: int = 50) -> float:
    """Median milliseconds with CUDA events (warm-up excluded)."""
    for _ in range(5):
        fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]


def copy_bandwidth() -> float:
    x = torch.empty(256 << 20, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    ms = timed(lambda: y.copy_(x), 20)
    return 2 * x.numel() / (ms * 1e-3) / 1e9  # GB/s, read + write


def _stage(
    x: Any, kv: Any, wk: Any, wv: Any, g: Any, b: Any, q: Any, k: int, hw: tuple, dims: tuple, scale: float
) -> tuple:
    """The fused kernels and their eager references for one stage's tensors."""
    from salrt.kernels.eca import attention, attention_reference, compress_tokens, compress_tokens_reference

    h, w = hw
    n, lk, heads, d, c = dims

    def fused() -> torch.Tensor:
        kt = compress_tokens(kv, wk, g, b, k, hw=(h, w)).view(n, lk, heads, d).transpose(1, 2)
        vt = compress_tokens(x, wv, g, b, k, hw=(h, w)).view(n, lk, heads, d).transpose(1, 2)
        return attention(q, kt, vt, scale)

    def eager() -> torch.Tensor:
        def img(t: torch.Tensor) -> torch.Tensor:
            return t.transpose(1, 2).reshape(n, c, h, w)

        kt = compress_tokens_reference(img(kv), wk, g, b, k).view(n, lk, heads, d).transpose(1, 2)
        vt = compress_tokens_reference(img(x), wv, g, b, k).view(n, lk, heads, d).transpose(1, 2)
        return attention_reference(q, kt, vt, scale)

    return fused, eager


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="bf16", choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_kernels.py needs a CUDA GPU; the kernels' correctness is tested on CPU by the test suite")
    from salrt.backends.cuda_graphs import GraphSampler
    from salrt.kernels.ddim import ddim_update
    from salrt.kernels.eca import attention, compress_tokens
    from salrt.kernels.resize import resize_tap_sum, resize_tap_sum_reference
    from salrt.sampling import DDIMScheduler

    dt = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    bw = copy_bandwidth()
    rows = []
    for i, (c, h, w, k) in enumerate([(768, 7, 12, 2), (384, 14, 24, 4), (192, 28, 48, 8), (96, 56, 96, 16)]):
        n, heads, d = 9 * args.batch, 2, c // 2
        x = torch.randn(n, h * w, c, device="cuda", dtype=dt)
        kv = torch.randn_like(x)
        wk, wv = (torch.randn(c, k, k, device="cuda", dtype=dt) for _ in range(2))
        g, b = torch.ones(c, device="cuda", dtype=dt), torch.zeros(c, device="cuda", dtype=dt)
        q = torch.randn(n, heads, h * w, d, device="cuda", dtype=dt)
        scale = c**-0.5
        lk = (h // k) * (w // k)

        fused, eager = _stage(x, kv, wk, wv, g, b, q, k, (h, w), (n, lk, heads, d, c), scale)

        kt = compress_tokens(kv, wk, g, b, k, hw=(h, w)).view(n, lk, heads, d).transpose(1, 2).contiguous()
        vt = compress_tokens(x, wv, g, b, k, hw=(h, w)).view(n, lk, heads, d).transpose(1, 2).contiguous()
        t_f, t_e = timed(fused), timed(eager)
        t_sdpa = timed(functools.partial(F.scaled_dot_product_attention, q, kt, vt, scale=scale))
        t_attn = timed(functools.partial(attention, q, kt, vt, scale))
        moved = (x.numel() * 2 + q.numel() + n * h * w * c) * x.element_size()  # x, kv, q read; out written
        rows.append(
            {
                "stage": i,
                "N": n,
                "Lq": h * w,
                "Lk": lk,
                "C": c,
                "fused_ms": t_f,
                "eager_ms": t_e,
                "speedup_vs_eager": t_e / t_f,
                "attention_only_ms": t_attn,
                "sdpa_precompressed_ms": t_sdpa,
                "achieved_GBps": moved / (t_f * 1e-3) / 1e9,
                "fraction_of_copy_bw": moved / (t_f * 1e-3) / 1e9 / bw,
                "max_err_vs_eager": float((fused().float() - eager().float()).abs().max()),
            }
        )
        print(json.dumps(rows[-1]))
    resize = []  # the head (four sides, 112x192) and UpEmbed's conv1 (x2, dilation 2) at paper size
    for name, co, sizes, size, dil, n in (
        ("head", 96, [(7, 12), (14, 24), (28, 48), (56, 96)], (112, 192), 1, args.batch),
        ("upembed1", 384, [(7, 12)], (14, 24), 2, 9 * args.batch),
        ("upembed2", 192, [(14, 24)], (28, 48), 2, 9 * args.batch),
        ("upembed3", 96, [(28, 48)], (56, 96), 2, 9 * args.batch),
    ):
        taps = [torch.randn(n, 9 * co, hh, ww, device="cuda", dtype=dt) for hh, ww in sizes]
        bias = torch.randn(co, device="cuda", dtype=dt)
        t_f = timed(lambda taps=taps, co=co, size=size, dil=dil, bias=bias: resize_tap_sum(taps, co, size, dil, bias))
        t_e = timed(
            lambda taps=taps, co=co, size=size, dil=dil, bias=bias: resize_tap_sum_reference(taps, co, size, dil, bias)
        )
        moved = (sum(t.numel() for t in taps) + n * co * size[0] * size[1]) * taps[0].element_size()
        resize.append(
            {
                "part": name,
                "fused_ms": t_f,
                "eager_ms": t_e,
                "speedup_vs_eager": t_e / t_f,
                "achieved_GBps": moved / (t_f * 1e-3) / 1e9,
                "max_err_vs_eager": float(
                    (
                        resize_tap_sum(taps, co, size, dil, bias).float()
                        - resize_tap_sum_reference(taps, co, size, dil, bias).float()
                    )
                    .abs()
                    .max()
                ),
            }
        )
        print(json.dumps(resize[-1]))
    s = DDIMScheduler()
    x0 = torch.rand(args.batch, 1, 224, 384, device="cuda")
    xt = torch.randn_like(x0)
    st = s.timesteps(4)[0]
    c = s.coefficients(st, 0.0)
    ddim = {
        "fused_ms": timed(lambda: ddim_update(x0, xt, c)),
        "eager_ms": timed(lambda: s.step(x0, xt, st)),
        "fused_launches": 1,
        "eager_launches": 4,
    }
    import salrt
    from salrt import kernels

    model = salrt.load_model("diffsal", device="cuda", dtype=dt)
    kernels.enable(model)
    cfg = model.config
    v = torch.randn(args.batch, *cfg.video_shape, device="cuda", dtype=dt)
    a = torch.randn(args.batch, *cfg.audio_shape, device="cuda", dtype=dt)
    noise = torch.randn(args.batch, 1, cfg.height, cfg.width, device="cuda", dtype=dt)
    gs = GraphSampler(model, args.batch)
    sampler = {
        "no_graph_ms": timed(lambda: model.sample(v, a, noise=noise), 10),
        "cuda_graph_ms": timed(lambda: gs(v, a, noise), 10),
    }
    res = {
        "command": "python " + " ".join(sys.argv),
        "gpu": torch.cuda.get_device_name(0),
        "dtype": args.dtype,
        "copy_bandwidth_GBps": bw,
        "eca": rows,
        "resize_tap_sum": resize,
        "ddim": ddim,
        "sampler": sampler,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"kernels_{torch.cuda.get_device_name(0).replace(' ', '_')}.json").write_text(
        json.dumps(res, indent=2)
    )
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
