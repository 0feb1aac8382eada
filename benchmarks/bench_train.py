"""Training throughput of every model: clips per second of one optimiser step (forward, the
model's own training objective, backward, the recipe's optimiser) at the paper's input size.

    python benchmarks/bench_train.py [--device cpu] [--precision fp32] [--batch 1] [--reps 3] [-o benchmarks/results]

On CUDA use ``--precision bf16`` (autocast) and the largest ``--batch`` that fits. Synthetic
inputs with a plausible ground truth (a Gaussian blob); the timing does not depend on the data.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import salrt
from salrt.hardware import cpu_name
from salrt.models import MODELS
from salrt.models.synthetic import synthetic_inputs


def batch_for(model: torch.nn.Module, b: int, device: str) -> dict:
    c = model.config
    v, a, _ = synthetic_inputs(c.video_shape, c.audio_shape, b, seed=0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, c.height), torch.linspace(-1, 1, c.width), indexing="ij")
    gt = torch.exp(-(yy**2 + xx**2) / 0.1)[None, None].expand(b, 1, -1, -1).contiguous()
    out = {"video": v, "audio": a, "map": gt, "fixations": (gt > 0.9).float(), "source": ["synthetic"] * b}
    return {k: x.to(device) if isinstance(x, torch.Tensor) else x for k, x in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(sorted(MODELS)))
    ap.add_argument("--config", default="paper")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    rows = []
    for name in args.models.split(","):
        model = salrt.load_model(name, config=args.config, device=args.device).requires_grad_(True).train()
        recipe = model.training_recipe()
        opt = recipe.optimizer(model.parameters())
        batch = batch_for(model, args.batch, args.device)
        gen = torch.Generator(device=args.device).manual_seed(0)
        times = []
        for r in range(args.reps + 1):  # the first is a warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.autocast(torch.device(args.device).type, dtype=amp, enabled=amp is not None):
                loss = recipe.loss(model, batch, gen)["total"]
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if r:
                times.append(time.perf_counter() - t0)
        med = sorted(times)[len(times) // 2]
        row = {"model": name, "batch": args.batch, "s_per_step": med, "clips_per_s": args.batch / med}
        rows.append(row)
        print(json.dumps(row), flush=True)
        del model, opt
    machine = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"{cpu_name()} ({torch.get_num_threads()} threads)"
    )
    res = {
        "command": "python benchmarks/bench_train.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v is not None and k != "output"),
        "machine": machine,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "config": args.config,
        "precision": args.precision,
        "rows": rows,
    }
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        tag = "cuda" if args.device.startswith("cuda") else "cpu"
        (out / f"train_throughput_{tag}_{args.config}.json").write_text(json.dumps(res, indent=1) + "\n")
        md = [f"Training throughput, {args.config} size, {args.precision}, batch {args.batch}, on {machine}", ""]
        md += ["| model | s per step | clips/s |", "|---|---|---|"]
        md += [f"| {r['model']} | {r['s_per_step']:.2f} | {r['clips_per_s']:.3f} |" for r in rows]
        (out / f"train_throughput_{tag}_{args.config}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
