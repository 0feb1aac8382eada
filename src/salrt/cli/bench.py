"""``salrt bench``: flags -> :func:`salrt.app.bench.run` per model -> the tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="latency, throughput, FLOPs and memory vs the reference-style baseline")
    p.add_argument("--model", default="diffsal", help=f"{C.MODEL_HELP}; comma-separated names, or 'all'")
    p.add_argument("--models", dest="model", help=argparse.SUPPRESS)
    C.add_spec_args(p, ("config", "device", "cache_dir"))
    p.add_argument("--checkpoint", help="weights (default: synthetic weights; timing does not depend on them)")
    p.add_argument("--backend", help="comma-separated backends (salrt info --backends; default: the eager one)")
    p.add_argument("--backends", dest="backend", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help="comma-separated: fp32,fp16,bf16")
    p.add_argument("--batch", default="1", help="comma-separated batch sizes")
    p.add_argument("--steps", default="4", help="comma-separated step counts")
    p.add_argument("--kernels", default="torch", help="comma-separated: torch,triton (backends over weights)")
    p.add_argument("--cuda-graphs", default="on", help="comma-separated: on,off (backends over weights on CUDA)")
    p.add_argument("--reps", type=C.POS_INT, default=5, help="timed calls per configuration")
    p.add_argument("--warmup", type=C.POS_INT, default=1, help="untimed calls first (compilation, allocation)")
    p.add_argument("--stride", type=C.POS_INT, default=1, help="frames per clip for frames/s")
    p.add_argument("--threads", type=C.NONNEG_INT, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--video", help="also measure the whole runtime on this video (end-to-end mode)")
    C.output_arg(p, "bench_out", "folder for bench.json, bench.md and plots")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def _values(text: str, what: str, allowed: tuple[str, ...] | None = None, ints: bool = False) -> list[Any]:
    from salrt.errors import UsageError

    vals = [v.strip() for v in text.split(",") if v.strip()]
    if ints:
        try:
            nums = [int(v) for v in vals]
        except ValueError:
            raise UsageError(f"--{what} must be comma-separated integers, got {text!r}") from None
        if not nums or any(v < 1 for v in nums):
            raise UsageError(f"--{what} values must be >= 1, got {text!r}")
        return nums
    bad = [v for v in vals if allowed is not None and v not in allowed]
    if bad or not vals:
        raise UsageError(f"unknown {what} {bad[0] if bad else text!r}: {', '.join(allowed or ())}")
    return vals


def handle(args: argparse.Namespace) -> int:
    from salrt.errors import SalrtError, UsageError, require

    torch = require("torch", "salrt bench")
    from salrt import backends
    from salrt.app import bench
    from salrt.models import MODELS
    from salrt.pipeline import check_device
    from salrt.spec import PRECISIONS, RunSpec

    models = sorted(MODELS) if args.model == "all" else [m.strip() for m in args.model.split(",") if m.strip()]
    for m in models:
        RunSpec(model=m).validated()
    backend_names = _values(args.backend, "backend", ("auto", *backends.names())) if args.backend else None
    precisions = _values(args.precision, "precision", PRECISIONS)
    kernels = _values(args.kernels, "kernels", ("torch", "triton"))
    graphs = _values(args.cuda_graphs, "--cuda-graphs value", ("on", "off"))
    batches, steps = _values(args.batch, "batch", ints=True), _values(args.steps, "steps", ints=True)
    RunSpec(device=args.device).validated()
    check_device(args.device, torch_needed=True)
    if args.video is not None and not Path(args.video).exists():
        raise SalrtError(f"{args.video}: no such file")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint and len(models) > 1:
        raise UsageError("--checkpoint goes with one --model")
    results = {}
    for m in models:
        out = args.output if len(models) == 1 else f"{args.output}/{m}"
        res = bench.run(
            m, args.config, backend_names, precisions, batches, steps, kernels, args.device, args.reps, args.warmup,
            args.stride, out, args.checkpoint, args.video, C.notes(args, "salrt bench"),
            cuda_graphs=[g == "on" for g in graphs], cache_dir=args.cache_dir,
        )  # fmt: skip
        results[m] = res
        for st in sorted({(r["steps"], r["passes"]) for r in res["rows"] if r.get("passes") not in (None, r["steps"])}):
            C.warn(f"{m}: --steps {st[0]} runs {st[1]} denoiser passes (the model's timestep plan)")
        C.say(bench.markdown(res))
    if len(models) > 1:
        md, rows = bench.cross_model(results)
        Path(args.output, "models.md").write_text(md)
        machine = next(iter(results.values()))["machine"]
        Path(args.output, "models.json").write_text(
            json.dumps({"machine": machine, "device": args.device, "config": args.config, "rows": rows}, indent=1)
        )
        C.say(md)
    C.say(f"wrote bench.json, bench.md and plots to {args.output}")
    return 0
