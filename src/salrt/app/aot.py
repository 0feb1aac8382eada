"""Ahead-of-time compile of every Triton kernel at every real shape of every model that uses it,
for a GPU target, without a GPU::

    python -m salrt.app.aot --arch sm_90 [--dtype bf16,fp16,fp32] [--model diffsal] [--json out.json]

The shapes come from running each model at its paper size on meta tensors with its kernels
switched on and launches recorded (:func:`salrt.kernels.launch.recording`); every tuning config
that the autotuner could pick for a shape is compiled with ``triton.compile`` for
``GPUTarget("cuda", arch, 32)`` (ptxas runs; Triton's cache is bypassed unless ``--keep-cache``).
Per compile it prints seconds, registers, spill bytes (local memory) and shared memory (from
``cuobjdump -res-usage`` on the cubin). Exit status 1 when any compile spills more than
``--max-spill`` bytes, uses more shared memory than the target has, or takes longer than
``--max-seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# shared memory per block that a kernel may use (opt-in maximum), bytes
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448, 100: 232448, 120: 101376}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def kernel_launches(model_names: list[str] | None, dtypes: list[str], batch: int = 1) -> list[Any]:
    """Unique :class:`~salrt.kernels.launch.LaunchSpec` of the models (all that declare kernels
    when ``model_names`` is None) at their paper sizes, one 4-step sample per model and dtype."""
    import torch

    from salrt import kernels
    from salrt.kernels.launch import recording
    from salrt.models import MODELS

    specs: dict[tuple, Any] = {}
    for name in model_names or sorted(MODELS):
        model_cls, cfg_cls = MODELS[name]
        for dt in dtypes:
            dtype = getattr(torch, DTYPES[dt])
            with torch.device("meta"):
                model = model_cls(cfg_cls()).eval().to(dtype)
            if not model.triton_kernels():
                break
            kernels.enable(model, force=True)
            c = model.config
            with torch.device("meta"):
                video = torch.empty(batch, *c.video_shape, dtype=dtype)
                audio = torch.empty(batch, *c.audio_shape, dtype=dtype)
                noise = torch.empty(batch, 1, c.height, c.width, dtype=dtype)
                cond = {
                    k: torch.zeros(batch, *shape, dtype=cdt) for k, (shape, cdt) in model.condition_shapes().items()
                }
            calls = []
            # fp32 twice: as shipped (wide heads fall back to SDPA) and with TF32 allowed (they run the kernel)
            for tf32 in (False, True) if dt == "fp32" else (False,):
                saved = torch.backends.cuda.matmul.allow_tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
                try:
                    with recording() as rec, torch.no_grad():
                        model.sample(video, audio, steps=4, noise=noise, **cond)
                finally:
                    torch.backends.cuda.matmul.allow_tf32 = saved
                calls += rec
            for s in calls:
                specs.setdefault(
                    (s.kernel, s.dtype, s.shape, tuple(sorted(map(str, s.constexprs.items())))), (s, set())
                )
                specs[(s.kernel, s.dtype, s.shape, tuple(sorted(map(str, s.constexprs.items()))))][1].add(name)
    return [(s, sorted(models)) for s, models in specs.values()]


def _tool(name: str) -> str | None:
    import triton

    p = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name
    return str(p) if p.is_file() else None


def resource_usage(cubin: bytes) -> dict[str, int | None]:
    """Registers, spill (local) bytes, stack and shared memory of a cubin's kernel (cuobjdump)."""
    tool = _tool("cuobjdump")
    none: dict[str, int | None] = {"registers": None, "spill_bytes": None, "stack_bytes": None, "shared_bytes": None}
    if tool is None:
        return none
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)", out)
    if not m:
        return none
    reg, stack, shared, local = (int(x) for x in m.groups())
    return {"registers": reg, "spill_bytes": local, "stack_bytes": stack, "shared_bytes": shared}


def compile_spec(spec: Any, config: Any, arch: int) -> dict[str, Any]:
    """Compile one launch spec with one tuning config for ``sm_<arch>``; seconds and resources."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(fn=spec.fn, signature=spec.signature, constexprs={**spec.constexprs, **config.constexprs})
    t0 = time.perf_counter()
    kernel = triton.compile(
        src,
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": config.num_warps, "num_stages": config.num_stages},
    )
    seconds = time.perf_counter() - t0
    usage = resource_usage(kernel.asm["cubin"])
    shared = int(getattr(kernel.metadata, "shared", 0) or 0)
    usage["shared_bytes"] = max(shared, usage["shared_bytes"] or 0)
    return {"compile_s": round(seconds, 3), **usage}


def check(row: dict[str, Any], arch: int, max_spill: int, max_seconds: float) -> list[str]:
    """What is over budget in one compile row."""
    bad = []
    if row["spill_bytes"] is not None and row["spill_bytes"] > max_spill:
        bad.append(f"spills {row['spill_bytes']} B > {max_spill} B")
    limit = SHARED_LIMIT.get(arch)
    if limit is not None and row["shared_bytes"] > limit:
        bad.append(f"shared memory {row['shared_bytes']} B > sm_{arch}'s {limit} B")
    if row["compile_s"] > max_seconds:
        bad.append(f"compile {row['compile_s']:.1f} s > {max_seconds:g} s")
    return bad


def run(
    arch: int,
    dtypes: list[str],
    models: list[str] | None = None,
    max_spill: int = 0,
    max_seconds: float = 30.0,
    keep_cache: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Compile everything; returns ``{"rows": [...], "failures": [...], "total_s": ...}``."""
    if not keep_cache:
        os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="salrt-aot-")
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's default; set to silence its notice
    launches = kernel_launches(models, dtypes)
    rows, failures = [], []
    t0 = time.perf_counter()
    for spec, used_by in launches:
        for config in spec.configs:
            row = {
                "kernel": spec.kernel,
                "dtype": spec.dtype,
                "shape": spec.shape,
                "config": config.label(),
                "models": used_by,
                **compile_spec(spec, config, arch),
            }
            row["over_budget"] = check(row, arch, max_spill, max_seconds)
            rows.append(row)
            if row["over_budget"]:
                failures.append(row)
            if progress is not None:
                progress(row)
    import triton

    return {
        "arch": f"sm_{arch}",
        "triton": triton.__version__,
        "dtypes": dtypes,
        "budgets": {"max_spill_bytes": max_spill, "max_compile_s": max_seconds, "shared_limit": SHARED_LIMIT.get(arch)},
        "rows": rows,
        "failures": failures,
        "total_s": round(time.perf_counter() - t0, 2),
    }


def _arch(text: str) -> int:
    m = re.fullmatch(r"(?:sm_?)?(\d{2,3})a?", text.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid --arch {text!r}: use e.g. sm_90 or 80")
    return int(m.group(1))


def _dtypes(text: str) -> list[str]:
    out = [d.strip() for d in text.split(",") if d.strip()]
    bad = [d for d in out if d not in DTYPES]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"invalid --dtype {text!r}: a comma-separated subset of bf16,fp16,fp32")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m salrt.app.aot",
        description="Compile every Triton kernel at every real shape for a GPU target (no GPU needed).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--arch", type=_arch, default=90, help="target, e.g. sm_90 or sm_80")
    ap.add_argument("--dtype", type=_dtypes, default=["bf16", "fp16", "fp32"], help="comma-separated dtypes")
    ap.add_argument("--model", action="append", help="only this model (repeatable; default: all with kernels)")
    ap.add_argument("--max-spill", type=int, default=0, help="spill bytes per thread allowed")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="compile seconds allowed per kernel")
    ap.add_argument("--keep-cache", action="store_true", help="use Triton's cache (default: compile from scratch)")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from salrt.errors import SalrtError
    from salrt.models import MODELS

    con = Console(width=max(Console().width, 150))
    unknown = [m for m in args.model or [] if m not in MODELS]
    if unknown:
        print(f"salrt.app.aot: error: unknown model(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        with con.status(f"compiling for sm_{args.arch}") as status:
            res = run(
                args.arch,
                args.dtype,
                args.model,
                args.max_spill,
                args.max_seconds,
                args.keep_cache,
                progress=lambda r: status.update(f"{r['kernel']} {r['dtype']} {r['shape']} {r['config']}"),
            )
    except (SalrtError, ImportError) as exc:
        print(f"salrt.app.aot: error: {exc}", file=sys.stderr)
        return 1
    t = Table(title=f"Triton kernels for {res['arch']} (Triton {res['triton']}), {res['total_s']:.1f} s in all")
    for col in ("kernel", "dtype", "shape", "config", "compile s", "regs", "spill B", "shared B", "models"):
        t.add_column(col, justify="right" if col in ("compile s", "regs", "spill B", "shared B") else "left")
    for r in res["rows"]:
        t.add_row(
            r["kernel"],
            r["dtype"],
            r["shape"],
            r["config"],
            f"{r['compile_s']:.2f}",
            str(r["registers"]),
            str(r["spill_bytes"]),
            str(r["shared_bytes"]),
            ",".join(r["models"]),
            style="red" if r["over_budget"] else None,
        )
    con.print(t)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    for r in res["failures"]:
        print(f"over budget: {r['kernel']} {r['dtype']} {r['shape']} {r['config']}: {'; '.join(r['over_budget'])}")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
