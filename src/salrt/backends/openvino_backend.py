"""OpenVINO backend over a ``salrt export`` directory (it reads the exported ONNX graphs
directly). Imports neither torch nor salrt.models.

Exact by default: the CPU plugin is told to infer in f32 (``INFERENCE_PRECISION_HINT``), because
on CPUs with native bf16 (AVX-512 BF16, AMX) it would otherwise run bf16 silently.
``precision="bf16"`` asks for bf16 over the fp32 graphs (an approximate path, never a default);
it is refused on CPUs without native bf16, where OpenVINO would silently run f32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.backends import register
from salrt.backends.graph import GraphBackend, NumpyArrays
from salrt.errors import SalrtError, SpecError, UsageError, require
from salrt.export.manifest import read_manifest

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


@register
class OpenVinoBackend(NumpyArrays, GraphBackend):
    """Runs the exported graphs as OpenVINO compiled models (see :class:`GraphBackend` for sampling).

    ``device``: an OpenVINO device (``CPU``, ``GPU``, ``AUTO``); ``threads``: inference threads
    (default: OpenVINO's choice, all cores); ``cache_dir``: OpenVINO's compiled-model cache
    (default ``~/.cache/salrt/openvino``; compiling a paper-size sampler takes seconds);
    ``perf_count``: keep per-layer timings (:meth:`profile`)."""

    name = "openvino"
    library = "openvino"
    devices = ("cpu",)
    precision_at_load = True

    @classmethod
    def precision_problem(cls, precision: str, device: str) -> str | None:
        from salrt.backends.torch_backend import cpu_precision_problem

        return cpu_precision_problem(precision)

    @classmethod
    def graph_precision(cls, precision: str) -> str:
        return "fp32"  # bf16 is an inference hint over fp32 graphs

    @classmethod
    def auto_rank(cls, device: str, export: dict[str, Any] | None, url: str | None, can_export: bool) -> int | None:
        # the fastest exact CPU path measured (benchmarks/results/cpu_paths_*): 2.0-2.1x the authors' code
        if export is not None:
            return 70 if export.get("precision") == "fp32" else None
        return 70 if can_export else None

    @classmethod
    def open(cls, spec: Any, *, model: Any = None, export_dir: str | None = None, **options: Any) -> OpenVinoBackend:
        if not export_dir:
            raise SpecError(
                "export_dir", f"{{backend}} {cls.name} runs an export: give {{field}} (made by salrt export)"
            )
        device = "CPU" if spec.device == "cpu" else spec.device
        return cls(export_dir, device=device, precision=spec.precision or "fp32")

    def __init__(
        self,
        directory: str | Path,
        device: str = "CPU",
        precision: str = "fp32",
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        perf_count: bool = False,
    ) -> None:
        ov = require("openvino", "the OpenVINO backend")
        if precision not in _HINTS:
            raise UsageError(f"OpenVINO precision {precision!r}: {', '.join(_HINTS)}")
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        core = ov.Core()
        device = device.upper()
        if device.startswith("CUDA"):
            raise UsageError("the OpenVINO backend runs on CPU (or an Intel GPU: --device GPU), not CUDA")
        if device not in ("AUTO", *core.available_devices) and not device.startswith(("AUTO:", "HETERO:", "MULTI:")):
            raise SalrtError(f"OpenVINO device {device!r} not available here: {', '.join(core.available_devices)}")
        cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "salrt" / "openvino"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({"CACHE_DIR": str(cache)})
        except OSError:  # a read-only home: compile every time
            pass
        if precision != "fp32" and self.manifest["precision"] != "fp32":
            raise UsageError(
                f"OpenVINO precision {precision} needs an fp32 export; {self.dir} is {self.manifest['precision']}"
            )
        if (
            device == "CPU"
            and precision == "bf16"
            and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        ):
            raise UsageError("OpenVINO precision bf16: this CPU has no native bf16 (OpenVINO would run f32)")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": "YES" if perf_count else "NO"}
        if device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = _HINTS[precision]
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
        self.requests, self.compiled = {}, {}
        for name, g in self.manifest["graphs"].items():
            path = self.dir / g["file"]
            if not path.is_file():
                raise SalrtError(f"{path}: listed in the manifest but missing")
            compiled = core.compile_model(core.read_model(str(path)), device, config)
            self.compiled[name] = compiled
            self.requests[name] = compiled.create_infer_request()
        first = next(iter(self.compiled.values()))
        try:
            self.inference_precision = str(first.get_property("INFERENCE_PRECISION_HINT"))
        except RuntimeError:  # devices without the property
            self.inference_precision = _HINTS[precision]
        self.device = device
        self.float = np.float16 if self.manifest["precision"] == "fp16" else np.float32
        self._setup(set(self.compiled), self.float)

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        req = self.requests.get(graph)
        if req is None:
            raise SalrtError(f"{self.dir}: this export has no {graph}.onnx")
        req.infer(feed)
        # copies: the request's output tensors are reused by its next inference
        return {name: np.array(req.get_tensor(name).data) for name in self.graph_outputs[graph]}

    def profile(self, graph: str) -> list[dict[str, Any]]:
        """Per-layer timings of ``graph``'s last inference (built with ``perf_count=True``)."""
        out = []
        for p in self.requests[graph].profiling_info:
            out.append(
                {
                    "name": p.node_name,
                    "type": p.node_type,
                    "exec_type": p.exec_type,
                    "us": p.real_time.total_seconds() * 1e6,
                }
            )
        return out
