"""Execution backends behind one small interface (``encode``, ``denoise``, ``sample``).

``load_backend(name, ...)``: ``torch`` (eager), ``torch-compile``, ``onnxruntime`` (an export
directory; runs without torch), ``tensorrt`` (an export directory with engines; CUDA; without torch through cuda-python or PyCUDA),
``triton`` (a Triton Inference Server serving ``salrt export --format triton``; ``url``).
"""

from __future__ import annotations

from typing import Any

from salrt.backends.base import Backend
from salrt.errors import MissingDependency, UsageError, require

BACKENDS = ("torch", "torch-compile", "onnxruntime", "tensorrt", "triton")
# backends that run an export (no model weights of their own)
EXPORT_BACKENDS = ("onnxruntime", "tensorrt", "triton")

__all__ = ["BACKENDS", "EXPORT_BACKENDS", "Backend", "MissingDependency", "load_backend", "require"]


def load_backend(
    name: str,
    *,
    model: Any = None,
    export_dir: str | None = None,
    device: str = "cpu",
    providers: list[str] | None = None,
    device_api: str = "auto",
    cuda_graphs: bool = True,
    url: str | None = None,
    triton_model: str | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
) -> Backend:
    """Build a backend. Torch backends take a loaded ``model``; the others an ``export_dir``.
    ``device_api`` (TensorRT): ``auto`` (torch buffers when torch sees a GPU, else cuda-python or
    PyCUDA), ``torch``, ``cuda-python`` or ``pycuda``. ``cuda_graphs`` (torch backends on CUDA):
    each clip one CUDA-graph replay. ``url``/``triton_model`` (Triton): the server and its servable
    model (``export_dir`` then optional: a local copy of the manifest); ``timeout_s``/``retries``:
    per request, with exponential backoff."""
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
    if name == "triton":
        if not url:
            raise UsageError("backend 'triton' needs the server's --url (http://HOST:8000 or grpc://HOST:8001)")
        from salrt.backends.triton_backend import TritonBackend

        return TritonBackend(url, triton_model, manifest=export_dir, timeout_s=timeout_s, retries=retries)
    raise UsageError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
