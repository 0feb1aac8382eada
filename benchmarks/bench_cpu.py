"""Every CPU path for DiffSal at paper size against the authors' own code, in one run.

Contenders (the same synthetic weights loaded into the authors' model and into salrt, the same
inputs, interleaved for ``--rounds`` rounds after a warm-up; medians):
- the authors' code (``benchmarks/reference/diffsal_reference.py`` over ``--reference DIR``);
- exact paths (max abs <= 1e-4 vs salrt torch fp32): torch eager, onnxruntime, OpenVINO (f32);
- approximate paths (CC vs fp32 reported; kept only as contenders, never defaults): OpenVINO with
  one DDIM step (the authors' released config samples with 1), onnxruntime with int8 dynamic
  quantisation of every MatMul/Gemm; on CPUs with native bf16 (AVX-512 BF16, AMX) also salrt torch
  bf16 and OpenVINO bf16 (4, 2 and 1 steps), what ``salrt run --precision bf16 [--steps N]`` runs.
Then, per backend, an op-level profile of one clip (classes: convolution, matmul, attention,
norm, interpolation, elementwise, layout/copy; share of time, achieved GFLOP/s or GB/s against
this machine's measured peaks), a roofline plot, and a latency/throughput sweep over batch.

Usage: python benchmarks/bench_cpu.py --reference /path/to/diff_sal [--rounds 3] [--batches 1,2,4]
       [--out benchmarks/results/cpu_paths_<isa>]   (one folder per kind of CPU: avx2, avx512_bf16_vnni)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))

from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend  # noqa: E402
from salrt.backends.openvino_backend import OpenVinoBackend  # noqa: E402
from salrt.export.onnx import export_onnx  # noqa: E402
from salrt.hardware import cpu_isa, cpu_name, cpu_native_bf16  # noqa: E402
from salrt.metrics import format_cc  # noqa: E402
from salrt.models.synthetic import synthetic_inputs  # noqa: E402

CLASSES = ("convolution", "matmul", "attention", "norm", "interpolation", "elementwise", "layout/copy")
COMPUTE = ("convolution", "matmul", "attention")


# -- op classes per backend --------------------------------------------------------------------
def torch_class(op: str) -> str | None:
    op = op.removeprefix("aten::")
    if "conv" in op:
        return "convolution"
    if op in ("addmm", "mm", "bmm", "matmul", "linear", "baddbmm"):
        return "matmul"
    if "scaled_dot_product" in op:
        return "attention"
    if "norm" in op:
        return "norm"
    if op.startswith("upsample") or "interpolate" in op:
        return "interpolation"
    if op in ("copy_", "cat", "constant_pad_nd", "clone", "contiguous", "pad", "empty", "empty_strided", "stack",
              "index", "index_select", "flip", "roll", "repeat", "expand", "resize_"):  # fmt: skip
        return "layout/copy"
    if op in ("view", "reshape", "transpose", "permute", "slice", "select", "as_strided", "narrow", "unsqueeze",
              "squeeze", "flatten", "unflatten", "t", "detach", "alias", "split", "chunk", "unbind", "_unsafe_view"):  # fmt: skip
        return None  # metadata only: no time of its own
    return "elementwise"


def ort_class(op: str) -> str:
    if op.startswith("Conv") or op == "FusedConv":
        return "convolution"
    if op in ("MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"):
        return "matmul"
    if op in ("Attention", "MultiHeadAttention", "Softmax"):
        return "attention"
    if "Norm" in op:
        return "norm"
    if op == "Resize":
        return "interpolation"
    if op in ("Transpose", "Reshape", "Concat", "Slice", "Gather", "Pad", "Expand", "Split", "Squeeze", "Unsqueeze",
              "Cast", "Identity", "Tile", "Flatten", "ReorderInput", "ReorderOutput"):  # fmt: skip
        return "layout/copy"
    return "elementwise"


def ov_class(node_type: str) -> str:
    t = node_type.lower()
    if "conv" in t:
        return "convolution"
    if t in ("matmul", "fullyconnected", "gemm", "innerproduct"):
        return "matmul"
    if "scaleddotproduct" in t or t in ("sdpa", "softmax"):
        return "attention"
    if t in ("mvn", "normalizel2", "batchnorm", "rmsnorm") or "norm" in t:
        return "norm"
    if "interpolate" in t or "resample" in t:
        return "interpolation"
    if t in ("reorder", "transpose", "reshape", "concatenation", "concat", "split", "gather", "pad", "broadcast",
             "strided_slice", "stridedslice", "slice", "squeeze", "unsqueeze", "convert", "shapeof", "tile"):  # fmt: skip
        return "layout/copy"
    return "elementwise"


# -- measurements ------------------------------------------------------------------------------
def peaks() -> dict[str, float]:
    """This machine's fp32 GEMM rate (torch, all threads), its bf16 GEMM rate where the CPU has native
    bf16, and the streaming bandwidth (a large add)."""

    # best of many after a warm-up second: on a shared VM a short burst can land in a slow moment
    # (one in-run measurement read 103 GFLOP/s where the machine sustains ~195)
    def gemm(dtype: torch.dtype) -> float:
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            torch.mm(a, b)
        return 2 * 2048**3 / min(_time(lambda: torch.mm(a, b)) for _ in range(20)) / 1e9

    x, y = torch.randn(64 * 2**20), torch.randn(64 * 2**20)
    out = torch.empty_like(x)
    torch.add(x, y, out=out)
    bw = min(_time(lambda: torch.add(x, y, out=out)) for _ in range(10))
    r = {"gemm_gflops": gemm(torch.float32), "bandwidth_gbs": 3 * x.numel() * 4 / bw / 1e9}
    if cpu_native_bf16():
        r["bf16_gemm_gflops"] = gemm(torch.bfloat16)
    return r


def _time(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def torch_profile(model: Any, inputs: tuple) -> dict[str, Any]:
    """Self time per class (torch.profiler), FLOPs per class (FlopCounterMode) and an estimate of
    bytes moved by the memory-bound classes (inputs read + an output of the first input's size)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    video, audio, noise = inputs
    with torch.no_grad():
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
            model.sample(video, audio, steps=4, noise=noise)
        counter = FlopCounterMode(display=False)
        with counter:
            model.sample(video, audio, steps=4, noise=noise)
    times: dict[str, float] = collections.defaultdict(float)
    nbytes: dict[str, float] = collections.defaultdict(float)
    for e in p.key_averages(group_by_input_shape=True):
        cls = torch_class(e.key)
        if cls is None:
            continue
        times[cls] += e.self_cpu_time_total / 1e6
        numels = [int(np.prod(s)) for s in (e.input_shapes or []) if isinstance(s, list) and s]
        if numels:
            nbytes[cls] += e.count * 4 * (sum(numels) + numels[0])
    flops: dict[str, float] = collections.defaultdict(float)
    for op, n in counter.get_flop_counts()["Global"].items():
        name = str(op).split(".")
        cls = torch_class(name[1] if name[0] == "aten" and len(name) > 1 else name[0]) or "elementwise"
        flops[cls] += n
    return {"seconds": dict(times), "flops": dict(flops), "bytes": dict(nbytes)}


def ort_profile(export: Path, feed: dict[str, np.ndarray], tmp: Path) -> dict[str, float]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp / "ort_profile")
    s = ort.InferenceSession(str(export / "sampler.onnx"), so, providers=["CPUExecutionProvider"])
    s.run(None, feed)
    trace = json.loads(Path(s.end_profiling()).read_text())
    times: dict[str, float] = collections.defaultdict(float)
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            times[ort_class(ev["args"].get("op_name", ""))] += ev["dur"] / 1e6
    return dict(times)


def ov_profile(export: Path, feed: dict[str, np.ndarray]) -> dict[str, float]:
    b = OpenVinoBackend(export, perf_count=True)
    b._run("sampler", feed)
    times: dict[str, float] = collections.defaultdict(float)
    for row in b.profile("sampler"):
        times[ov_class(row["type"])] += row["us"] / 1e6
    return dict(times)


def cc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


# -- the run -----------------------------------------------------------------------------------
def default_markdown(default: dict[str, Any], rows: list[dict[str, Any]], isa: str) -> str:
    """The table of ``--contenders-only``: every contender's median beside the authors' code."""
    lines = [
        f"# salrt's default CPU path vs the authors' code ({cpu_name()}, {isa}, {os.cpu_count()} threads)",
        "",
        "DiffSal paper size, batch 1, 4 DDIM steps, synthetic weights under the reference's names (random: speed "
        "and exactness only). `python benchmarks/bench_cpu.py --reference DIFF_SAL --contenders-only`.",
        "",
        f"Default path (`salrt run` with no `--backend`, no `--export-dir`): **{default['backend']}** over an export "
        f"made once into the cache; first use {default['first_use_s']} s (export + load: the one-time cost), "
        f"second use {default['second_use_s']} s (load only).",
        "",
        "| contender | kind | median s/clip | min | max | speed-up vs first row | max abs vs fp32 | CC vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['contender']} | {r['kind']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} | "
            f"{r['speedup_vs_first']:.2f}x | {r['max_abs_vs_fp32']:.1e} | {r['cc_vs_fp32']:.6f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", help="a checkout of junwenxiong/diff_sal (omit: no authors' row)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batches", default="1,2,4")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", help="results folder (default: benchmarks/results/cpu_paths_<this CPU's ISA>)")
    ap.add_argument("--contenders-only", action="store_true",
                    help="stop after the contenders' table (no op profiles, roofline or batch sweep)")  # fmt: skip
    ap.add_argument("--report-only", action="store_true",
                    help="re-measure the peaks and redraw the report and plots from OUT/cpu_paths.json")  # fmt: skip
    a = ap.parse_args()
    if a.report_only:
        return rerender(Path(a.out or _default_out()))
    torch.set_num_threads(a.threads)
    from diffsal_reference import ReferenceDiffSal, reference_weights, salrt_with

    isa = cpu_isa()
    out = Path(a.out or _default_out())
    out.mkdir(parents=True, exist_ok=True)
    batches = [int(x) for x in a.batches.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="salrt_cpu_"))
    weights = reference_weights(0)
    model = salrt_with(weights, tmp)
    ref = ReferenceDiffSal(a.reference, weights, steps=4) if a.reference else None
    # what `salrt run --checkpoint authors.pth` runs with no --backend and no --export-dir: the first
    # use exports once into the cache (timed: the one-time cost), the second reuses it
    from salrt import pipeline
    from salrt.spec import RunSpec

    authors_pth = tmp / "authors.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in weights.items()}}, authors_pth)
    default_spec = RunSpec(checkpoint=str(authors_pth), cache_dir=str(tmp / "cache"))
    t0 = time.perf_counter()
    first = pipeline.build(default_spec)
    first_use_s = time.perf_counter() - t0
    del first
    t0 = time.perf_counter()
    default = pipeline.build(default_spec)
    second_use_s = time.perf_counter() - t0
    print(
        f"default path ({default.spec.backend}): first use {first_use_s:.1f} s, second {second_use_s:.1f} s", flush=True
    )
    del weights
    c = model.config
    video, audio, noise = synthetic_inputs(c.video_shape, c.audio_shape, max(batches), seed=100)
    one = (video[:1], audio[:1], noise[:1])
    feed = {"video": one[0].numpy(), "audio": one[1].numpy(), "noise": one[2].numpy()}
    t0 = time.perf_counter()
    exp4, exp1 = tmp / "exp4", tmp / "exp1"
    export_onnx(model, exp4, batch=f"1:{min(2, max(batches))}:{max(batches)}", steps=4)
    export_onnx(model, exp1, batch="1", steps=1, graphs=("video_encoder", "audio_encoder", "denoiser", "sampler"))
    export_s = time.perf_counter() - t0
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8 = tmp / "int8"
    int8.mkdir()
    quantize_dynamic(str(exp4 / "sampler.onnx"), str(int8 / "sampler.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm"])  # fmt: skip
    man = json.loads((exp4 / "manifest.json").read_text())
    man["graphs"] = {"sampler": {**man["graphs"]["sampler"], "file": "sampler.onnx"}}
    man["graph_roles"] = {"sampler": "sampler"}
    (int8 / "manifest.json").write_text(json.dumps(man))
    ort4, ov4, ov1, ort8 = (OnnxRuntimeBackend(exp4), OpenVinoBackend(exp4), OpenVinoBackend(exp1),
                            OnnxRuntimeBackend(int8))  # fmt: skip
    bf16 = cpu_native_bf16()
    if bf16:  # what `salrt run --precision bf16` runs (torch: cast weights; OpenVINO: a hint over the fp32 graphs)
        model_bf16 = salrt_with(reference_weights(0), tmp).to(torch.bfloat16)
        ov4b, ov1b = OpenVinoBackend(exp4, precision="bf16"), OpenVinoBackend(exp1, precision="bf16")

    def tsample(m: Any) -> Any:
        return lambda v, au, n, steps=4: m.sample(v, au, steps=steps, noise=n)

    contenders: dict[str, dict[str, Any]] = {}
    if ref is not None:
        contenders["authors' code (PyTorch eager)"] = {"fn": lambda v, au, n: ref.sample(v, au, n), "kind": "baseline"}
    contenders[f"salrt default, no --backend (auto: {default.spec.backend})"] = {
        "fn": lambda v, au, n: default.backend.sample(v, au, steps=4, noise=n), "kind": "exact"}  # fmt: skip
    contenders["salrt torch eager fp32"] = {"fn": tsample(model), "kind": "exact"}
    contenders["salrt onnxruntime fp32"] = {
        "fn": lambda v, au, n: ort4.sample(v, au, steps=4, noise=n),
        "kind": "exact",
    }
    contenders["salrt OpenVINO fp32"] = {"fn": lambda v, au, n: ov4.sample(v, au, steps=4, noise=n), "kind": "exact"}
    contenders["OpenVINO, 1 DDIM step (released config)"] = {
        "fn": lambda v, au, n: ov1.sample(v, au, steps=1, noise=n), "kind": "approximate"}  # fmt: skip
    contenders["onnxruntime int8 dynamic (MatMul/Gemm)"] = {
        "fn": lambda v, au, n: ort8.sample(v, au, steps=4, noise=n), "kind": "approximate"}  # fmt: skip
    if bf16:
        contenders["salrt torch bf16"] = {
            "fn": lambda v, au, n: model_bf16.sample(v.bfloat16(), au.bfloat16(), steps=4, noise=n.bfloat16()),
            "kind": "approximate"}  # fmt: skip
        contenders["OpenVINO bf16"] = {
            "fn": lambda v, au, n: ov4b.sample(v, au, steps=4, noise=n),
            "kind": "approximate",
        }
        contenders["OpenVINO bf16, 2 DDIM steps"] = {
            "fn": lambda v, au, n: ov1b.sample(v, au, steps=2, noise=n), "kind": "approximate"}  # fmt: skip
        contenders["OpenVINO bf16, 1 DDIM step"] = {
            "fn": lambda v, au, n: ov1b.sample(v, au, steps=1, noise=n), "kind": "approximate"}  # fmt: skip
    to_np = lambda x: x.detach().float().numpy() if hasattr(x, "detach") else np.asarray(x)  # noqa: E731
    with torch.no_grad():
        want = to_np(model.sample(*one[:2], steps=4, noise=one[2]))
        for ct in contenders.values():  # warm-up, and the maps each path gives
            got = to_np(ct["fn"](*one))
            ct.update(max_abs=float(np.abs(got - want).max()), cc=cc(got, want), times=[])
        for r in range(a.rounds):
            for ct in contenders.values():
                ct["times"].append(_time(lambda ct=ct: ct["fn"](*one)))
            print(f"round {r}: " + ", ".join(f"{k.split(' (')[0]} {v['times'][-1]:.2f}" for k, v in contenders.items()),
                  flush=True)  # fmt: skip
    base = statistics.median(next(iter(contenders.values()))["times"])
    rows = []
    for name, ct in contenders.items():
        med = statistics.median(ct["times"])
        rows.append({"contender": name, "kind": ct["kind"], "median_s": round(med, 3), "min_s": round(min(ct["times"]), 3),
                     "max_s": round(max(ct["times"]), 3), "speedup_vs_first": round(base / med, 3),
                     "max_abs_vs_fp32": ct["max_abs"], "cc_vs_fp32": ct["cc"]})  # fmt: skip
    print(json.dumps(rows, indent=1), flush=True)
    default_row = {"backend": default.spec.backend, "first_use_s": round(first_use_s, 1),
                   "second_use_s": round(second_use_s, 1)}  # fmt: skip
    (out / "contenders.json").write_text(json.dumps(rows, indent=1))  # kept even if a later stage fails
    (out / "default_path.json").write_text(json.dumps({**default_row, "machine": {"cpu": cpu_name(), "isa": isa},
                                                        "rows": rows}, indent=1))  # fmt: skip
    if a.contenders_only:
        (out / "default_path.md").write_text(default_markdown(default_row, rows, isa))
        return None
    # free what the profiles and the sweep do not use (the authors' model, the approximate paths):
    # together they exceed 24 GB with the batch-4 sweep
    contenders.clear()
    ref = ort8 = ov1 = None  # noqa: F841
    if bf16:
        model_bf16 = ov1b = None  # noqa: F841
    import gc

    gc.collect()

    # op-level profiles
    pk = peaks()
    tp = torch_profile(model, one)
    profiles = {"torch": tp["seconds"], "onnxruntime": ort_profile(exp4, feed, tmp), "openvino": ov_profile(exp4, feed)}
    breakdown = {}
    for backend, secs in profiles.items():
        total = sum(secs.values())
        rows_b = {}
        for cls in CLASSES:
            s = secs.get(cls, 0.0)
            entry = {"seconds": round(s, 3), "share": round(s / total, 3) if total else 0.0}
            if cls in COMPUTE and tp["flops"].get(cls) and s:
                entry["gflops"] = round(tp["flops"][cls] / 1e9, 1)
                entry["achieved_gflops_per_s"] = round(tp["flops"][cls] / s / 1e9, 1)
            elif cls not in (*COMPUTE, "interpolation") and tp["bytes"].get(cls) and s:  # resize: output size unknown
                entry["est_gbytes"] = round(tp["bytes"][cls] / 1e9, 2)
                entry["achieved_gb_per_s"] = round(tp["bytes"][cls] / s / 1e9, 1)
            rows_b[cls] = entry
        breakdown[backend] = {"total_s": round(total, 3), "classes": rows_b}

    # latency / throughput over batch
    sweep: dict[str, dict[int, float]] = {}
    for name, fn in (("torch", tsample(model)), ("onnxruntime", lambda v, au, n: ort4.sample(v, au, steps=4, noise=n)),
                     ("openvino", lambda v, au, n: ov4.sample(v, au, steps=4, noise=n)),
                     *((("openvino bf16", lambda v, au, n: ov4b.sample(v, au, steps=4, noise=n)),) if bf16 else ())):  # fmt: skip
        sweep[name] = {}
        for b in batches:
            x = (video[:b], audio[:b], noise[:b])
            with torch.no_grad():
                fn(*x)
                sweep[name][b] = round(min(_time(lambda fn=fn, x=x: fn(*x)) for _ in range(2)), 3)
        print(name, sweep[name], flush=True)

    flops_clip = sum(tp["flops"].values())
    result = {
        "machine": f"{cpu_name()} {isa}, {os.cpu_count()} cores ({a.threads} threads)",
        "cpu_isa": isa,
        "date": time.strftime("%Y-%m-%d"),
        "versions": {
            "torch": torch.__version__,
            "onnxruntime": __import__("onnxruntime").__version__,
            "openvino": __import__("openvino").__version__,
        },  # fmt: skip
        "setup": "DiffSal paper size, batch 1, 4 DDIM steps (eta 0), synthetic weights under the reference's names, "
        f"interleaved rounds: {a.rounds}",
        "export_s": round(export_s, 1),
        "contenders": rows,
        "flops_per_clip_g": round(flops_clip / 1e9, 1),
        "breakdown": breakdown,
        "batch_sweep_s": sweep,
        "openvino_inference_precision": ov4.inference_precision,
    }
    apply_peaks(result, pk)
    write_results(result, out)


def _default_out() -> str:
    return f"benchmarks/results/cpu_paths_{'_'.join(re.findall(r'[a-z0-9]+', cpu_isa().lower().replace('-', '')))}"


def apply_peaks(r: dict[str, Any], pk: dict[str, float]) -> None:
    """Set the measured peaks on a result: each class's fraction of peak and the compute floors."""
    r["peaks"] = pk = {k: round(v, 1) for k, v in pk.items()}
    for b in r["breakdown"].values():
        for e in b["classes"].values():
            if "achieved_gflops_per_s" in e:
                e["of_peak"] = round(e["achieved_gflops_per_s"] / pk["gemm_gflops"], 3)
            elif "achieved_gb_per_s" in e:
                e["of_peak"] = round(e["achieved_gb_per_s"] / pk["bandwidth_gbs"], 3)
    r["compute_floor_s"] = round(r["flops_per_clip_g"] / pk["gemm_gflops"], 2)
    if "bf16_gemm_gflops" in pk:
        r["bf16_compute_floor_s"] = round(r["flops_per_clip_g"] / pk["bf16_gemm_gflops"], 2)


def write_results(r: dict[str, Any], out: Path) -> None:
    """cpu_paths.json, the plots and cpu_paths.md (also printed)."""
    (out / "cpu_paths.json").write_text(json.dumps(r, indent=1))
    plots(r, out)
    text = report(r)
    (out / "cpu_paths.md").write_text(text)
    print(text)


def rerender(out: Path) -> None:
    """Peaks measured again on an idle machine; fractions of peak, compute floors, report and plots
    recomputed from the run's own timings and FLOP counts (nothing else is re-timed)."""
    r = json.loads((out / "cpu_paths.json").read_text())
    r.setdefault("peaks_in_run", r["peaks"])  # a second re-render keeps what the run itself measured
    apply_peaks(r, peaks())
    write_results(r, out)


def plots(r: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pk = r["peaks"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharey=True)
    colors = dict(zip(CLASSES, plt.cm.tab10.colors))
    for ax, (backend, b) in zip(axes, r["breakdown"].items()):
        xs = np.logspace(-2, 3, 200)
        ax.loglog(xs, np.minimum(pk["gemm_gflops"], xs * pk["bandwidth_gbs"]), "k-", lw=1.5, label="roof (measured)")
        for cls, e in b["classes"].items():
            if "achieved_gflops_per_s" in e:  # compute classes: FLOPs over an estimate of bytes (torch shapes)
                ai = e["gflops"] / max(r["breakdown"]["torch"]["classes"][cls].get("est_gbytes", 0) or 1e-9, 1e-9)
                ai = min(ai, 900)
                ax.scatter(ai, e["achieved_gflops_per_s"], s=40 + 400 * e["share"], color=colors[cls], label=cls)
            elif "achieved_gb_per_s" in e:  # memory classes: ~1 FLOP per element moved (4 bytes)
                ax.scatter(0.25, e["achieved_gb_per_s"] * 0.25, s=40 + 400 * e["share"], color=colors[cls], label=cls,
                           marker="s")  # fmt: skip
        ax.set_title(f"{backend}: {b['total_s']:.2f} s/clip")
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("achieved GFLOP/s (marker area: share of the clip's time)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Roofline per backend, DiffSal paper size, {r['machine']} (peak {pk['gemm_gflops']:.0f} GFLOP/s, "
                 f"{pk['bandwidth_gbs']:.0f} GB/s)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(out / "roofline.png", dpi=110)
    plt.close(fig)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, pts in r["batch_sweep_s"].items():
        bs = sorted(int(b) for b in pts)
        lat = [pts[b] if b in pts else pts[str(b)] for b in bs]
        ax1.plot(bs, lat, "o-", label=name)
        ax2.plot(bs, [b / s for b, s in zip(bs, lat)], "o-", label=name)
    ax1.set(xlabel="batch (clips per call)", ylabel="seconds per call", title="latency vs batch")
    ax2.set(xlabel="batch (clips per call)", ylabel="clips per second", title="throughput vs batch")
    for ax in (ax1, ax2):
        ax.set_xticks(bs)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"DiffSal paper size, 4 steps, fp32 unless named, {r['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "batch_sweep.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.8))
    names = [c["contender"] for c in r["contenders"]]
    sp = [c["speedup_vs_first"] for c in r["contenders"]]
    col = ["#888888" if c["kind"] == "baseline" else "#2a7ab9" if c["kind"] == "exact" else "#e08a2c"
           for c in r["contenders"]]  # fmt: skip
    ax.barh(names[::-1], sp[::-1], color=col[::-1])
    for goal, ls in ((2.5, "--"), (4.0, ":")):
        ax.axvline(goal, color="k", ls=ls, lw=1)
    ax.axvline(r["contenders"][0]["median_s"] / r["compute_floor_s"], color="r", lw=1)
    ax.set_xlabel("speed-up vs the first row (blue exact, orange approximate)\n"
                  "dashed: 2.5x goal, dotted: 4x goal, red: this CPU's fp32 compute floor", fontsize=8)  # fmt: skip
    fig.tight_layout()
    fig.savefig(out / "speedup.png", dpi=110)
    plt.close(fig)


def report(r: dict[str, Any]) -> str:
    pk = r["peaks"]
    lines = [
        f"# CPU paths for DiffSal ({r['machine']}, {r['date']})",
        "",
        f"{r['setup']}. torch {r['versions']['torch']}, onnxruntime {r['versions']['onnxruntime']}, OpenVINO "
        f"{r['versions']['openvino']} (inference precision {r['openvino_inference_precision']}).",
        "",
        "| contender | kind | median s/clip | min | max | speed-up | max abs vs fp32 | CC vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in r["contenders"]:
        lines.append(f"| {c['contender']} | {c['kind']} | {c['median_s']:.2f} | {c['min_s']:.2f} | {c['max_s']:.2f} | "
                     f"{c['speedup_vs_first']:.2f}x | {c['max_abs_vs_fp32']:.1e} | {format_cc(c['cc_vs_fp32'])} |")  # fmt: skip
    lines += [
        "",
        f"Measured peaks: fp32 GEMM {pk['gemm_gflops']:.0f} GFLOP/s, streaming bandwidth {pk['bandwidth_gbs']:.0f} GB/s. "
        f"One clip is {r['flops_per_clip_g']:.0f} GFLOPs (torch's counter, eager path), so no fp32 path can take less than "
        f"{r['compute_floor_s']:.2f} s here (the compute floor)."
        + (
            f" bf16 GEMM {pk['bf16_gemm_gflops']:.0f} GFLOP/s: a bf16 floor of {r['bf16_compute_floor_s']:.2f} s."
            if "bf16_compute_floor_s" in r
            else " This CPU has no native bf16: no bf16 rows."
        )
        + (
            f" (Peaks re-measured on the idle machine after the run; in the run they read {r['peaks_in_run']}.)"
            if "peaks_in_run" in r
            else ""
        ),  # fmt: skip
        "",
        "Op-level breakdown of one clip: time per class (share), achieved rate and fraction of the measured peak.",
        "FLOPs per class are torch's counts of the eager path (the exported graphs run UpEmbed's first convolution",
        "with 36 GFLOPs fewer per step, so onnxruntime's and OpenVINO's convolution rates read high); bytes are estimated from torch's",
        "unfused op inputs (a fused backend moves less, so its fraction can read above 100%); onnxruntime and",
        "OpenVINO split attention into MatMul + Softmax (counted as matmul and elementwise/attention); the",
        "profilers' own overhead inflates their totals (OpenVINO's per-layer counters most).",
        "",
        "| class | " + " | ".join(r["breakdown"]) + " |",
        "|---|" + "---|" * len(r["breakdown"]),
    ]
    for cls in CLASSES:
        cells = []
        for b in r["breakdown"].values():
            e = b["classes"][cls]
            rate = (f", {e['achieved_gflops_per_s']} GFLOP/s ({100 * e['of_peak']:.0f}%)" if "achieved_gflops_per_s" in e
                    else f", ~{e['achieved_gb_per_s']} GB/s ({100 * e['of_peak']:.0f}%)" if "achieved_gb_per_s" in e else "")  # fmt: skip
            cells.append(f"{e['seconds']:.2f} s ({100 * e['share']:.0f}%){rate}")
        lines.append(f"| {cls} | " + " | ".join(cells) + " |")
    lines.append("| total | " + " | ".join(f"{b['total_s']:.2f} s" for b in r["breakdown"].values()) + " |")
    lines += ["", "Batch sweep (seconds per call):", "", "| backend | " + " | ".join(
        f"batch {b}" for b in next(iter(r["batch_sweep_s"].values()))) + " |"]  # fmt: skip
    lines.append("|---|" + "---|" * len(next(iter(r["batch_sweep_s"].values()))))
    for name, pts in r["batch_sweep_s"].items():
        lines.append(f"| {name} | " + " | ".join(f"{s:.2f} ({int(b) / s:.3f} clips/s)" for b, s in pts.items()) + " |")
    lines += ["", "Plots: `roofline.png`, `batch_sweep.png`, `speedup.png`."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
