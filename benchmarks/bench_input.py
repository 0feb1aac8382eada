"""Decode + preprocess throughput of salrt.io (clips/s and frames/s) on synthetic H.264 inputs.

Usage: python benchmarks/bench_input.py [--seconds 4] [--out benchmarks/results]
Compares with the model's own per-clip time from benchmarks/results/sample_cpu_paper_b1.json.
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

import numpy as np

from salrt.io import make_clip, open_media


def run(path: Path, stride: int, resize: str) -> dict[str, float]:
    t = time.perf_counter()
    m = open_media(str(path), stride=stride, resize=resize)
    n = sum(1 for _ in m)
    dt = time.perf_counter() - t
    return {
        "clips": n,
        "frames": m.stats.video_frames,
        "seconds": dt,
        "clips_per_s": n / dt,
        "frames_per_s": m.stats.video_frames / dt,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, (w, h) in {"720p": (1280, 720), "1080p": (1920, 1080)}.items():
            p = Path(d) / f"{name}.mp4"
            make_clip(p, seed=0, width=w, height=h, fps=25, seconds=args.seconds, sample_rate=48000)
            for stride in (1, 8):
                for resize in ("reference", "fast"):
                    r = run(p, stride, resize)
                    rows.append({"input": name, "stride": stride, "resize": resize, **r})
                    print(json.dumps(rows[-1]))
    model = Path(args.out) / "sample_cpu_paper_b1.json"
    model_s = json.loads(model.read_text())["salrt_median_s"] if model.exists() else float("nan")
    worst = min(r["clips_per_s"] for r in rows if r["resize"] == "reference")
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "av": __import__("av").__version__,
        },
        "rows": rows,
        "model_seconds_per_clip": model_s,
        "preprocess_clips_per_s_worst": worst,
        "ratio_model_time_to_preprocess_time": model_s * worst,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "input_cpu.json").write_text(json.dumps(result, indent=2))
    print(
        f"worst preprocessing: {worst:.2f} clips/s; DiffSal {model_s:.2f} s/clip -> "
        f"preprocessing is {model_s * worst:.0f}x faster than the model"
    )


if __name__ == "__main__":
    main()
