"""`salrt bench`: latency, throughput, FLOPs and memory of models, backends, precisions, batches
and step counts, with the reference-style execution as the baseline in the same run.

Timing: warm-up runs excluded, CUDA events on GPU (perf_counter on CPU), ``reps`` repetitions
with inputs rotated among ``reps`` different random (never zero) clips, median and percentiles.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from salrt.backends.base import to_numpy
from salrt.errors import UsageError
from salrt.hardware import cpu_isa, cpu_name
from salrt.memory import peak_memory_mb, reset_peak_memory
from salrt.metrics import format_cc, pearson
from salrt.models.synthetic import synthetic_inputs
from salrt.pipeline import load_weights
from salrt.spec import RunSpec

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------- machine
def machine_info(device: str) -> dict[str, Any]:
    info = {
        "cpu": cpu_name(),
        "cpu_isa": cpu_isa(),
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for mod in ("onnxruntime", "triton", "tensorrt", "av"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[[], Any], device: str) -> float:
    """Seconds of one call: CUDA events on GPU, perf_counter on CPU."""
    if device.startswith("cuda"):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        return a.elapsed_time(b) / 1e3
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def matmul_peak(device: str, dtype: torch.dtype, reps: int = 5) -> float:
    """Measured dense matmul TFLOP/s of this device and dtype (square GEMM, best of ``reps``)."""
    n = 8192 if device.startswith("cuda") else 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    _sync(device)
    return 2 * n**3 / min(time_call(lambda: a @ b, device) for _ in range(reps)) / 1e12


# ----------------------------------------------------------------------------- configurations
@dataclasses.dataclass(frozen=True)
class Config:
    backend: str
    precision: str
    batch: int
    steps: int
    kernels: str
    cuda_graphs: bool = True  # torch backends on CUDA: whole clips as graph replays


def _skip_reason(c: Config, device: str) -> str | None:
    from salrt import backends

    if c.backend == "auto":
        return "--backend auto is not timed by salrt bench: name the backends"
    try:
        cls = backends.get(c.backend)
    except UsageError as exc:
        return str(exc)
    if not cls.installed():
        return f"{cls.library} is not installed"
    if not cls.runs_on(device):
        return f"backend {cls.name} runs on {', '.join(cls.devices)}"
    if cls.needs_server:
        return f"backend {cls.name} runs on a server: benchmarks/bench_triton.py times it"
    if c.kernels == "triton" and not device.startswith("cuda"):
        return "Triton kernels need a CUDA device"
    if cls.needs_export and cls.graph_precision(c.precision) not in ("fp32", "fp16"):
        return f"{c.precision} is not an ONNX export precision, and backend {cls.name} runs its export's"
    return cls.precision_problem(c.precision, device)


class Bench:
    """Runs every configuration of one model and collects rows."""

    def __init__(
        self,
        model_name: str = "diffsal",
        config: str = "paper",
        device: str = "cpu",
        reps: int = 5,
        warmup: int = 1,
        stride: int = 1,
        checkpoint: str | None = None,
        log: Callable[[str], None] | None = None,
        cache_dir: str | None = None,
    ) -> None:
        self.model_name, self.config_name, self.device = model_name, config, device
        self.reps, self.warmup, self.stride = max(1, reps), max(0, warmup), stride
        self.checkpoint, self.cache_dir = checkpoint, cache_dir
        self.log = log or (lambda s: None)
        # timing does not depend on the weights: synthetic ones when no checkpoint is given
        spec = RunSpec(
            model=model_name, config=config, device=device, checkpoint=checkpoint, random_weights=checkpoint is None
        )
        self.model = load_weights(spec.validated())
        self.cfg = self.model.config
        self._inputs: dict[int, list[tuple[torch.Tensor, ...]]] = {}
        self._fp32_ref: dict[tuple[int, int], np.ndarray] = {}
        self._peaks: dict[str, float] = {}

    @property
    def diffusion(self) -> bool:
        return self.model.kind == "diffusion"

    def inputs(self, batch: int) -> list[tuple[Any, ...]]:
        """(video, audio, x_T, conditions) per repetition; conditions e.g. TAVDiff caption ids."""
        if batch not in self._inputs:
            c = self.cfg
            sets = []
            for s in range(self.reps):
                v, a, n = (
                    x.to(self.device) for x in synthetic_inputs(c.video_shape, c.audio_shape, batch, seed=100 + s)
                )
                cond = {}
                for name, (shape, dtype) in self.model.condition_shapes().items():
                    g = torch.Generator().manual_seed(200 + s)
                    ids = torch.randint(1, 1000, (batch, *shape), generator=g, dtype=dtype)
                    ids[:, 12:] = 0  # a 10-word caption: the rest is padding
                    cond[name] = ids.to(self.device)
                sets.append((v, a, n, cond))
            self._inputs[batch] = sets
        return self._inputs[batch]

    def peak(self, precision: str) -> float:
        key = "fp32" if precision == "fp32" else "bf16" if precision == "bf16" else "fp16"
        if key not in self._peaks:
            self._peaks[key] = matmul_peak(self.device, DTYPES[key])
        return self._peaks[key]

    def fp32_reference(self, batch: int, steps: int) -> np.ndarray:
        if (batch, steps) not in self._fp32_ref:
            v, a, n, cond = self.inputs(batch)[0]
            self._fp32_ref[(batch, steps)] = to_numpy(self.model.sample(v, a, steps=steps, noise=n, **cond))
        return self._fp32_ref[(batch, steps)]

    def torch_model(self, precision: str, kernels: str) -> Any:
        """The model in ``precision`` with ``kernels`` (a copy unless fp32 with torch kernels)."""
        if precision == "fp32" and kernels != "triton":
            return self.model
        m = copy.deepcopy(self.model).to(DTYPES[precision])  # one copy: the base model stays fp32 eager
        if kernels == "triton":
            from salrt import kernels as salrt_kernels

            m = salrt_kernels.enable(m)
        return m

    def _callable(self, c: Config) -> tuple[Callable[[tuple[torch.Tensor, ...]], Any], Callable[[Any], Any]]:
        """``(fn, count)``: ``fn(inputs)`` samples one batch; ``count(inputs)`` does the same and
        returns ``(maps, FLOPs executed or None)``, counted the way the configuration runs."""
        from salrt import backends

        if c.backend == "reference-style":
            if not hasattr(self.model, "reference_sample"):
                raise UsageError(f"{self.model_name} has no public reference code to imitate")

            def ref(x: Any) -> Any:
                return self.model.reference_sample(x[0], x[1], x[2], c.steps)

            from salrt.cost import executed_flops

            return ref, lambda x: executed_flops(lambda: ref(x))
        cls = backends.get(c.backend)
        spec = RunSpec(model=self.model_name, config=self.config_name, device=self.device, precision=c.precision)
        if cls.needs_weights:
            b = cls.open(spec, model=self.torch_model(c.precision, c.kernels), cuda_graphs=c.cuda_graphs)

            def fn(x: Any) -> Any:
                return b.sample(x[0], x[1], steps=c.steps, noise=x[2], **x[3])

        else:
            d = self.export_for(cls, c)
            b = cls.open(spec.replace(precision=c.precision if cls.precision_at_load else None), export_dir=str(d))

            def fn(x: Any) -> Any:
                return b.sample(
                    *(to_numpy(t) for t in x[:2]),
                    steps=c.steps,
                    noise=to_numpy(x[2]),
                    **{k: v.cpu().numpy() for k, v in x[3].items()},
                )

        return fn, lambda x: b.count_flops(lambda: fn(x))

    def export_for(self, cls: Any, c: Config) -> Path:
        """The export ``cls`` runs at ``c``'s precision, batch and steps, made once into the cache
        (hundreds of MB at paper size: never in the results folder)."""
        from salrt.pipeline import cached_export

        spec = RunSpec(
            model=self.model_name, config=self.config_name, checkpoint=self.checkpoint,
            random_weights=self.checkpoint is None, precision=c.precision, cache_dir=self.cache_dir,
        )  # fmt: skip
        return Path(cached_export(spec, cls, self.log, batch=c.batch, steps=c.steps, model=self.model))

    def run_config(self, c: Config) -> dict[str, Any]:
        row: dict[str, Any] = dataclasses.asdict(c)
        row["passes"] = self.model.passes(c.steps) if self.model.kind == "diffusion" and c.steps else None
        reason = None if c.backend == "reference-style" else _skip_reason(c, self.device)
        if reason is None and c.kernels == "triton" and not self.model.triton_kernels():
            reason = f"{self.model_name} has no Triton kernels"
        if c.backend == "reference-style" and not hasattr(self.model, "reference_sample"):
            reason = f"no public reference code for {self.model_name}: speed-ups are against salrt torch fp32"
        if reason:
            return {**row, "skipped": reason}
        from salrt.cost import cost_report

        try:
            inputs = self.inputs(c.batch)
            per_row_peak = reset_peak_memory(self.device)  # this row's peak: loading and export included
            fn, count = self._callable(c)
            for i in range(self.warmup):
                fn(inputs[i % len(inputs)])
            _sync(self.device)
            _, flops = count(inputs[0])  # one untimed call, counted as this configuration executes it
            _sync(self.device)
            samples = []
            out0 = None
            for r in range(self.reps):
                x = inputs[r % len(inputs)]
                holder: list[Any] = []
                samples.append(time_call(lambda x=x, holder=holder: holder.append(fn(x)), self.device))
                if r == 0:
                    out0 = to_numpy(holder[0])
        except Exception as exc:
            return {**row, "skipped": f"failed: {type(exc).__name__}: {exc}"}
        s = np.array(samples)
        cost = cost_report(self.cfg, batch=c.batch, steps=c.steps, model=self.model_name)
        ref = self.fp32_reference(c.batch, c.steps)
        lat = float(np.median(s))
        row.update(
            {
                "samples_s": samples,
                "latency_ms": {p: float(np.percentile(s, q) * 1e3) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
                "clips_per_s": c.batch / lat,
                "frames_per_s": c.batch / lat * self.stride,
                "params": int(sum(cost.params.values())),
                "paper_gmacs": cost.paper_macs / 1e9,
                "gflops_per_clip": None if flops is None else flops / c.batch / 1e9,
                "eager_gflops_per_clip": cost.flops_per_clip / c.batch / 1e9,
                "achieved_tflops": None if flops is None else flops / lat / 1e12,
                "fraction_of_matmul_peak": None if flops is None else flops / lat / 1e12 / self.peak(c.precision),
                "peak_memory_mb": peak_memory_mb(self.device),
                "peak_memory_scope": "row" if per_row_peak else "process",
                "max_abs_vs_fp32": float(np.abs(out0.astype(np.float64) - ref).max()),
                "cc_vs_fp32": pearson(out0, ref),
            }
        )
        return row


def run(
    model: str = "diffsal",
    config: str = "paper",
    backends: Sequence[str] | None = None,
    precisions: Sequence[str] = ("fp32",),
    batches: Sequence[int] = (1,),
    steps: Sequence[int] = (4,),
    kernels: Sequence[str] = ("torch",),
    device: str = "cpu",
    reps: int = 5,
    warmup: int = 1,
    stride: int = 1,
    out: str | Path = "bench_out",
    checkpoint: str | None = None,
    video: str | None = None,
    log: Callable[[str], None] | None = None,
    cuda_graphs: Sequence[bool] = (True,),
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Benchmark every combination; write ``bench.json``, ``bench.md`` and plots to ``out``.
    ``cuda_graphs``: with and/or without CUDA graphs for the torch backends (CUDA only)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda s: None)
    b = Bench(model, config, device, reps, warmup, stride, checkpoint, say, cache_dir)
    eager = _eager(device)
    backends = list(backends or (eager,))  # default: the eager backend alone
    rows = []
    for bs in batches:
        for st in steps if b.diffusion else (0,):  # one-pass models: steps do not apply
            say(f"baseline: reference-style, batch {bs}, {st} steps")
            base = b.run_config(Config("reference-style", "fp32", bs, st, "torch"))
            rows.append(base)
            if "skipped" in base and eager in backends and "fp32" in precisions:  # then the eager fp32 row is the base
                say(f"baseline: {eager} fp32, batch {bs}, {st} steps")
                base = b.run_config(Config(eager, "fp32", bs, st, "torch"))
            for be in backends:
                for pr in precisions:
                    torch_be = _runs_weights(be)
                    graph_opts = cuda_graphs if torch_be and device.startswith("cuda") else (True,)
                    for kn, gr in ((k, g) for k in (kernels if torch_be else ("-",)) for g in graph_opts):
                        c = Config(be, pr, bs, st, kn, gr)
                        say(f"{be} {pr} batch {bs} steps {st} kernels {kn}" + ("" if gr else " without CUDA graphs"))
                        r = (
                            base
                            if c == Config(base["backend"], base["precision"], bs, st, base["kernels"])
                            and "skipped" not in base
                            else b.run_config(c)
                        )
                        if "skipped" not in r and "skipped" not in base:
                            r["speedup_vs_baseline"] = base["latency_ms"]["p50"] / r["latency_ms"]["p50"]
                        rows.append(r)
    result = {
        "model": model,
        "config": config,
        "device": device,
        "reps": reps,
        "warmup": warmup,
        "stride": stride,
        "machine": machine_info(device),
        "matmul_peak_tflops": b._peaks,
        "rows": rows,
    }
    if video:  # the first torch configuration asked for, end to end, beside its model-only row
        pr, kn = precisions[0], kernels[0]
        e = end_to_end(b, video, batches[0], steps[0], stride, pr, kn)
        same = [
            r
            for r in rows
            if r.get("backend") == eager and "skipped" not in r and r.get("cuda_graphs", True)
            and (r["precision"], r["kernels"], r["batch"], r["steps"]) == (pr, kn, batches[0], steps[0])
        ]  # fmt: skip
        if same:
            e["model_only_clips_per_s"] = same[0]["clips_per_s"]
            e["of_model_only"] = round(e["clips_per_s"] / same[0]["clips_per_s"], 3)
        result["end_to_end"] = e
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=str))
    md = markdown(result)
    (out / "bench.md").write_text(md)
    plots(result, out)
    return result


def end_to_end(
    b: Bench, video: str, batch: int, steps: int, stride: int, precision: str = "fp32", kernels: str = "torch"
) -> dict[str, Any]:
    """The whole runtime on a video (decode to maps) with the eager backend in ``precision`` with
    ``kernels`` (the same model the model-only rows time)."""
    from salrt.backends import for_model
    from salrt.io.contract import InputContract
    from salrt.runtime import RunOptions, Runtime

    rt = Runtime(
        for_model(b.torch_model(precision, kernels)),
        [video],
        RunOptions(steps=steps if b.diffusion else None, stride=stride, batch=batch, contract=InputContract.of(b.cfg)),
    )
    s = rt.run(handle_signals=False)
    return {
        "video": video,
        "precision": precision,
        "kernels": kernels,
        "batch": batch,
        "steps": steps,
        "stride": stride,
        "frames": s["frames_out"][0],
        "wall_s": s["wall_s"],
        "frames_per_s": s["fps_out"],
        "clips_per_s": s["clips_per_s"],
        "latency_ms": s["latency_ms"],
    }


def markdown(result: dict[str, Any]) -> str:
    """The headline table. GFLOPs are those the configuration executed (each backend counted as
    it runs: torch's dispatcher, the exported graphs' nodes), TFLOP/s and the fraction of the
    dense-GEMM rate torch measured in the same run follow from them; "peak MB" is each row's own
    peak (loading included) where the OS lets the window be reset."""
    lines = [
        f"{result['model']} ({result['config']}) on {result['device']}: "
        f"{result['machine'].get('gpu') or result['machine']['cpu']}",
        "",
        "| backend | precision | kernels | batch | steps | p50 ms | p95 ms | clips/s | GFLOPs/clip executed | "
        "TFLOP/s | % GEMM peak | peak MB | max abs vs fp32 | CC vs fp32 | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        passes = r.get("passes")
        steps = f"{r['steps']} ({passes} passes)" if passes and passes != r["steps"] else (r["steps"] or "-")
        kern = r["kernels"] + ("" if r.get("cuda_graphs", True) else ", no CUDA graphs")
        head = f"| {r['backend']} | {r['precision']} | {kern} | {r['batch']} | {steps} |"
        if "skipped" in r:
            lines.append(head + f" skipped: {r['skipped']} |" + " |" * 9)
            continue
        lat = r["latency_ms"]
        sp = r.get("speedup_vs_baseline")
        counted = r.get("gflops_per_clip") is not None
        flops = (
            f"{r['gflops_per_clip']:.1f} | {r['achieved_tflops']:.3f} | {100 * r['fraction_of_matmul_peak']:.1f}"
            if counted
            else "not counted | - | -"
        )
        peak = f"{r['peak_memory_mb']:.0f}" + (" (process)" if r.get("peak_memory_scope") == "process" else "")
        lines.append(
            head + f" {lat['p50']:.1f} | {lat['p95']:.1f} | {r['clips_per_s']:.3f} | {flops} | {peak} | "
            f"{r['max_abs_vs_fp32']:.1e} | {format_cc(r['cc_vs_fp32'])} | {'baseline' if sp is None else f'{sp:.2f}x'} |"
        )
    if result.get("end_to_end"):
        e = result["end_to_end"]
        lines += [
            "",
            f"End to end ({e['video']}, {e.get('precision', 'fp32')}, kernels {e.get('kernels', 'torch')}, batch "
            f"{e['batch']}, {e['steps']} steps, stride {e['stride']}): {e['frames_per_s']:.2f} frames/s, "
            f"{e['clips_per_s']:.3f} clips/s over {e['frames']} frames"
            + (
                f" = {100 * e['of_model_only']:.0f}% of the model alone ({e['model_only_clips_per_s']:.3f} clips/s)"
                if "of_model_only" in e
                else ""
            ),
        ]
    return "\n".join(lines) + "\n"


def cross_model(results: dict[str, dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """One table over models: parameters, cost in both conventions, and for each backend run (fp32,
    batch 1, the first step count) its p50 latency and the GFLOPs it executed, next to the figures
    each paper reports."""
    from salrt.cost import cost_report, paper_comparison
    from salrt.models import MODELS

    rows, backends = [], []
    for name, res in results.items():
        runs = {}
        for x in res["rows"]:
            if x["precision"] == "fp32" and x["batch"] == 1 and "skipped" not in x and x["backend"] not in runs:
                runs[x["backend"]] = {"p50_s": x["latency_ms"]["p50"] / 1e3, "gflops": x.get("gflops_per_clip")}
                if x["backend"] not in backends:
                    backends.append(x["backend"])
        done = [x for x in res["rows"] if "skipped" not in x]
        steps = done[0]["steps"] if done else 4
        cost = cost_report(MODELS[name][1].preset(res["config"]), batch=1, steps=steps, model=name)
        rows.append(
            {
                "model": name,
                "params_m": sum(cost.params.values()) / 1e6,
                "thop_params_m": cost.paper_params / 1e6,
                "thop_gmacs": cost.paper_macs / 1e9,
                "eager_gflops_per_clip": cost.flops_per_clip / 1e9,
                "steps": steps if done and done[0].get("passes") else None,  # None: a one-pass model
                "backends": runs,
                "paper": paper_comparison(name, cost, preset=res["config"]),
            }
        )
    first = next(iter(results.values()))
    lines = [
        f"Models at their papers' input sizes on {first['device']}: {first['machine'].get('gpu') or first['machine']['cpu']} "
        f"({first['machine']['cpu_threads']} threads), fp32, batch 1, random weights. GFLOPs per clip as each backend "
        "executed them (torch: its dispatcher's count; exported graphs: their nodes at the shapes run).",
        "",
        "| model | params (M) | thop params (M) | thop GMACs | steps | "
        + " | ".join(f"{b} p50 s | {b} GFLOPs" for b in backends)
        + " | paper reports (salrt's difference) |",
        "|---|---|---|---|---|" + "---|---|" * len(backends) + "---|",
    ]
    for r in rows:
        paper = (
            ", ".join(f"{p['paper']:g} {p['unit']} ({p['difference_pct']:+.2f}%)" for p in r["paper"])
            or "no cost figures"
        )
        if first["config"] != "paper":
            paper = f"(not comparable: {first['config']} config)"
        cells = []
        for b in backends:
            x = r["backends"].get(b)
            g = None if x is None else x["gflops"]
            cells.append(
                "- | -" if x is None else f"{x['p50_s']:.2f} | " + ("not counted" if g is None else f"{g:.1f}")
            )
        lines.append(
            f"| {r['model']} | {r['params_m']:.2f} | {r['thop_params_m']:.2f} | {r['thop_gmacs']:.2f} | "
            f"{r['steps'] or '1 pass'} | " + " | ".join(cells) + f" | {paper} |"
        )
    return "\n".join(lines) + "\n", rows


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    """latency vs batch per backend and throughput vs steps (each only when the run swept that
    axis: a single point is no plot), speed-up over the baseline (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    rows = [r for r in result["rows"] if "skipped" not in r]
    made = []

    def label(r: dict[str, Any]) -> str:
        return (
            f"{r['backend']} {r['precision']}"
            + (" triton" if r["kernels"] == "triton" else "")
            + ("" if r.get("cuda_graphs", True) else " no-graphs")
        )

    for fname, xkey, other, ykey, title in (
        ("latency_vs_batch.png", "batch", "steps", "p50", "latency per call (ms, p50)"),
        ("throughput_vs_steps.png", "steps", "batch", "clips_per_s", "throughput (clips/s)"),
    ):
        if len({r[xkey] for r in rows}) < 2:
            continue
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for lab, o in sorted({(label(r), r[other]) for r in rows}):
            sel = [r for r in rows if label(r) == lab and r[other] == o]
            pts = sorted((r[xkey], r["latency_ms"]["p50"] if ykey == "p50" else r[ykey]) for r in sel)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{lab}, {other} {o}")
        ax.set_xlabel(xkey)
        ax.set_xticks(sorted({r[xkey] for r in rows}))
        ax.grid(alpha=0.3)
        ax.set_title(title)
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=100)
        plt.close(fig)
        made.append(out / fname)
    sp = [r for r in rows if "speedup_vs_baseline" in r]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.32 * max(len(sp), 1)))
    names = [f"{label(r)}, batch {r['batch']}, {r['steps']} steps" for r in sp]
    ax.barh(range(len(sp))[::-1], [r["speedup_vs_baseline"] for r in sp])
    ax.set_yticks(range(len(sp))[::-1], names, fontsize=7)
    for i, r in zip(range(len(sp))[::-1], sp):
        ax.text(r["speedup_vs_baseline"], i, f" {r['speedup_vs_baseline']:.2f}x", va="center", fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xlabel("speed-up over the reference-style baseline (same run)")
    fig.tight_layout()
    fig.savefig(out / "speedup.png", dpi=100)
    plt.close(fig)
    made.append(out / "speedup.png")
    return made


def _eager(device: str) -> str:
    """The backend ``auto`` runs weights on without an export (eager torch): the baseline."""
    from salrt import backends

    return backends.resolve("auto", device, None, None, can_export=False).name


def _runs_weights(name: str) -> bool:
    from salrt import backends

    try:
        return backends.get(name).needs_weights
    except UsageError:
        return False
