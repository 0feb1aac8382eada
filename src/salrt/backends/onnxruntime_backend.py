"""onnxruntime backend over a ``salrt export`` directory. Imports neither torch nor salrt.models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.backends import register
from salrt.backends.graph import GraphBackend, NumpyArrays
from salrt.errors import SalrtError, SpecError, require
from salrt.export.manifest import read_manifest


@register
class OnnxRuntimeBackend(NumpyArrays, GraphBackend):
    """Runs the exported graphs in onnxruntime sessions (see :class:`GraphBackend` for sampling)."""

    name = "onnxruntime"
    library = "onnxruntime"
    devices = ("cpu", "cuda")

    @classmethod
    def auto_rank(cls, device: str, export: dict[str, Any] | None, url: str | None, can_export: bool) -> int | None:
        # exact and 1.7x torch eager on CPU (benchmarks/results/cpu_paths_*); on CUDA behind TensorRT
        if export is not None:
            return 60
        return 50 if can_export and str(device).startswith("cpu") else None

    @classmethod
    def open(cls, spec: Any, *, model: Any = None, export_dir: str | None = None, **options: Any) -> OnnxRuntimeBackend:
        if not export_dir:
            raise SpecError(
                "export_dir", f"{{backend}} {cls.name} runs an export: give {{field}} (made by salrt export)"
            )
        return cls(export_dir, device=spec.device)

    def __init__(self, directory: str | Path, providers: list[str] | None = None, device: str = "cpu") -> None:
        ort = require("onnxruntime", "the onnxruntime backend")
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda"):
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise SalrtError("device cuda needs onnxruntime-gpu (CUDAExecutionProvider is not available)")
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sessions = {}
        for name, g in self.manifest["graphs"].items():
            path = self.dir / g["file"]
            if not path.is_file():
                raise SalrtError(f"{path}: listed in the manifest but missing")
            self.sessions[name] = ort.InferenceSession(str(path), opts, providers=providers)
        self.float = np.float16 if self.manifest["precision"] == "fp16" else np.float32
        self._setup(set(self.sessions), self.float)

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if graph not in self.sessions:
            raise SalrtError(f"{self.dir}: this export has no {graph}.onnx")
        return dict(zip(self.graph_outputs[graph], self.sessions[graph].run(None, feed)))
