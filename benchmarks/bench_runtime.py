"""Runtime overhead and memory: end-to-end `Runtime` throughput vs the model alone, and peak RSS
over a long synthetic stream.

Usage: python benchmarks/bench_runtime.py [--config tiny|paper] [--seconds 2] [--stride 8]
       [--long-minutes 10] [--out benchmarks/results]
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
import torch

import salrt
from salrt.backends.torch_backend import TorchBackend
from salrt.io import make_clip, open_media
from salrt.io.contract import InputContract
from salrt.models.synthetic import load_synthetic_weights
from salrt.runtime import RunOptions, Runtime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def model_for(config: str):
    m = salrt.load_model("diffsal", config=config)
    load_synthetic_weights(m, 0)
    return m


def overhead(config: str, seconds: float, stride: int, batch: int, d: Path) -> dict:
    m = model_for(config)
    c = m.config
    size, asize = (c.height, c.width), (c.audio_height, c.audio_width)
    clip = make_clip(d / "in.mp4", seed=0, width=640, height=360, seconds=seconds, ground_truth=False)
    clips = list(open_media(str(clip.path), stride=stride, size=size, audio_size=asize))
    backend = TorchBackend(m)
    backend.sample(clips[0].video[None], clips[0].audio[None], steps=4)  # warm-up
    t = time.perf_counter()  # the model alone on the pre-decoded clips, same batching
    for i in range(0, len(clips), batch):
        part = clips[i : i + batch]
        noise = np.random.default_rng(i).standard_normal((len(part), 1, *size)).astype(np.float32)
        backend.sample(np.stack([x.video for x in part]), np.stack([x.audio for x in part]), steps=4, noise=noise)
    model_s = time.perf_counter() - t
    rt = Runtime(
        backend,
        [str(clip.path)],
        RunOptions(stride=stride, batch=batch, contract=InputContract(size=size, audio_size=asize)),
    )
    stats = rt.run(handle_signals=False)
    return {
        "config": config,
        "input": "640x360 H.264 + AAC",
        "seconds_of_video": seconds,
        "stride": stride,
        "batch": batch,
        "clips": len(clips),
        "model_only_s": round(model_s, 3),
        "model_only_clips_per_s": round(len(clips) / model_s, 4),
        "runtime_wall_s": stats["wall_s"],
        "runtime_clips_per_s": round(len(clips) / stats["wall_s"], 4),
        "runtime_vs_model": round(model_s / stats["wall_s"], 4),
        "latency_ms": stats["latency_ms"],
        "frames_out": stats["frames_out"][0],
    }


def long_stream(minutes: float, d: Path) -> dict:
    m = model_for("tiny")
    c = m.config
    clip = make_clip(
        d / "long.mp4",
        seed=1,
        width=96,
        height=64,
        seconds=minutes * 60,
        sample_rate=16000,
        ground_truth=False,
        n_objects=2,
    )
    import av

    with av.open(str(clip.path)) as f:
        n_frames = sum(1 for _ in f.decode(video=0))
    marks: dict[str, float] = {}
    peak = [0.0]

    def on_map(i: int, idx: int, ts: float, sal: np.ndarray) -> None:
        if idx % 250 == 0 or idx == n_frames - 1:
            r = rss_mb()
            peak[0] = max(peak[0], r)
            for minute in (1, 5, minutes):
                if ts >= 60 * minute - 1.0 and f"minute_{minute:g}" not in marks:
                    marks[f"minute_{minute:g}"] = round(peak[0], 1)

    rt = Runtime(
        TorchBackend(m),
        [str(clip.path)],
        RunOptions(stride=8, batch=4, contract=InputContract.of(c)),
        on_map=on_map,
    )
    stats = rt.run(handle_signals=False)
    return {
        "config": "tiny",
        "input": "96x64, 25 fps, 16 kHz",
        "minutes": minutes,
        "stride": 8,
        "batch": 4,
        "frames_written_to_file": clip.n_frames,
        "frames_decodable": n_frames,
        "frames_out": stats["frames_out"][0],
        "wall_s": stats["wall_s"],
        "media": stats["media"][0],
        "peak_rss_mb_by_stream_time": marks,
        "final_rss_mb": round(rss_mb(), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="tiny,paper", help="comma-separated; empty for none")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    res = {
        "command": "python " + " ".join(sys.argv),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": os.cpu_count(),
            "torch": torch.__version__,
        },
        "overhead": [],
        "long_stream": None,
    }
    with tempfile.TemporaryDirectory() as d:
        for cfg in [c for c in args.configs.split(",") if c]:
            secs = args.seconds if cfg == "paper" else max(args.seconds, 8.0)
            res["overhead"].append(overhead(cfg, secs, args.stride, args.batch, Path(d)))
            print(json.dumps(res["overhead"][-1]))
        if args.long_minutes > 0:
            res["long_stream"] = long_stream(args.long_minutes, Path(d))
            print(json.dumps(res["long_stream"]))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "runtime_cpu.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
