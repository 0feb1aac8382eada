"""Reference-style inference loop vs ``model.sample`` on the same machine, in one run.

Reference-style (as the authors' ``sample_image``/``sample_ddim`` run): encoders once with the
materialised-score MViT attention, then per step a deep copy of the features, the audio
alignment recomputed inside the denoiser, a host round trip of x_t, and the DDIM update.
salrt: ``model.sample`` (fused encoder attention, per-clip audio alignment, no copies).

    python benchmarks/bench_sample.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import salrt
from salrt.testing import synthetic_inputs, synthetic_state_dict


def reference_style_sample(model: salrt.DiffSal, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
    attn = [m for m in model.modules() if hasattr(m, "fused")]
    for m in attn:
        m.fused = False
    try:
        with torch.no_grad():
            video_feats = model.video_encoder(video)
            audio_feats = model.audio_encoder(audio)
            saved = copy.deepcopy(video_feats)
            x = noise
            for step in model.scheduler.timesteps(steps):
                feats = copy.deepcopy(saved)  # the reference mutates its feature list every step
                aligned = model.denoiser.align_audio(audio_feats, feats)
                t = torch.full((x.shape[0],), step.t, dtype=torch.long, device=x.device)
                x0 = model.denoiser(x, t, feats, aligned)
                x = model.scheduler.step(x0, x, step).cpu().to(x0.device)  # host round trip per step
            return x.clamp(0, 1)
    finally:
        for m in attn:
            m.fused = True


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(synthetic_state_dict(shapes, seed=0))
    c = model.config
    inputs = [synthetic_inputs(c.video_shape, c.audio_shape, args.batch, seed=s) for s in range(args.reps + 1)]

    ref_out = reference_style_sample(model, *inputs[0], args.steps)  # warm-up, and the outputs to compare
    ours_out = model.sample(*inputs[0][:2], steps=args.steps, noise=inputs[0][2])
    max_abs = (ref_out - ours_out).abs().max().item()
    t_ref, t_ours = [], []
    for v, a, n in inputs[1:]:  # rotate inputs, alternate the two loops
        t0 = time.perf_counter()
        reference_style_sample(model, v, a, n, args.steps)
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.sample(v, a, steps=args.steps, noise=n)
        t_ours.append(time.perf_counter() - t0)
    res = {
        "command": f"python benchmarks/bench_sample.py --config {args.config} --batch {args.batch} --steps {args.steps} --reps {args.reps} --threads {args.threads}",
        "machine": {"cpu": cpu_name(), "threads": args.threads, "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "config": args.config, "batch": args.batch, "steps": args.steps,
        "reference_style_s": t_ref, "salrt_sample_s": t_ours,
        "reference_style_median_s": statistics.median(t_ref), "salrt_median_s": statistics.median(t_ours),
        "speedup": statistics.median(t_ref) / statistics.median(t_ours),
        "max_abs_diff_maps": max_abs,
    }  # fmt: skip
    print(json.dumps(res, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = f"sample_cpu_{args.config}_b{args.batch}"
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
