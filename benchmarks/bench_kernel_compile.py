"""Ahead-of-time compile time of the ECA compression kernel for a GPU target, without a GPU.

    python benchmarks/bench_kernel_compile.py [--arch 90] [-o benchmarks/results]

Compiles ``salrt.kernels.eca._compress_kernel`` with ``triton.compile`` for ``GPUTarget("cuda",
arch, 32)`` (ptxas runs; no GPU is needed) at DiffSal's four stage shapes (C, k) = (768, 2),
(384, 4), (192, 8), (96, 16) in fp32/fp16/bf16, with Triton's cache disabled, and writes the
seconds per compile to ``kernel_compile_sm<arch>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

STAGES = ((768, 2), (384, 4), (192, 8), (96, 16))
DTYPES = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", type=int, default=90)
    ap.add_argument("-o", "--output", default="benchmarks/results")
    args = ap.parse_args()
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()  # every compile from scratch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from salrt.kernels.eca import _compress_kernel

    rows = []
    for dtype, ptr in DTYPES.items():
        for c, k in STAGES:
            sig = {
                "x_ptr": ptr,
                "w_ptr": ptr,
                "g_ptr": ptr,
                "b_ptr": ptr,
                "out_ptr": ptr,
                "C": "i32",
                "W": "i32",
                "WO": "i32",
                "L": "i32",
                "s_n": "i32",
                "s_c": "i32",
                "s_p": "i32",
                "eps": "fp32",
                "K": "constexpr",
                "BLOCK_C": "constexpr",
            }
            src = ASTSource(
                fn=_compress_kernel, signature=sig, constexprs={"K": k, "BLOCK_C": triton.next_power_of_2(c)}
            )
            t0 = time.perf_counter()
            kernel = triton.compile(src, target=GPUTarget("cuda", args.arch, 32))
            rows.append(
                {
                    "dtype": dtype,
                    "C": c,
                    "k": k,
                    "compile_s": round(time.perf_counter() - t0, 2),
                    "shared_bytes": kernel.metadata.shared,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    res = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "triton": triton.__version__,
        "target": f"sm_{args.arch}",
        "rows": rows,
        "total_s": round(sum(r["compile_s"] for r in rows), 2),
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"kernel_compile_sm{args.arch}.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
