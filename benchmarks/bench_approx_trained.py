"""The approximate paths on **trained** weights: the bundled demo DiffSal (tiny, trained on the
synthetic sounding-object task), where the random paper-size weights of ``bench_cpu.py`` made the
denoiser barely depend on its timestep. For each path: CC of its maps against the exact path's
(OpenVINO fp32, 4 DDIM steps, the same noise) and against the ground truth, on held-out clips.

Paths: OpenVINO bf16 (4 steps), OpenVINO fp32 with 2 and 1 steps, bf16 with 2 steps, onnxruntime
with int8 dynamic quantisation of MatMul/Gemm (4 steps).

    python benchmarks/bench_approx_trained.py [-o benchmarks/results/approx_trained] [--clips 8]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from salrt import metrics
from salrt.app.demo import bundled_checkpoint
from salrt.hardware import cpu_isa, cpu_name
from salrt.io import make_clip, open_media
from salrt.io.contract import InputContract
from salrt.io.imaging import resize_map


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seed", type=int, default=10_000)
    args = ap.parse_args()
    import torch

    import salrt
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.backends.openvino_backend import OpenVinoBackend
    from salrt.backends.torch_backend import cpu_precision_problem
    from salrt.export.onnx import export_onnx

    t0 = time.perf_counter()
    model = salrt.load_model("diffsal", checkpoint=str(bundled_checkpoint())).eval()
    contract = InputContract.of(model.config)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        exp = tmp / "exp"
        export_onnx(model, exp, batch="1:4:16", steps=4)
        from onnxruntime.quantization import QuantType, quantize_dynamic

        int8 = tmp / "int8"
        int8.mkdir()
        for f in exp.iterdir():
            if f.suffix == ".onnx":
                quantize_dynamic(
                    str(f), str(int8 / f.name), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
                )
            else:
                (int8 / f.name).write_bytes(f.read_bytes())
        bf16_ok = cpu_precision_problem("bf16") is None
        paths = {
            "exact (OpenVINO fp32, 4 steps)": (OpenVinoBackend(str(exp)), 4),
            "OpenVINO fp32, 2 steps": (OpenVinoBackend(str(exp)), 2),
            "OpenVINO fp32, 1 step": (OpenVinoBackend(str(exp)), 1),
            "onnxruntime int8 (MatMul/Gemm), 4 steps": (OnnxRuntimeBackend(str(int8)), 4),
        }
        if bf16_ok:
            paths["OpenVINO bf16, 4 steps"] = (OpenVinoBackend(str(exp), precision="bf16"), 4)
            paths["OpenVINO bf16, 2 steps"] = (OpenVinoBackend(str(exp), precision="bf16"), 2)
        rows: dict[str, dict[str, list[float]]] = {
            k: {"cc_vs_exact": [], "cc_vs_truth": [], "max_abs": []} for k in paths
        }
        formats = ((22050, 1), (44100, 2))
        for k in range(args.clips):
            c = make_clip(
                tmp / f"h{k}.mp4", seed=args.seed + k, sample_rate=formats[k % 2][0], channels=formats[k % 2][1]
            )
            clips = list(open_media(str(c.path), stride=4, **contract.media_options()))
            v = np.stack([x.video for x in clips])
            a = np.stack([x.audio for x in clips])
            noise = np.random.default_rng(k).standard_normal((len(clips), 1, *contract.size)).astype(np.float32)
            maps = {
                name: np.asarray(b.sample(v, a, steps=s, noise=noise), np.float32)[:, 0]
                for name, (b, s) in paths.items()
            }
            exact = maps["exact (OpenVINO fp32, 4 steps)"]
            for name, m in maps.items():
                for j, x in enumerate(clips):
                    g = c.saliency[x.target_index]
                    rows[name]["cc_vs_exact"].append(metrics.cc(m[j], exact[j]))
                    rows[name]["cc_vs_truth"].append(metrics.cc(resize_map(np.clip(m[j], 0, 1), g.shape), g))
                    rows[name]["max_abs"].append(float(np.abs(m[j] - exact[j]).max()))
    res = {
        "command": "python benchmarks/bench_approx_trained.py",
        "machine": f"{cpu_name()} ({torch.get_num_threads()} threads, {cpu_isa()}), {platform.platform()}",
        "weights": "the bundled demo DiffSal (tiny config, trained on the synthetic sounding-object task)",
        "clips": args.clips,
        "bf16_available": bf16_ok,
        "paths": {
            name: {
                "cc_vs_exact": round(float(np.mean(r["cc_vs_exact"])), 5),
                "min_cc_vs_exact": round(float(np.min(r["cc_vs_exact"])), 5),
                "cc_vs_truth": round(float(np.mean(r["cc_vs_truth"])), 4),
                "max_abs_vs_exact": float(f"{max(r['max_abs']):.2e}"),
            }  # fmt: skip
            for name, r in rows.items()
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(res, indent=1))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "approx_trained.json").write_text(json.dumps(res, indent=1) + "\n")
        lines = [
            f"Approximate paths on the trained demo DiffSal, {args.clips} held-out synthetic clips, {res['machine']}",
            "",
            "| path | CC vs exact (mean) | CC vs exact (worst map) | max abs vs exact | CC vs ground truth |",
            "|---|---|---|---|---|",
        ]
        for name, r in res["paths"].items():
            lines.append(f"| {name} | {metrics.format_cc(r['cc_vs_exact'])} | {metrics.format_cc(r['min_cc_vs_exact'])} | {r['max_abs_vs_exact']:.1e} | "
                         f"{r['cc_vs_truth']:.4f} |")  # fmt: skip
        (out / "approx_trained.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
