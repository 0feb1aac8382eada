"""Execution backends behind one small interface (``encode``, ``denoise``, ``sample``).

``load_backend(name, ...)``: ``torch`` (eager), ``torch-compile``, ``onnxruntime`` (an export
directory; runs without torch), ``tensorrt`` (an export directory with engines; CUDA; without torch through cuda-python or PyCUDA),
``openvino`` (an export directory; CPU, exact f32 by default), ``triton`` (a Triton Inference
Server serving ``salrt export --format triton``; ``url``); ``auto`` picks one (:func:`pick_backend`).
"""

from __future__ import annotations

from typing import Any

from salrt.backends.base import Backend
from salrt.errors import MissingDependency, UsageError, require

BACKENDS = ("auto", "torch", "torch-compile", "onnxruntime", "openvino", "tensorrt", "triton")
# backends that run an export (no model weights of their own)
EXPORT_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "triton")

__all__ = ["BACKENDS", "EXPORT_BACKENDS", "Backend", "MissingDependency", "load_backend", "pick_backend", "require"]


def pick_backend(device: str = "cpu", export_dir: str | None = None, url: str | None = None) -> str:
    """The default backend (``--backend auto``): the fastest exact one for what is given.

    A server URL: ``triton``. No export: ``torch`` (the model runs from its weights). An export on
    CUDA: ``tensorrt`` when it has engines, else ``onnxruntime``. An export on CPU: ``openvino``
    when installed (fastest exact CPU path measured, ``benchmarks/results/cpu_paths.md``), else
    ``onnxruntime`` (both faster than torch eager there).
    """
    import importlib.util

    if url:
        return "triton"
    if not export_dir:
        return "torch"
    if str(device).startswith("cuda"):
        from salrt.export.manifest import read_manifest

        return "tensorrt" if read_manifest(export_dir).get("tensorrt", {}).get("engines") else "onnxruntime"
    return "openvino" if importlib.util.find_spec("openvino") is not None else "onnxruntime"


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
    if name == "auto":
        name = pick_backend(device, export_dir, url)
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
    if name == "openvino":
        if export_dir is None:
            raise UsageError("backend 'openvino' needs an export directory (salrt export --format onnx)")
        from salrt.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(export_dir, device="CPU" if device == "cpu" else device)
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
