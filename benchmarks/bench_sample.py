"""Reference-style inference loop vs ``model.sample`` on the same machine, in one run.

Reference-style (as the authors' ``sample_image``/``sample_ddim`` run): encoders once with the
materialised-score MViT attention, then per step a deep copy of the features, the audio
alignment recomputed inside the denoiser, a host round trip of x_t, and the DDIM update.
salrt: ``model.sample`` (fused encoder attention, per-clip audio alignment, no copies).

    python benchmarks/bench_sample.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import salrt
from salrt.hardware import cpu_name
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="paper")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    model = salrt.load_model("diffsal", config=args.config)
    load_synthetic_weights(model, 0)
    c = model.config
    inputs = [synthetic_inputs(c.video_shape, c.audio_shape, args.batch, seed=s) for s in range(args.reps + 1)]

    ref_out = model.reference_sample(*inputs[0], args.steps)  # warm-up, and the outputs to compare
    ours_out = model.sample(*inputs[0][:2], steps=args.steps, noise=inputs[0][2])
    max_abs = (ref_out - ours_out).abs().max().item()
    t_ref, t_ours = [], []
    parts: dict[str, list[float]] = {
        "reference_style_encoders_s": [],
        "salrt_encode_s": [],
        "reference_style_step_s": [],
        "salrt_denoise_s": [],
    }
    first = model.scheduler.timesteps(args.steps)[0]
    for v, a, n in inputs[1:]:  # rotate inputs, alternate the two loops
        t_ref.append(_timed(model.reference_sample, v, a, n, args.steps)[1])
        t_ours.append(_timed(model.sample, v, a, args.steps, 0.0, n)[1])
        (vf, af), dt = _timed(model.reference_encode, v, a)
        parts["reference_style_encoders_s"].append(dt)
        parts["reference_style_step_s"].append(_timed(model.reference_step, vf, af, n, first)[1])
        with torch.no_grad():
            feats, dt = _timed(model.encode, v, a)
            parts["salrt_encode_s"].append(dt)
            t = torch.full((n.shape[0],), first.t, dtype=torch.long)
            parts["salrt_denoise_s"].append(_timed(model.denoise, n, t, feats)[1])
    res = {
        "command": f"python benchmarks/bench_sample.py --config {args.config} --batch {args.batch} --steps {args.steps} --reps {args.reps} --threads {args.threads}",
        "machine": {
            "cpu": cpu_name(),
            "threads": args.threads,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "config": args.config,
        "batch": args.batch,
        "steps": args.steps,
        "reference_style_s": t_ref,
        "salrt_sample_s": t_ours,
        "reference_style_median_s": statistics.median(t_ref),
        "salrt_median_s": statistics.median(t_ours),
        "speedup": statistics.median(t_ref) / statistics.median(t_ours),
        "max_abs_diff_maps": max_abs,
        "parts_median_s": {k: statistics.median(v) for k, v in parts.items()},
        "parts_s": parts,
    }
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = f"sample_cpu_{args.config}_b{args.batch}"
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
