"""onnxruntime vs torch eager for the whole sampler (encoders + 4 DDIM steps), paper sizes.

Usage: python benchmarks/bench_backends.py [--export DIR] [--batch 1] [--reps 3] [--out benchmarks/results]
Exports the model (random weights) to DIR first when DIR has no manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import salrt
from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
from salrt.backends.torch_backend import TorchBackend
from salrt.export.onnx import export_onnx
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", default="/tmp/salrt_export_paper")
    ap.add_argument("--config", default="paper")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = salrt.load_model("diffsal", config=args.config)
    load_synthetic_weights(model, 0)
    if not (Path(args.export) / "manifest.json").is_file():
        export_onnx(model, args.export, batch=str(args.batch))
    backends = {
        "torch": TorchBackend(model),
        "onnxruntime": OnnxRuntimeBackend(args.export),
    }
    c = model.config
    inputs = [synthetic_inputs(c.video_shape, c.audio_shape, args.batch, seed=s) for s in range(args.reps + 1)]
    times: dict[str, list[float]] = {k: [] for k in backends}
    outs: dict[str, np.ndarray] = {}
    for name, b in backends.items():
        for i, (v, a, n) in enumerate(inputs):  # first input is the warm-up; inputs rotate
            vv, aa, nn = (v, a, n) if name == "torch" else (v.numpy(), a.numpy(), n.numpy())
            t = time.perf_counter()
            m = b.sample(vv, aa, steps=4, noise=nn)
            dt = time.perf_counter() - t
            if i:
                times[name].append(dt)
            if i == len(inputs) - 1:
                outs[name] = np.asarray(m.numpy() if hasattr(m, "numpy") else m)
    med = {k: float(np.median(v)) for k, v in times.items()}
    result = {
        "command": "python " + " ".join(sys.argv),
        "config": args.config,
        "batch": args.batch,
        "steps": 4,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
        },
        "seconds": times,
        "median_s": med,
        "onnxruntime_speedup_over_torch": med["torch"] / med["onnxruntime"],
        "max_abs_diff_maps": float(np.abs(outs["torch"] - outs["onnxruntime"]).max()),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"backends_cpu_{args.config}_b{args.batch}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
