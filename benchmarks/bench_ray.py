"""Ray batch jobs: throughput from 1 to 2 model workers, and the per-input overhead Ray adds
over a plain ``salrt run`` of the same inputs (one process, the same model and settings).

Each contender runs the bundled demo model (tiny DiffSal, 4 steps) over the same N synthetic
inputs, interleaved in one process for ``--rounds`` rounds; medians are reported. Cluster and
worker start-up are measured apart from the per-input work.

Usage: python benchmarks/bench_ray.py [--inputs 6] [--seconds 2] [--rounds 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from salrt.app.demo import bundled_checkpoint
from salrt.cli import main as cli
from salrt.cluster import Item, connect, run_job
from salrt.hardware import cpu_name
from salrt.io import make_clip
from salrt.runtime import Source
from salrt.sinks.sets import RunOutputs
from salrt.spec import RunSpec


def plain(inputs: list[Path], out: Path, checkpoint: str) -> float:
    """``salrt run`` of every input in one process (the CLI's own path)."""
    t = time.perf_counter()
    args = ["run", *map(str, inputs), "-o", str(out), "--checkpoint", checkpoint, "--outputs", "npy", "--quiet"]
    assert cli(args) == 0
    return time.perf_counter() - t


def ray_run(inputs: list[Path], out: Path, checkpoint: str, workers: int, cpus: float) -> dict:
    items = [Item(i, Source.of(str(p)), p.stem) for i, p in enumerate(inputs)]
    events: list[tuple[float, str]] = []
    rep = run_job(
        items,
        RunOutputs(("npy",), {"inputs": []}),
        str(out),
        spec=RunSpec(model="diffsal", checkpoint=checkpoint, backend="torch"),
        options={"steps": 4},
        workers=workers,
        worker_cpus=cpus,
        on_event=lambda kind, info: events.append((time.perf_counter(), kind)),
    )
    assert not rep.errors, rep.errors
    first = min(t for t, k in events if k == "started")
    last = max(t for t, k in events if k == "done")
    return {
        "wall_s": rep.wall_s,
        "work_s": last - first,
        "startup_s": rep.wall_s - (last - first),
        "frames": rep.frames,
    }


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    ckpt = str(bundled_checkpoint())
    cores = os.cpu_count() or 1
    t0 = time.perf_counter()
    connect(None, num_cpus=cores)
    cluster_s = time.perf_counter() - t0
    rows: dict[str, list[dict]] = {"plain": [], "ray1": [], "ray2": []}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        inputs = [
            make_clip(d / f"in{i}.mp4", seed=i, seconds=a.seconds, width=320, height=192, ground_truth=False).path
            for i in range(a.inputs)
        ]
        frames = None
        for r in range(a.rounds):
            s = plain(inputs, d / f"plain{r}", ckpt)
            rows["plain"].append({"wall_s": s})
            one = ray_run(inputs, d / f"ray1_{r}", ckpt, workers=1, cpus=float(cores))
            two = ray_run(inputs, d / f"ray2_{r}", ckpt, workers=2, cpus=cores / 2)
            rows["ray1"].append(one)
            rows["ray2"].append(two)
            frames = one["frames"]
            print(f"round {r}: plain {s:.1f} s, ray 1 worker {one['work_s']:.1f} s (+{one['startup_s']:.1f}), "
                  f"2 workers {two['work_s']:.1f} s (+{two['startup_s']:.1f})", flush=True)  # fmt: skip

    def med(k: str, f: str) -> float:
        return statistics.median(x[f] for x in rows[k])

    plain_s, one_s, two_s = med("plain", "wall_s"), med("ray1", "work_s"), med("ray2", "work_s")
    result = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "model": "bundled demo model (tiny DiffSal, 64x128 maps), 4 steps, batch 1, fp32 torch",
        "inputs": a.inputs,
        "seconds_per_input": a.seconds,
        "frames": frames,
        "rounds": a.rounds,
        "cluster_start_s": round(cluster_s, 2),
        "plain_salrt_run_s": round(plain_s, 2),
        "ray_1_worker_s": round(one_s, 2),
        "ray_2_workers_s": round(two_s, 2),
        "ray_worker_startup_s": {"1": round(med("ray1", "startup_s"), 2), "2": round(med("ray2", "startup_s"), 2)},
        "scaling_2_over_1": round(one_s / two_s, 3),
        "ray_overhead_per_input_s": round((one_s - plain_s) / a.inputs, 3),
        "throughput_frames_per_s": {
            "plain": round(frames / plain_s, 2),
            "ray_1_worker": round(frames / one_s, 2),
            "ray_2_workers": round(frames / two_s, 2),
        },
        "raw": rows,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ray_cpu.json").write_text(json.dumps(result, indent=1))
    md = [
        f"# Ray batch jobs ({result['machine']}, {result['date']})",
        "",
        f"{a.inputs} inputs of {a.seconds:g} s (320x192, 25 fps: {frames} frames), {result['model']}; medians of {a.rounds} rounds.",
        "",
        "| contender | seconds (work) | frames/s | vs plain |",
        "|---|---|---|---|",
        f"| plain `salrt run` (one process, all inputs) | {plain_s:.2f} | {frames / plain_s:.2f} | 1.00x |",
        f"| Ray, 1 worker ({cores} cores) | {one_s:.2f} | {frames / one_s:.2f} | {plain_s / one_s:.2f}x |",
        f"| Ray, 2 workers ({cores / 2:g} cores each) | {two_s:.2f} | {frames / two_s:.2f} | {plain_s / two_s:.2f}x |",
        "",
        f"- Scaling 1 -> 2 workers: {one_s / two_s:.2f}x (on {cores} cores: the workers share them).",
        f"- Ray's overhead per input (1 worker vs plain, start-up excluded): {(one_s - plain_s) / a.inputs:+.2f} s.",
        f"- Start-up, paid once per job: local cluster {cluster_s:.1f} s; workers (model loaded) "
        f"{result['ray_worker_startup_s']['1']:.1f} s (1) / {result['ray_worker_startup_s']['2']:.1f} s (2).",
    ]
    (out / "ray_cpu.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
