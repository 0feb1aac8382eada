"""The demo model's goals on held-out synthetic sounding-object clips (seeds never used for
training): mean CC against the ground truth, and the CC with each clip's soundtrack swapped for
another clip's (a model that uses the sound loses accuracy), next to the same model with random
weights.

    python benchmarks/bench_demo_model.py [--checkpoint DIR] [--clips 16] [-o benchmarks/results/demo_model]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import salrt
from salrt.app.demo import bundled_checkpoint, sounding_object_scores
from salrt.hardware import cpu_name
from salrt.models.synthetic import load_synthetic_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="a salrt checkpoint (default: the bundled demo model)")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seed", type=int, default=10_000)
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    ckpt = args.checkpoint or bundled_checkpoint()
    if ckpt is None:
        raise SystemExit("no bundled demo model and no --checkpoint")
    t0 = time.perf_counter()
    trained = sounding_object_scores(salrt.load_model("diffsal", checkpoint=ckpt), args.clips, args.seed)
    random_model = load_synthetic_weights(salrt.load_model("diffsal", config="tiny"), 0)
    untrained = sounding_object_scores(random_model, args.clips, args.seed)
    res = {
        "command": "python benchmarks/bench_demo_model.py"
        + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
        + f" --clips {args.clips} --seed {args.seed}",
        "machine": f"{cpu_name()} ({torch.get_num_threads()} threads), {platform.platform()}",
        "checkpoint": args.checkpoint or "the bundled demo model (salrt/demo_model)",
        "trained": trained,
        "random_weights": untrained,
        "goals": {"cc >= 0.6": trained["cc"] >= 0.6, "swap drop >= 0.15": trained["drop"] >= 0.15},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(res, indent=1))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "demo_model.json").write_text(json.dumps(res, indent=1) + "\n")
        md = [
            f"Demo model on {args.clips} held-out synthetic clips (seeds {args.seed}..), {res['machine']}",
            "",
            "| weights | CC vs ground truth | CC, audio swapped | drop |",
            "|---|---|---|---|",
            f"| trained ({res['checkpoint']}) | {trained['cc']:.3f} | {trained['cc_audio_swapped']:.3f} | {trained['drop']:.3f} |",
            f"| random | {untrained['cc']:.3f} | {untrained['cc_audio_swapped']:.3f} | {untrained['drop']:.3f} |",
        ]
        (out / "demo_model.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
