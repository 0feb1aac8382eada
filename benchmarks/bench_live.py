"""How many live streams one machine keeps in real time: N paced streams through one live runtime.

Each stream is a generated H.264 file handed to the runtime at its frame rate: a clip enters the
runtime when its newest frame's time comes (as a camera delivers it; the file is decoded ahead of
that moment and then held), all N streams share one model (`salrt run --live` over N inputs). A
count of streams is kept in real time when no clip was dropped and the p99 latency (clip ready ->
map out) stays under ``--p99-ms``. The sweep doubles N until a count fails (or ``--time-limit``).

Usage:
  python benchmarks/bench_live.py --device cuda --precision bf16 --kernels triton \
      [--width 1920 --height 1080 --fps 30 --stride 8 --batch 8 --seconds 8 --streams 1,2,4,8,16,32]
  python benchmarks/bench_live.py --config tiny --width 320 --height 180 --streams 1,2   # CPU rehearsal
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from salrt.hardware import cpu_name


class PacedMedia:
    """One input's decoded media, released at the pace of its timestamps from ``start`` (perf_counter)."""

    def __init__(self, media: Any, start: float) -> None:
        self.media, self.start = media, start
        self.info, self.stats = media.info, media.stats

    def __iter__(self) -> Any:
        for clip in self.media:
            wait = self.start + clip.target_time - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            yield clip


def run_streams(pipe: Any, video: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """N paced copies of ``video`` through one live runtime; the run's figures."""
    from salrt.runtime import RunOptions, Runtime, open_source

    opts = RunOptions(
        steps=4, stride=args.stride, batch=args.batch, live=True, contract=pipe.contract, max_wait_ms=args.max_wait_ms
    )
    period = args.stride / args.fps
    t0 = time.perf_counter() + 0.5  # streams start staggered over one stride period, as cameras would

    def opener(i: int) -> PacedMedia:
        return PacedMedia(open_source(rt.specs[i], opts, False), t0 + period * i / n)

    rt = Runtime(pipe.backend, [video] * n, opts, opener=opener)
    s = rt.run(handle_signals=False)
    dropped = sum(s["dropped_clips"])
    p99 = s["latency_ms"]["p99"]
    return {
        "streams": n,
        "frames_out": sum(s["frames_out"]),
        "clips_per_s": s["clips_per_s"],
        "dropped_clips": dropped,
        "latency_ms": s["latency_ms"],
        "cpu_utilisation": s["cpu_utilisation"],
        "errors": s["errors"][:3],
        "real_time": bool(dropped == 0 and p99 is not None and p99 < args.p99_ms and not s["errors"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="diffsal")
    ap.add_argument("--config", default="paper")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--kernels", default=None)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each stream")
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=50.0)
    ap.add_argument("--streams", default="1,2,4,8,16,32", help="counts to try, in order (stops at the first failure)")
    ap.add_argument("--p99-ms", type=float, default=500.0)
    ap.add_argument("--time-limit", type=float, default=0.0, help="seconds for the whole sweep (0: none)")
    ap.add_argument("--out", default="benchmarks/results/live_streams.json")
    args = ap.parse_args()
    import torch

    from salrt.io import make_clip
    from salrt.pipeline import build
    from salrt.spec import RunSpec

    t_start = time.perf_counter()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "salrt_bench_live"
    work.mkdir(parents=True, exist_ok=True)
    clip = make_clip(
        work / f"live_{args.height}p.mp4",
        seed=5,
        width=args.width,
        height=args.height,
        fps=args.fps,
        seconds=args.seconds,
        ground_truth=False,
    )
    pipe = build(
        RunSpec(
            model=args.model,
            random_weights=True,
            config=args.config,
            device=args.device,
            precision=args.precision,
            kernels=args.kernels,
            backend="torch" if args.device.startswith("cuda") else "auto",
        )
    )
    warm = run_streams(pipe, str(clip.path), 1, args)  # CUDA graphs, autotuning, first decodes
    rows: list[dict[str, Any]] = []
    for n in (int(x) for x in args.streams.split(",")):
        if args.time_limit and time.perf_counter() - t_start > args.time_limit:
            break
        r = run_streams(pipe, str(clip.path), n, args)
        rows.append(r)
        lat = r["latency_ms"]
        print(
            f"{n} streams: {r['clips_per_s']:.2f} clips/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
            f"dropped {r['dropped_clips']}, {'real time' if r['real_time'] else 'NOT real time'}",
            flush=True,
        )
        if not r["real_time"]:
            break
    kept = max((r["streams"] for r in rows if r["real_time"]), default=0)
    device = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{cpu_name()} (CPU)"
    result = {
        "device": device,
        "host_cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "setup": {k: v for k, v in vars(args).items() if k not in ("out", "time_limit")},
        "warm_up": warm,
        "rows": rows,
        "streams_kept_real_time": kept,
        "note": "a count fails on the first dropped clip or p99 >= p99_ms; the sweep stops there",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(
        f"{kept} live {args.width}x{args.height} {args.fps:g} fps streams kept in real time at stride {args.stride} "
        f"(p99 < {args.p99_ms:g} ms, no clip dropped) on {device}"
    )


if __name__ == "__main__":
    main()
