"""`salrt encode` end to end at 720p and 1080p beside the encoder alone: how much slower ROI makes an
encode, per model (the bundled demo DiffSal and the bundled real-time student).

For each resolution (synthetic clip, 25 fps, with audio) and encoder: the plain encode (decode +
encode, no model: the encoder's own speed), then the ROI encode with each model's maps computed
during the encode (the model built once beforehand; its load time is reported apart). Wall time
of one run each, median of ``--reps``; the machine should be otherwise idle.

    python benchmarks/bench_encode_speed.py [--seconds 3] [--reps 3] [-o benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from salrt import pipeline
from salrt.app.demo import bundled_spec
from salrt.app.encode import EncodeSettings, encode
from salrt.hardware import cpu_name
from salrt.io import make_clip
from salrt.spec import RunSpec

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def _timed(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--codecs", default="libx264,libx265")
    ap.add_argument("--models", default="diffsal,student")
    ap.add_argument("-o", "--output", default="benchmarks/results")
    args = ap.parse_args()
    pipes = {}
    for name in args.models.split(","):
        t0 = time.perf_counter()
        spec, weights = bundled_spec(RunSpec(model=name, config=None))
        pipes[name] = (pipeline.build(spec), weights, spec.config, time.perf_counter() - t0)
    rows = []
    with tempfile.TemporaryDirectory() as td:
        work = Path(td)
        for label, (w, h) in SIZES.items():
            clip = make_clip(work / f"{label}.mp4", seed=7, width=w, height=h, seconds=args.seconds, ground_truth=False)
            for codec in args.codecs.split(","):
                src, out = str(clip.path), work / f"{label}_{codec}.mkv"

                def run(pipe: object | None, codec: str = codec, src: str = src, out: Path = out) -> None:
                    settings = EncodeSettings(codec=codec, roi=None if pipe is None else EncodeSettings().roi)
                    encode(pipe, src, out, settings)

                plain = _timed(lambda: run(None), args.reps)
                row = {"size": label, "codec": codec, "frames": clip.n_frames, "plain_s": plain,
                       "plain_fps": clip.n_frames / plain, "roi": {}}  # fmt: skip
                for name, (pipe, _, _, _) in pipes.items():
                    s = _timed(lambda p=pipe: run(p), args.reps)
                    row["roi"][name] = {"seconds": s, "fps": clip.n_frames / s, "slowdown": s / plain}
                rows.append(row)
                print(json.dumps(row), flush=True)
    result = {
        "command": "python benchmarks/bench_encode_speed.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "output"),  # fmt: skip
        "machine": f"{cpu_name()}, {platform.platform()}",
        "models": {n: {"weights": wts, "config": cfg, "load_s": load} for n, (_, wts, cfg, load) in pipes.items()},
        "rows": rows,
    }
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "encode_speed.json").write_text(json.dumps(result, indent=1))
    lines = [
        f"`salrt encode` end to end vs the encoder alone ({result['machine']}; `{result['command']}`; median of "
        f"{args.reps} runs, {args.seconds:g} s clips at 25 fps, CRF 28, encoders' default presets).",
        "",
        "| size | encoder | encoder alone (fps) | " + " | ".join(f"ROI, {n} (fps, slowdown)" for n in pipes) + " |",
        "|---|---|---|" + "---|" * len(pipes),
    ]
    for r in rows:
        cells = [f"{r['roi'][n]['fps']:.1f}, {r['roi'][n]['slowdown']:.2f}x" for n in pipes]
        lines.append(f"| {r['size']} | {r['codec']} | {r['plain_fps']:.1f} | " + " | ".join(cells) + " |")
    (out / "encode_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
