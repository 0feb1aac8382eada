"""The prepared GPU check (run by ``benchmarks/gpu/check.sh``): one command, one output folder,
summary printed last. Steps, each with its own time budget inside a global deadline (a step that
fails or runs out of time is recorded and the next one runs):

1. env: GPU, driver, torch, Triton, CUDA.
2. kernel parity at every real shape of every model's kernels (from the kernel launch recorder),
   fp32 with TF32 off, fp32 with TF32, fp16, bf16; the attention autotuner's choices saved as
   ``tuned_configs.json`` in the format ``salrt/kernels/tuned_configs.json`` ships.
3. the full test suite on CUDA (pytest-xdist when installed).
4. ``salrt bench`` for DiffSal at paper size: batch 1 and a large batch, fp32/fp16/bf16,
   eager / torch.compile / Triton kernels / CUDA graphs on and off, against the reference-style
   loop in the same run.
5. the Triton kernels against eager and SDPA with achieved bandwidth vs a measured copy
   (``benchmarks/bench_kernels.py``).
6. ``salrt bench`` for the other four models (bf16, batch 1 and 8).
7. the end-to-end runtime on a generated 1080p H.264 clip at stride 8 (bf16, Triton kernels, batch
   8), as a share of the same model alone.
8. live streams: how many paced 30 fps 1080p streams one GPU keeps in real time at stride 8 with
   p99 latency < 500 ms (``benchmarks/bench_live.py``).
9. training throughput of every model at paper size (bf16 autocast, batch 8).

``--dry-run`` rehearses every step on CPU at tiny sizes (no CUDA needed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Check:
    def __init__(self, out: Path, budget_s: float, dry: bool) -> None:
        self.out, self.dry = out, dry
        self.deadline = time.monotonic() + budget_s
        self.results: dict[str, Any] = {"dry_run": dry, "steps": {}}
        self.log = (out / "check.log").open("a")

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def say(self, text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def step(self, name: str, budget: float, fn: Any) -> None:
        limit = min(budget, self.left() - 5)
        if limit < 10:
            self.results["steps"][name] = {"status": "skipped: out of time"}
            self.say(f"{name}: skipped (out of time)")
            return
        self.say(f"{name}: start (budget {limit:.0f} s)")
        t0 = time.monotonic()
        try:
            res = fn(limit)
            status = "ok"
        except subprocess.TimeoutExpired:
            res, status = None, f"timed out after {limit:.0f} s"
        except Exception as exc:  # recorded, the next step runs
            res, status = None, f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        self.results["steps"][name] = {"status": status, "seconds": round(time.monotonic() - t0, 1), "result": res}
        self.say(f"{name}: {status} in {time.monotonic() - t0:.0f} s")
        self.save()

    def sh(self, cmd: list[str], timeout: float, log_name: str | None = None) -> subprocess.CompletedProcess:
        """Run a command; its output goes to check.log (and to ``log_name`` under the output)."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.dry:
            env["CUDA_VISIBLE_DEVICES"] = ""
        self.say("$ " + " ".join(cmd))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        text = r.stdout + r.stderr
        self.log.write(text[-20000:] + "\n")
        if log_name:
            (self.out / log_name).write_text(text)
        if r.returncode != 0:
            raise RuntimeError(f"exit {r.returncode}: {text.strip().splitlines()[-1] if text.strip() else ''}")
        return r

    def save(self) -> None:
        (self.out / "results.json").write_text(json.dumps(self.results, indent=1, default=str))


# ----------------------------------------------------------------------------- steps
def env_info(c: Check, limit: float) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "host": platform.node(),
        "cpus": os.cpu_count(),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sm=f"{p.major}{p.minor}")
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["nvidia_smi"] = smi.stdout.strip()
        except OSError:
            pass
    try:
        import av

        info["av"] = av.__version__
    except ImportError:
        info["av"] = None
    c.results["env"] = info
    return info


def kernel_parity(c: Check, limit: float) -> dict[str, Any]:
    """Every recorded kernel shape of every model against its reference, per precision."""
    import torch

    from salrt.app.aot import kernel_launches
    from salrt.kernels import eca
    from salrt.kernels.ddim import ddim_update, ddim_update_reference
    from salrt.kernels.resize import resize_tap_sum, resize_tap_sum_reference

    dev = "cpu" if c.dry else "cuda"
    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    launches = kernel_launches(None, ["bf16"])  # shapes; dtype is varied below
    rows = []

    def err(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-6))

    for spec, _models in launches:
        nums = dict(re.findall(r"(\w+)=(\d+)", spec.shape))
        for prec in ("fp32", "tf32", "fp16", "bf16"):
            dtype = dtypes["fp32" if prec == "tf32" else prec]
            g = torch.Generator().manual_seed(0)
            torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
            try:
                if spec.kernel == "eca_attention":
                    lq, lk, d = int(nums["LQ"]), int(nums["LK"]), int(nums["D"])
                    q, k, v = (torch.randn(1, 2, n, d, generator=g).to(dev) for n in (lq, lk, lk))
                    ref = eca.attention_reference(q, k, v, (2 * d) ** -0.5)
                    got = eca.attention(q.to(dtype), k.to(dtype), v.to(dtype), (2 * d) ** -0.5)
                    path = eca.attention_precision(dtype, d) or "sdpa"
                elif spec.kernel == "eca_compress":
                    ch, kk = int(nums["C"]), int(nums["k"])
                    h, w = 3 * kk, 6 * kk
                    x = torch.randn(1, ch, h, w, generator=g).to(dev)
                    wt, lw, lb = (torch.randn(*s, generator=g).to(dev) for s in ((ch, kk, kk), (ch,), (ch,)))
                    ref = eca.compress_tokens_reference(x, wt, lw, lb, kk)
                    got = eca.compress_tokens(x.to(dtype), wt.to(dtype), lw.to(dtype), lb.to(dtype), kk)
                    path = "kernel"
                elif spec.kernel == "resize_tap_sum":
                    co, h, w, n_in, dil = (int(nums[k]) for k in ("CO", "H", "W", "N", "DIL"))
                    if c.dry:  # the interpreter takes minutes at real shapes: a rehearsal at an eighth
                        co, h, w = min(co, 8), max(16, h // 8), max(32, w // 8)
                    sizes = [(h // 2 ** (i + 1), w // 2 ** (i + 1)) for i in range(n_in)][::-1]
                    taps = [torch.randn(1, 9 * co, hh, ww, generator=g).to(dev) for hh, ww in sizes]
                    bias = torch.randn(co, generator=g).to(dev)
                    ref = resize_tap_sum_reference(taps, co, (h, w), dil, bias)
                    got = resize_tap_sum([t.to(dtype) for t in taps], co, (h, w), dil, bias.to(dtype))
                    path = "kernel"
                else:
                    x0 = torch.rand(2, 1, 224, 384, generator=g).to(dev)
                    xt = torch.randn(2, 1, 224, 384, generator=g).to(dev)
                    coef = {"recip_sqrt": 1.2, "recipm1_sqrt": 0.7, "a_next_sqrt": 0.9, "c1": 0.0, "c2": 0.3}
                    coef["final"] = float(nums.get("FINAL", "0") == "1")
                    ref = ddim_update_reference(x0, xt, coef)
                    got = ddim_update(x0.to(dtype), xt.to(dtype), coef)
                    path = "kernel"
                rows.append(
                    {
                        "kernel": spec.kernel,
                        "shape": spec.shape,
                        "precision": prec,
                        "path": path,
                        "rel_err": err(got, ref),
                    }
                )
            finally:
                torch.backends.cuda.matmul.allow_tf32 = False
    (c.out / "tuned_configs.json").write_text(
        json.dumps({c.results["env"].get("gpu", "cpu"): eca.tuned_configs()}, indent=1)
    )
    tol = {"fp32": 1e-5, "tf32": 3e-3, "fp16": 1e-2, "bf16": 3e-2}
    bad = [r for r in rows if not r["rel_err"] < tol[r["precision"]]]
    if bad:
        raise RuntimeError(f"{len(bad)} parity rows over tolerance, first: {bad[0]}")
    return {"rows": rows}


def tests(c: Check, limit: float) -> dict[str, Any]:
    import importlib.util

    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    if importlib.util.find_spec("xdist") is not None and not c.dry:
        cmd += ["-n", str(min(12, os.cpu_count() or 4))]
    if c.dry:  # a rehearsal: the kernels' real shapes and the CUDA-graph tests (skipped on CPU)
        cmd += ["tests/kernels/test_kernels.py", "-k", "real_shapes and fp16", "tests/kernels/test_cuda_graphs.py"]
    cmd += ["--junitxml", str(c.out / "tests.xml")]
    try:
        r = c.sh(cmd, limit, log_name="tests.log")
        text = r.stdout + r.stderr
    except RuntimeError:
        text = (c.out / "tests.log").read_text()
        summary = text.strip().splitlines()[-1] if text.strip() else ""
        failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
        raise RuntimeError(f"{summary}; failing: {failed[:12]}") from None
    return {"summary": text.strip().splitlines()[-1]}


def _bench(c: Check, limit: float, args: list[str], name: str) -> dict[str, Any]:
    out = c.out / "tmp" / name
    cmd = [sys.executable, "-m", "salrt.cli", "bench", *args, "-o", str(out), "-q"]  # the `salrt bench` command
    c.sh(cmd, limit)
    found = {}
    for f in sorted(out.rglob("bench.json")) + sorted(out.rglob("models.json")):
        found[str(f.relative_to(out))] = json.loads(f.read_text())
    for f in sorted(out.rglob("*.md")):
        with (c.out / "summary_tables.md").open("a") as md:
            md.write(f"\n### {name}: {f.relative_to(out)}\n\n{f.read_text()}\n")
    return found


def bench_diffsal(c: Check, limit: float) -> dict[str, Any]:
    if c.dry:
        args = ["--model", "diffsal", "--config", "tiny", "--device", "cpu", "--precision", "fp32,bf16"]
        args += ["--batch", "1,2", "--reps", "2", "--backend", "torch"]
    else:
        args = ["--model", "diffsal", "--device", "cuda", "--precision", "fp32,fp16,bf16", "--batch", "1,16"]
        args += ["--kernels", "torch,triton", "--cuda-graphs", "on,off", "--reps", "10", "--warmup", "2"]
        args += ["--backend", "torch"]
    res = _bench(c, limit * 0.8, args, "diffsal")
    if not c.dry:  # torch.compile as a contender, bf16 at batch 1 (compile time dominates)
        try:
            res.update(
                {
                    f"compile/{k}": v
                    for k, v in _bench(
                        c,
                        max(30.0, c.left() - 5) if c.left() < limit * 0.2 else limit * 0.2,
                        ["--model", "diffsal", "--device", "cuda", "--precision", "bf16", "--batch", "1"]
                        + ["--backend", "torch-compile", "--reps", "10", "--warmup", "2"],
                        "diffsal_compile",
                    ).items()
                }
            )
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            res["compile"] = f"failed: {exc}"
    return res


def throughput_sweep(c: Check, limit: float) -> dict[str, Any]:
    """DiffSal bf16 with the kernels and CUDA graphs over a batch sweep: the best-batch throughput
    (issue 17's goal: >= 300 clips/s) and the latency/throughput-vs-batch curve."""
    if c.dry:
        args = ["--model", "diffsal", "--config", "tiny", "--device", "cpu", "--batch", "1,2,4", "--reps", "2"]
    else:
        args = ["--model", "diffsal", "--device", "cuda", "--precision", "bf16", "--kernels", "triton"]
        args += ["--cuda-graphs", "on", "--batch", "1,4,16,32,64", "--reps", "5", "--warmup", "2"]
    return _bench(c, limit, args, "throughput_sweep")


def goals(c: Check) -> list[str]:
    """Issue 17's GPU goals checked against what this run measured (DiffSal, paper size)."""
    rows = []
    for step in ("bench_diffsal", "throughput_sweep"):
        for doc in (c.results["steps"].get(step, {}).get("result") or {}).values():
            if isinstance(doc, dict) and doc.get("model") == "diffsal":
                rows += doc.get("rows", [])
    if not rows:
        return ["", "Goals: not measured (no DiffSal rows)."]
    ref = [r for r in rows if r.get("backend") == "reference-style" and r.get("batch") == 1]
    fast = [r for r in rows if r.get("precision") == "bf16" and r.get("backend") != "reference-style"]
    b1 = min((r for r in fast if r.get("batch") == 1), key=lambda r: r["latency_ms"]["p50"], default=None)
    best = max(fast, key=lambda r: r.get("clips_per_s", 0), default=None)
    out = ["", "Goals (issue 17, DiffSal paper size, bf16, 4 steps):", "", "| goal | measured | met |", "|---|---|---|"]
    if b1:
        lat = b1["latency_ms"]["p50"]
        out.append(
            f"| batch-1 latency <= 8 ms | {lat:.2f} ms ({b1.get('kernels')}, graphs) | {'yes' if lat <= 8 else 'no'} |"
        )
        acc = b1.get("cc_vs_fp32", 0) >= 0.999 and b1.get("max_abs_vs_fp32", 1) <= 1e-2
        out.append(f"| CC >= 0.999, max abs <= 1e-2 vs fp32 | CC {b1.get('cc_vs_fp32', 0):.5f}, "
                   f"max abs {b1.get('max_abs_vs_fp32', 0):.1e} | {'yes' if acc else 'no'} |")  # fmt: skip
        if ref:
            x = ref[0]["latency_ms"]["p50"] / lat
            out.append(f"| >= 15x the reference-style fp32 loop | {x:.1f}x | {'yes' if x >= 15 else 'no'} |")
    if best:
        cps = best["clips_per_s"]
        out.append(f"| best-batch throughput >= 300 clips/s | {cps:.0f} clips/s at batch {best['batch']} | "
                   f"{'yes' if cps >= 300 else 'no'} |")  # fmt: skip
    for doc in (c.results["steps"].get("end_to_end", {}).get("result") or {}).values():
        e = doc.get("end_to_end") if isinstance(doc, dict) else None
        if e and "of_model_only" in e:
            out.append(f"| 1080p end to end >= 90% of model-only (batch {e['batch']}) | {100 * e['of_model_only']:.0f}% "
                       f"({e['clips_per_s']:.1f} vs {e['model_only_clips_per_s']:.1f} clips/s) | "
                       f"{'yes' if e['of_model_only'] >= 0.9 else 'no'} |")  # fmt: skip
    live = c.results["steps"].get("live_streams", {}).get("result") or {}
    if "streams_kept_real_time" in live:
        out.append(f"| live 30 fps 1080p streams at stride 8, p99 < 500 ms (report) | "
                   f"{live['streams_kept_real_time']} streams | - |")  # fmt: skip
    return out


def bench_kernels(c: Check, limit: float) -> dict[str, Any]:
    if c.dry:
        return {"skipped": "needs CUDA (dry run)"}
    out = c.out / "tmp" / "kernels"
    res = {}
    for dt in ("bf16", "fp16"):
        c.sh([sys.executable, "benchmarks/bench_kernels.py", "--dtype", dt, "--out", str(out)], limit / 2)
        res[dt] = {f.name: json.loads(f.read_text()) for f in sorted(out.glob("*.json"))}
    return res


def bench_others(c: Check, limit: float) -> dict[str, Any]:
    if c.dry:
        args = ["--model", "mubic,tavdiff,avrsp,dtfsal", "--config", "tiny", "--device", "cpu", "--reps", "1"]
    else:
        args = ["--model", "mubic,tavdiff,avrsp,dtfsal", "--device", "cuda", "--precision", "fp32,bf16"]
        args += ["--batch", "1,8", "--reps", "10", "--warmup", "2"]
    return _bench(c, limit, args, "others")


def end_to_end(c: Check, limit: float) -> dict[str, Any]:
    from salrt.io import make_clip

    w, h, secs = (320, 180, 1.0) if c.dry else (1920, 1080, 8.0)
    clip = make_clip(c.out / "tmp" / f"clip_{h}p.mp4", seed=3, width=w, height=h, seconds=secs, fps=30)
    args = ["--model", "diffsal", "--video", str(clip.path), "--stride", "8", "--reps", "2" if c.dry else "5"]
    if c.dry:
        args += ["--config", "tiny", "--device", "cpu"]
    else:
        args += ["--device", "cuda", "--precision", "bf16", "--batch", "8", "--kernels", "triton"]
    return _bench(c, limit, args, "end_to_end")


def live_streams(c: Check, limit: float) -> dict[str, Any]:
    """How many paced 30 fps 1080p streams one GPU keeps in real time (benchmarks/bench_live.py)."""
    out = c.out / "tmp" / "live.json"
    if c.dry:
        args = ["--config", "tiny", "--width", "320", "--height", "180", "--seconds", "2", "--streams", "1,2"]
        args += ["--batch", "2"]
    else:
        args = ["--device", "cuda", "--precision", "bf16", "--kernels", "triton", "--seconds", "6"]
    args += ["--time-limit", str(max(10, int(limit - 25))), "--out", str(out)]
    c.sh([sys.executable, str(ROOT / "benchmarks" / "bench_live.py"), *args], limit, "live_streams.log")
    return json.loads(out.read_text())


def train_throughput(c: Check, limit: float) -> dict[str, Any]:
    """Training clips/s of every model (benchmarks/bench_train.py): bf16 autocast at paper size."""
    out = c.out / "tmp" / "train"
    if c.dry:
        args = ["--config", "tiny", "--device", "cpu", "--batch", "2", "--reps", "1"]
    else:
        args = ["--config", "paper", "--device", "cuda", "--precision", "bf16", "--batch", "8", "--reps", "3"]
    c.sh([sys.executable, "benchmarks/bench_train.py", *args, "-o", str(out)], limit)
    found = {f.name: json.loads(f.read_text()) for f in sorted(out.glob("*.json"))}
    for f in sorted(out.glob("*.md")):
        with (c.out / "summary_tables.md").open("a") as md:
            md.write(f"\n### training throughput\n\n{f.read_text()}\n")
    return found


def summarise(c: Check) -> str:
    env = c.results.get("env", {})
    lines = [
        f"# salrt GPU check{' (dry run, CPU)' if c.dry else ''}",
        "",
        f"{env.get('gpu', 'no GPU')} | torch {env.get('torch')} | CUDA {env.get('cuda')} | Triton {env.get('triton')}"
        f" | PyAV {env.get('av')} | {env.get('nvidia_smi', '')}",
        "",
        "| step | status | seconds |",
        "|---|---|---|",
    ]
    for name, s in c.results["steps"].items():
        lines.append(f"| {name} | {s['status']} | {s.get('seconds', '-')} |")
    par = (c.results["steps"].get("kernel_parity", {}).get("result") or {}).get("rows", [])
    if par:
        lines += ["", "Kernel parity (max relative error):", "", "| kernel | shape | fp32 | tf32 | fp16 | bf16 |"]
        lines.append("|---|---|---|---|---|---|")
        for r in par:  # the recorded shape names the dot precision of one dtype: the table has a column per precision
            r["shape"] = re.sub(r",(ieee|tf32)$", "", r["shape"])
        keys = sorted({(r["kernel"], r["shape"]) for r in par})
        for k in keys:
            cells = {r["precision"]: f"{r['rel_err']:.1e} ({r['path']})" for r in par if (r["kernel"], r["shape"]) == k}
            lines.append(
                f"| {k[0]} | {k[1]} | " + " | ".join(cells.get(p, "-") for p in ("fp32", "tf32", "fp16", "bf16")) + " |"
            )
    lines += goals(c)
    tables = c.out / "summary_tables.md"
    if tables.exists():
        lines += ["", tables.read_text()]
    return "\n".join(lines) + "\n"


def plot(c: Check) -> None:
    """Latency per DiffSal configuration (batch 1) as one bar chart."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    res = (c.results["steps"].get("bench_diffsal", {}).get("result") or {}).get("bench.json")
    if not res:
        return
    rows = [r for r in res["rows"] if "skipped" not in r and r["batch"] == min(x["batch"] for x in res["rows"])]
    if not rows:
        return
    labels = [
        f"{r['backend']} {r['precision']} {r['kernels']}" + ("" if r.get("cuda_graphs", True) else " no-graphs")
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    ax.barh(labels, [r["latency_ms"]["p50"] for r in rows])
    ax.set_xlabel("ms per clip (p50)")
    ax.set_title(f"DiffSal, batch {rows[0]['batch']}, {res.get('device')}")
    fig.tight_layout()
    fig.savefig(c.out / "diffsal_latency.png", dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=os.environ.get("OUT") or "gpu_check_out")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for all steps (the check aims at < 8 min)")
    ap.add_argument("--dry-run", action="store_true", help="rehearse on CPU at tiny sizes")
    args = ap.parse_args(argv)
    out = Path(args.output)
    (out / "tmp").mkdir(parents=True, exist_ok=True)
    c = Check(out, args.budget, args.dry_run)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("benchmarks/gpu/check.py: error: no CUDA GPU (use --dry-run to rehearse on CPU)", file=sys.stderr)
            return 2
    c.step("env", 60, lambda lim: env_info(c, lim))
    c.step("kernel_parity", 60, lambda lim: kernel_parity(c, lim))
    c.step("tests", 160, lambda lim: tests(c, lim))
    c.step("bench_diffsal", 150, lambda lim: bench_diffsal(c, lim))
    c.step("throughput_sweep", 40, lambda lim: throughput_sweep(c, lim))
    c.step("bench_kernels", 40, lambda lim: bench_kernels(c, lim))
    c.step("bench_others", 70, lambda lim: bench_others(c, lim))
    c.step("end_to_end", 60, lambda lim: end_to_end(c, lim))
    c.step("live_streams", 70, lambda lim: live_streams(c, lim))
    c.step("train_throughput", 60, lambda lim: train_throughput(c, lim))
    c.save()
    plot(c)
    text = summarise(c)
    (out / "summary.md").write_text(text)
    import shutil

    shutil.rmtree(out / "tmp", ignore_errors=True)  # the merged results are in results.json
    tables = out / "summary_tables.md"
    tables.unlink(missing_ok=True)
    print("\n" + text)
    return 0 if all(s["status"] == "ok" for s in c.results["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
