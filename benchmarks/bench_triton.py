"""Serving through Triton Inference Server (PyTriton's bundled server, onnxruntime on CPU) against
the same export run locally: start-up, per-request latency by batch over HTTP and gRPC, `salrt run`
end to end with one and two clients, and the maps' agreement.

The server runs from a Python with ``salrt[serve]`` (``--server-python``; nvidia-pytriton pins
numpy<2, so usually its own venv). One run, contenders interleaved; medians.

Usage: python benchmarks/bench_triton.py --server-python /path/to/venv/bin/python
       [--rounds 5] [--seconds 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from salrt.app.demo import bundled_checkpoint
from salrt.app.serve import spawn
from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
from salrt.backends.triton_backend import TritonBackend
from salrt.cli import main as cli
from salrt.export.triton import write_repository
from salrt.hardware import cpu_name
from salrt.io import make_clip


def timed(backend, inputs: tuple, rounds: int) -> float:
    """Median seconds of ``backend.sample(video, audio, steps=4, noise=noise)`` after a warm-up."""
    video, audio, noise = inputs
    backend.sample(video, audio, steps=4, noise=noise)
    ts = []
    for _ in range(rounds):
        t = time.perf_counter()
        backend.sample(video, audio, steps=4, noise=noise)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run_clients(args_list: list[list[str]]) -> float:
    """Wall time of several `salrt run` processes started together."""
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "salrt.cli", *a]) for a in args_list]
    for p in procs:
        assert p.wait() == 0
    return time.perf_counter() - t


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server-python", default=os.environ.get("SALRT_TRITON_PYTHON", sys.executable))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--out", default="benchmarks/results")
    a = ap.parse_args()
    ckpt = str(bundled_checkpoint())
    res: dict = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "model": "bundled demo model (tiny DiffSal), fp32 ONNX, 4 steps unrolled, batch 1..8",
        "server": "salrt serve (nvidia-pytriton's tritonserver, onnxruntime CPU in the Python backend), loopback",
    }
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        exp, repo = d / "exp", d / "repo"
        assert cli(["export", "--checkpoint", ckpt, "-o", str(exp), "--dynamic-batch", "1:4:8", "--quiet"]) == 0
        write_repository(exp, repo)
        t = time.perf_counter()
        server = spawn(repo, python=a.server_python, log=d / "server.log")
        res["server_start_s"] = round(time.perf_counter() - t, 2)
        try:
            local = OnnxRuntimeBackend(exp)
            remotes = {
                "http": TritonBackend(server.http_url, "diffsal"),
                "grpc": TritonBackend(server.grpc_url, "diffsal"),
            }
            g = local.manifest["graphs"]
            rng = np.random.default_rng(0)
            lat: dict = {}
            agree = 0.0
            for b in (1, 4, 8):
                v = rng.standard_normal((b, *g["video_encoder"]["inputs"]["video"]["shape"][1:])).astype(np.float32)
                au = rng.standard_normal((b, *g["audio_encoder"]["inputs"]["audio"]["shape"][1:])).astype(np.float32)
                n = rng.standard_normal((b, 1, *local.map_shape[1:])).astype(np.float32)
                x = (v, au, n)
                row = {"local_onnxruntime_ms": 1e3 * timed(local, x, a.rounds)}
                want = local.sample(*x[:2], steps=4, noise=n)
                for k, r in remotes.items():
                    row[f"triton_{k}_ms"] = 1e3 * timed(r, x, a.rounds)
                    agree = max(agree, float(np.abs(r.sample(v, au, steps=4, noise=n) - want).max()))
                lat[str(b)] = {k: round(x, 1) for k, x in row.items()}
                print(f"batch {b}: {lat[str(b)]}", flush=True)
            res["latency_per_request_ms"] = lat
            res["max_abs_diff_vs_local"] = agree
            clips = [
                make_clip(d / f"in{i}.mp4", seed=i, seconds=a.seconds, width=320, height=192).path for i in range(2)
            ]
            common = ["--outputs", "npy", "--quiet", "--batch", "4"]
            e2e = {
                "local_1_client_s": run_clients([["run", str(clips[0]), "-o", str(d / "l"), "--backend", "onnxruntime",
                                                  "--export-dir", str(exp), *common]]),
                "triton_1_client_s": run_clients([["run", str(clips[0]), "-o", str(d / "r"), "--backend", "triton",
                                                   "--url", server.grpc_url, *common]]),
                "triton_2_clients_s": run_clients([["run", str(c), "-o", str(d / f"r{i}"), "--backend", "triton",
                                                    "--url", server.grpc_url, *common] for i, c in enumerate(clips)]),
            }  # fmt: skip
            frames = int(round(a.seconds * 25))
            e2e["frames_per_input"] = frames
            e2e["throughput_frames_per_s"] = {
                "local_1_client": round(frames / e2e["local_1_client_s"], 2),
                "triton_1_client": round(frames / e2e["triton_1_client_s"], 2),
                "triton_2_clients": round(2 * frames / e2e["triton_2_clients_s"], 2),
            }
            res["salrt_run"] = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in e2e.items()}
        finally:
            server.stop()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "triton_cpu.json").write_text(json.dumps(res, indent=1))
    md = [
        f"# Triton serving ({res['machine']}, {res['date']})",
        "",
        f"{res['model']}; {res['server']}. Server start-up {res['server_start_s']} s. Medians of {a.rounds}.",
        "",
        "| batch | local onnxruntime ms | Triton HTTP ms | Triton gRPC ms |",
        "|---|---|---|---|",
    ]
    for b, row in res["latency_per_request_ms"].items():
        md.append(f"| {b} | {row['local_onnxruntime_ms']} | {row['triton_http_ms']} | {row['triton_grpc_ms']} |")
    s = res["salrt_run"]
    md += [
        "",
        f"Maps: max abs difference to the local backend {res['max_abs_diff_vs_local']:.1e}.",
        "",
        f"`salrt run` on {s['frames_per_input']}-frame inputs at batch 4 (process start included): local "
        f"{s['local_1_client_s']} s, through Triton {s['triton_1_client_s']} s (one client), two clients together "
        f"{s['triton_2_clients_s']} s ({s['throughput_frames_per_s']['triton_2_clients']} frames/s in all).",
    ]
    (out / "triton_cpu.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
