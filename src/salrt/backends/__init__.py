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
PRECISIONS = ("fp32", "bf16", "fp16")
# backends that run an export (no model weights of their own)
EXPORT_BACKENDS = ("onnxruntime", "openvino", "tensorrt", "triton")

__all__ = [
    "BACKENDS",
    "EXPORT_BACKENDS",
    "PRECISIONS",
    "Backend",
    "MissingDependency",
    "export_precision",
    "load_backend",
    "pick_backend",
    "precision_problem",
    "require",
]


def precision_problem(backend: str, precision: str, device: str = "cpu") -> str | None:
    """Why ``backend`` cannot run ``precision`` at speed on ``device`` (None: it can).

    torch and OpenVINO choose their precision at load time (torch casts the weights, OpenVINO takes
    an inference-precision hint over fp32 graphs); the other backends run the export's precision
    (:func:`export_precision`). On CPU, bf16 needs native bf16 (AVX-512 BF16 or AMX): without it
    torch emulates it ~100x slower than fp32 and OpenVINO silently runs fp32; fp16 has no fast CPU
    kernels in either.
    """
    from salrt.hardware import cpu_isa, cpu_native_bf16

    if precision not in PRECISIONS:
        return f"unknown precision {precision!r}: {', '.join(PRECISIONS)}"
    if precision == "fp32" or backend not in ("torch", "torch-compile", "openvino"):
        return None
    if str(device).startswith("cpu") or backend == "openvino":
        if precision == "fp16":
            return (
                "fp16 has no fast CPU kernels in torch or OpenVINO; use fp32 (exact) or bf16 on a CPU with native bf16"
            )
        if not cpu_native_bf16():
            return (
                f"this CPU ({cpu_isa()}) has no native bf16 (AVX-512 BF16 or AMX): bf16 would run emulated, far "
                "slower than fp32; use fp32"
            )
    return None


def export_precision(manifest: dict[str, Any], backend: str) -> str:
    """The precision an export backend computes in: TensorRT its engines', the others the graphs'."""
    if backend == "tensorrt":
        return str(manifest.get("tensorrt", {}).get("precision", manifest["precision"]))
    return str(manifest["precision"])


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
    precision: str | None = None,
) -> Backend:
    """Build a backend. Torch backends take a loaded ``model``; the others an ``export_dir``.
    ``device_api`` (TensorRT): ``auto`` (torch buffers when torch sees a GPU, else cuda-python or
    PyCUDA), ``torch``, ``cuda-python`` or ``pycuda``. ``cuda_graphs`` (torch backends on CUDA):
    each clip one CUDA-graph replay. ``url``/``triton_model`` (Triton): the server and its servable
    model (``export_dir`` then optional: a local copy of the manifest); ``timeout_s``/``retries``:
    per request, with exponential backoff. ``precision`` (None: fp32 for torch and OpenVINO, the
    export's for the others): torch backends take the model as given (cast it first), OpenVINO
    takes it as its inference-precision hint, the others must match their export's."""
    if name == "auto":
        name = pick_backend(device, export_dir, url)
    problem = precision_problem(name, precision, device) if precision else None
    if problem:
        raise UsageError(f"--precision {precision} with --backend {name}: {problem}")
    backend = _load(name, model, export_dir, device, providers, device_api, cuda_graphs, url, triton_model,
                    timeout_s, retries, precision)  # fmt: skip
    if precision and name in EXPORT_BACKENDS and name != "openvino":
        have = export_precision(backend.manifest, name)  # type: ignore[attr-defined]
        if have != precision:
            raise UsageError(
                f"--precision {precision}: --backend {name} runs its export's precision ({have}); export with "
                f"--precision {precision}, or use --backend openvino/torch on CPU"
            )
    return backend


def _load(
    name: str,
    model: Any,
    export_dir: str | None,
    device: str,
    providers: list[str] | None,
    device_api: str,
    cuda_graphs: bool,
    url: str | None,
    triton_model: str | None,
    timeout_s: float,
    retries: int,
    precision: str | None,
) -> Backend:
    if name in ("torch", "torch-compile"):
        if model is None:
            raise UsageError(f"backend {name!r} needs a model")
        from salrt.backends.torch_backend import TorchBackend

        backend = TorchBackend(model, compile=name == "torch-compile", cuda_graphs=cuda_graphs)
        if precision and backend.precision != precision:
            raise UsageError(f"--precision {precision}: the model's weights are {backend.precision} (cast it first)")
        return backend
    if name == "onnxruntime":
        if export_dir is None:
            raise UsageError("backend 'onnxruntime' needs an export directory (salrt export --format onnx)")
        from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(export_dir, providers=providers, device=device)
    if name == "openvino":
        if export_dir is None:
            raise UsageError("backend 'openvino' needs an export directory (salrt export --format onnx)")
        from salrt.backends.openvino_backend import OpenVinoBackend

        return OpenVinoBackend(export_dir, device="CPU" if device == "cpu" else device, precision=precision or "fp32")
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
