"""Execution backends behind one small interface (``encode``, ``denoise``, ``sample``).

``load_backend(name, ...)``: ``torch`` (eager), ``torch-compile``, ``onnxruntime`` (an export
directory; runs without torch), ``tensorrt`` (an export directory with engines; CUDA; without torch through cuda-python or PyCUDA).
"""

from __future__ import annotations

from typing import Any

from salrt.backends.base import Backend
from salrt.errors import MissingDependency, UsageError, require

BACKENDS = ("torch", "torch-compile", "onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "Backend", "MissingDependency", "load_backend", "require"]


def load_backend(
    name: str,
    *,
    model: Any = None,
    export_dir: str | None = None,
    device: str = "cpu",
    providers: list[str] | None = None,
    device_api: str = "auto",
    cuda_graphs: bool = True,
) -> Backend:
    """Build a backend. Torch backends take a loaded ``model``; the others an ``export_dir``.
    ``device_api`` (TensorRT): ``auto`` (torch buffers when torch sees a GPU, else cuda-python or
    PyCUDA), ``torch``, ``cuda-python`` or ``pycuda``. ``cuda_graphs`` (torch backends on CUDA):
    each clip one CUDA-graph replay."""
    if name in ("torch", "torch-compile"):
        if model is None:
            raise UsageError(f"backend {name!r} needs a model")
        from salrt.backends.torch_backend import TorchBackend

        return TorchBackend(model, compile=name == "torch-compile", cuda_graphs=cuda_graphs)
    if name == "onnxruntime":
        if export_dir is None:
            raise UsageError("backend 'onnxruntime' needs an export directory (salrt export --format onnx)")
        from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(export_dir, providers=providers, device=device)
    if name == "tensorrt":
        if export_dir is None:
            raise UsageError("backend 'tensorrt' needs an export directory (salrt export --format tensorrt)")
        from salrt.backends.tensorrt_backend import load_tensorrt

        return load_tensorrt(export_dir, device_api=device_api)
    raise UsageError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
