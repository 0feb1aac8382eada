"""ONNX export: trace, simplify (onnxsim), check, validate in onnxruntime, write a manifest.

``export_onnx(model, out_dir)`` writes ``video_encoder.onnx``, ``audio_encoder.onnx``,
``denoiser.onnx``, ``sampler.onnx`` and ``manifest.json``. Validation runs every graph in
onnxruntime on random inputs and compares with PyTorch; export raises when it fails.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from salrt.errors import ExportError, installed
from salrt.export.manifest import file_sha256, graph_order
from salrt.io.contract import InputContract
from salrt.metrics import pearson


def graph_names(model: nn.Module) -> tuple[str, ...]:
    """The graphs ``salrt export`` writes for ``model`` (the ones it declares)."""
    return graph_order(model.graph_roles())


FP32_TOLERANCE = 1e-4  # max abs error on maps (and features) in fp32


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    """A fixed batch (``min == opt == max``) or a dynamic range for the batch axis."""

    min: int
    opt: int
    max: int

    @property
    def dynamic(self) -> bool:
        return not (self.min == self.opt == self.max)

    @classmethod
    def parse(cls, text: str) -> BatchSpec:
        """``"4"`` or ``"1:4:16"``."""
        try:
            parts = [int(x) for x in str(text).split(":")]
        except ValueError:
            raise ExportError(f"invalid batch {text!r}: use N or MIN:OPT:MAX") from None
        if len(parts) == 1:
            parts *= 3
        if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
            raise ExportError(f"invalid batch {text!r}: need 1 <= MIN <= OPT <= MAX")
        return cls(*parts)


def random_inputs(
    spec: dict[str, tuple[int, ...]], seed: int, dtype: np.dtype, num_timesteps: int = 1000
) -> dict[str, np.ndarray]:
    """Random (never zero) inputs for one graph; ``t`` is a random timestep."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in spec.items():
        if k == "t":
            out[k] = rng.integers(0, num_timesteps, shape).astype(np.int64)
        elif k == "text":  # caption ids: row 0 a short caption, odd rows none (the AV variant)
            ids = np.zeros(shape, np.int64)
            ids[:, :8] = rng.integers(1, 1000, (shape[0], 8))
            ids[1::2] = 0
            out[k] = ids
        else:
            out[k] = rng.standard_normal(shape).astype(dtype)
    return out


def _op_counts(m: Any) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in m.graph.node).items()))


def _trace(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    names_in: list[str],
    names_out: list[str],
    batch: BatchSpec,
    opset: int,
) -> Any:
    import onnx

    axes = {n: {0: "batch"} for n in [*names_in, *names_out]} if batch.dynamic else None
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            buf,
            input_names=names_in,
            output_names=names_out,
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=False,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buf.getvalue())


@contextlib.contextmanager
def _silence_native_output() -> Any:
    """onnxsim's C++ code prints warnings straight to fd 1/2; keep the CLI's output clean."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _simplify(m: Any, name: str) -> Any:
    try:
        import onnxsim
    except ImportError:
        raise ExportError("export needs onnxsim: pip install 'salrt[export]'") from None
    with _silence_native_output():
        # no "fuse_attention": it emits com.microsoft::Attention, which only onnxruntime runs (not TensorRT)
        simplified, ok = onnxsim.simplify(m, skipped_optimizers=["fuse_attention"])
    if not ok:
        raise ExportError(f"{name}: onnxsim could not validate the simplified graph")
    return simplified


def ort_session(path: str | Path, providers: list[str] | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


def validate(
    path: Path, module: nn.Module, spec: dict[str, Any], fp16: bool, batch: int, seed: int = 0
) -> dict[str, Any]:
    """Run the graph in onnxruntime and the module in PyTorch (fp32) on the same random inputs."""
    inputs = random_inputs({k: (batch, *v[1:]) for k, v in spec["inputs"].items()}, seed, np.float32)
    sess = ort_session(path)
    real = {i.name for i in sess.get_inputs()}
    feed = {k: (v.astype(np.float16) if fp16 and v.dtype == np.float32 else v) for k, v in inputs.items() if k in real}
    got = sess.run(None, feed)
    with torch.no_grad():
        ref = module(*(torch.from_numpy(v) for v in inputs.values()))
    ref = ref if isinstance(ref, tuple) else (ref,)
    errors = {}
    for name, g, r in zip(spec["outputs"], got, ref):
        r = r.numpy()
        if g.shape != r.shape:
            raise ExportError(f"{path.name}: output {name} has shape {g.shape}, PyTorch gives {r.shape}")
        errors[name] = output_errors(g, r)
    return {"batch": batch, "outputs": errors}


def output_errors(got: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """How an exported graph's output differs from PyTorch's: max abs error, CC, and whether it is
    finite and whether either side is constant (where CC is undefined)."""
    g = got.astype(np.float64)
    finite = bool(np.isfinite(g).all())
    return {
        "max_abs": float(np.abs(g - ref).max()) if finite else float("inf"),
        "cc": pearson(got, ref) if finite else float("nan"),
        "finite": finite,
        "constant": bool(finite and np.ptp(g) == 0),
        "ref_constant": bool(np.ptp(ref.astype(np.float64)) == 0),
    }


def check_validation(name: str, checks: list[dict[str, Any]], precision: str, fp16_min_cc: float = 0.99) -> None:
    """Refuse an exported graph whose outputs are not PyTorch's: non-finite values (any precision),
    a constant output where PyTorch's varies, fp32 beyond :data:`FP32_TOLERANCE`, fp16 under
    ``fp16_min_cc`` (CC is undefined only where PyTorch's output is itself constant: then the values
    must agree to fp16 rounding)."""
    for c in checks:
        for oname, e in c["outputs"].items():
            where = f"{name}.onnx validation failed: {oname} at batch {c['batch']}"
            if not e.get("finite", True):
                raise ExportError(f"{where} has non-finite values (NaN or inf)")
            if e.get("constant") and not e.get("ref_constant"):
                raise ExportError(f"{where} is constant where PyTorch's output varies")
            if precision == "fp32" and not e["max_abs"] <= FP32_TOLERANCE:
                raise ExportError(f"{where} differs from PyTorch by {e['max_abs']:.2e} (> {FP32_TOLERANCE:g})")
            if precision == "fp16":
                constant_ok = e.get("ref_constant") and e["max_abs"] <= 1e-2
                if not (e["cc"] >= fp16_min_cc or constant_ok):
                    raise ExportError(f"{where}: fp16 CC {e['cc']:.4f} < {fp16_min_cc} against PyTorch")


def check_opset(opset: int) -> None:
    """Raise :class:`ExportError` for an opset outside what the exporters and TensorRT parse."""
    if not 9 <= opset <= 20:
        raise ExportError(f"opset {opset} outside 9..20 (the range TensorRT 10 parses)")


def export_onnx(
    model: nn.Module,
    out_dir: str | Path,
    *,
    precision: str = "fp32",
    batch: BatchSpec | str = "1",
    opset: int = 17,
    steps: int = 4,
    graphs: tuple[str, ...] | None = None,
    simplify: bool | None = None,
    check_batches: tuple[int, ...] | None = None,
    log: Callable[[str], None] | None = None,
    fp16_min_cc: float = 0.99,
) -> dict[str, Any]:
    """Export, simplify, check and validate; write the graphs and ``manifest.json``; return the manifest.

    ``simplify``: True requires onnxsim, False skips it, None (default) uses it when installed and
    otherwise exports the graphs unsimplified with a warning (they are validated either way)."""
    import onnx

    from salrt.io import audio as A
    from salrt.io import imaging

    if precision not in ("fp32", "fp16"):
        raise ExportError(f"unknown precision {precision!r}: use fp32 or fp16 (bf16 is a TensorRT build flag)")
    check_opset(opset)
    if simplify is None:
        simplify = installed("onnxsim")
        if not simplify:
            import logging

            logging.getLogger("salrt").warning(
                "onnxsim is not installed: graphs exported unsimplified (pip install 'salrt[export]')"
            )
    known = graph_names(model)
    graphs = known if graphs is None else graphs
    unknown = set(graphs) - set(known)
    if unknown:
        raise ExportError(f"unknown graphs {sorted(unknown)}; known for {model.name}: {', '.join(known)}")
    bs = batch if isinstance(batch, BatchSpec) else BatchSpec.parse(batch)
    say = log or (lambda s: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p0 = next(model.parameters())
    if p0.device.type != "cpu" or p0.dtype != torch.float32:  # never move the caller's model
        import copy

        model = copy.deepcopy(model).float().cpu()
    model = model.eval()
    half: dict[str, nn.Module] = {}

    def half_graphs() -> dict[str, nn.Module]:
        """The half-precision model's graphs, built once (fp16 exports only)."""
        if not half:
            import copy

            half.update(copy.deepcopy(model).half().export_graphs(steps))
        return half

    spec = model.graph_io(bs.opt)
    modules = model.export_graphs(steps)
    manifest: dict[str, Any] = {
        "format": "salrt-onnx/1",
        "model": model.name,
        "config": model.config.to_dict(),
        "precision": precision,
        "batch": dataclasses.asdict(bs),
        "opset": opset,
        "steps": steps,
        "eta": 0.0,
        "kind": model.kind,
        "contract": InputContract.of(model.config).to_dict(),
        "graph_roles": model.graph_roles(),
        "timesteps": [s.t for s in model.scheduler.timesteps(steps)] if model.kind == "diffusion" else [],
        "timestep_spacing": model.scheduler.spacing if model.kind == "diffusion" else None,
        "alphas_cumprod": [float(a) for a in model.scheduler.alphas_cumprod] if model.kind == "diffusion" else [],
        "adaptive_max_steps": int(model.config.max_steps) if hasattr(model, "raw_step_count") else None,
        "preprocessing": {
            "video": {
                "layout": "B,3,T,H,W RGB",
                "range": "0..255 then (x - mean) / std",
                "mean": list(imaging.VIDEO_MEAN),
                "std": list(imaging.VIDEO_STD),
                "resize": "reference (Pillow 9.4 bicubic 320x240, then bilinear)",
            },
            "audio": A.describe()
            if model.config.audio_format == "logmel"
            else {
                "format": "mono waveform",
                "rate": A.WAVEFORM_RATE,
                "samples": model.config.audio_samples,
                "segments": "one Hann-windowed segment per frame, centred in the buffer",
            },
            "noise": "x_T ~ N(0, I), shape of the map",
        },
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
        "graphs": {},
    }
    for name in graphs:
        t0 = time.perf_counter()
        module = modules[name].eval()
        gspec = spec[name]
        inputs = random_inputs(gspec["inputs"], 1, np.float32)
        args = tuple(torch.from_numpy(v) for v in inputs.values())
        traced = module
        if precision == "fp16":  # trace the half-precision model: a native fp16 graph
            traced = half_graphs()[name].eval()
            args = tuple(a.half() if a.is_floating_point() else a for a in args)
        say(f"{name}: tracing")
        m = _trace(traced, args, list(gspec["inputs"]), list(gspec["outputs"]), bs, opset)
        before = {"nodes": len(m.graph.node), "ops": _op_counts(m), "bytes": m.ByteSize()}
        if simplify:
            say(f"{name}: simplifying")
            m = _simplify(m, name)
        onnx.checker.check_model(m)
        # an input the model ignores (AVRSP(V)'s audio, TAVDiff(TV)'s) leaves the graph: the
        # manifest lists the graph's real inputs, so every backend feeds exactly those
        real = {i.name for i in m.graph.input}
        graph_inputs = {k: v for k, v in gspec["inputs"].items() if k in real}
        path = out / f"{name}.onnx"
        onnx.save(m, str(path))
        after = {"nodes": len(m.graph.node), "ops": _op_counts(m), "bytes": path.stat().st_size}
        say(f"{name}: validating in onnxruntime")
        checks = [
            validate(path, module, gspec, precision == "fp16", b)
            for b in (check_batches or ((bs.min, bs.max) if bs.dynamic else (bs.opt,)))
        ]
        check_validation(name, checks, precision, fp16_min_cc)
        manifest["graphs"][name] = {
            "file": path.name,
            "sha256": file_sha256(path),
            "inputs": {
                k: {
                    "shape": ["batch", *v[1:]],
                    "dtype": "int64" if k in ("t", "text") else ("float16" if precision == "fp16" else "float32"),
                }
                for k, v in graph_inputs.items()
            },
            "outputs": {
                k: {"shape": ["batch", *v[1:]], "dtype": "float16" if precision == "fp16" else "float32"}
                for k, v in gspec["outputs"].items()
            },
            "before_simplify": before,
            "after_simplify": after,
            "validation": checks,
            "export_seconds": round(time.perf_counter() - t0, 2),
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
