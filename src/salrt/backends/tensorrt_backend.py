"""TensorRT runtime backends over ``salrt export --format tensorrt`` directories: deserialised
engines, tensors bound by name, ``execute_async_v3`` on a stream.

- :class:`TensorRTBackend`: torch CUDA buffers, waits for the producer stream, and captures the
  whole sampler in a CUDA graph when its shapes are static.
- :class:`TensorRTNumpyBackend`: no torch at all: numpy on the host, device buffers, copies and
  a stream from cuda-python or PyCUDA (:mod:`salrt.backends.cuda_device`); the DDIM update between
  denoiser engines runs in numpy (the exported sampler engine needs none).

:func:`load_tensorrt` picks the torch one when torch sees a GPU, else the torch-free one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.backends import register
from salrt.backends.base import to_numpy
from salrt.backends.graph import GraphBackend, NumpyArrays
from salrt.errors import MissingDependency, SalrtError, SpecError, require
from salrt.export.manifest import read_manifest


def load_engines(trt: Any, directory: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(manifest, engines, execution contexts) of an export directory with TensorRT engines."""
    manifest = read_manifest(directory)
    info = manifest.get("tensorrt")
    if not info:
        raise SalrtError(f"{directory}: no TensorRT engines (run salrt export --format tensorrt)")
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    engines, contexts = {}, {}
    for name, e in info["engines"].items():
        path = directory / e["file"]
        if not path.is_file():
            raise SalrtError(f"{path}: listed in the manifest but missing")
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise SalrtError(f"{e['file']}: TensorRT could not deserialise the engine (other GPU or version?)")
        ctx = engine.create_execution_context()
        if ctx is None:
            raise SalrtError(f"{e['file']}: TensorRT could not create an execution context (out of GPU memory?)")
        engines[name], contexts[name] = engine, ctx
    return manifest, engines, contexts


def load_tensorrt(directory: str | Path, device_api: str = "auto", trt: Any = None) -> GraphBackend:
    """The torch backend when torch is installed and sees a GPU (``device_api`` "auto" or
    "torch"), else the torch-free one on cuda-python or PyCUDA."""
    if device_api in ("auto", "torch"):
        try:
            import torch

            if torch.cuda.is_available():
                return TensorRTBackend(directory, trt=trt)
        except ImportError:
            pass
        if device_api == "torch":
            raise SalrtError("the TensorRT backend on torch buffers needs torch with a CUDA GPU")
    return TensorRTNumpyBackend(directory, device_api=device_api, trt=trt)


class _Engines:
    """What both TensorRT backends say about themselves: engines built over exported graphs."""

    name = "tensorrt"
    library = "tensorrt"
    devices = ("cuda",)
    export_format = "tensorrt"
    manifest: dict[str, Any]

    def export_precision(self) -> str:
        """TensorRT computes in its engines' precision (the graphs may be fp32 under fp16 engines)."""
        return str(self.manifest.get("tensorrt", {}).get("precision", self.manifest["precision"]))


@register
class TensorRTBackend(_Engines, GraphBackend):
    """Runs ``<graph>.<precision>.engine`` files written by ``salrt export --format tensorrt``;
    sampling as :class:`GraphBackend` (the same loop as every backend)."""

    @classmethod
    def graph_precision(cls, precision: str) -> str:
        from salrt.export.tensorrt import engine_plan

        return str(engine_plan(require("tensorrt", "TensorRT"), precision)["graph_precision"])

    @classmethod
    def export_extra(cls, directory: Any, precision: str, log: Any = None, **options: Any) -> None:
        from salrt.export.tensorrt import build_engines

        build_engines(directory, precision=precision, log=log, **options)

    @classmethod
    def auto_rank(cls, device: str, export: dict[str, Any] | None, url: str | None, can_export: bool) -> int | None:
        # an export with engines on CUDA: the fastest exact GPU path (engines are built by salrt export)
        return 90 if export is not None and export.get("tensorrt", {}).get("engines") else None

    @classmethod
    def open(cls, spec: Any, *, model: Any = None, export_dir: str | None = None, **options: Any) -> GraphBackend:
        if not export_dir:
            raise SpecError(
                "export_dir", f"{{backend}} {cls.name} runs an export: give {{field}} (salrt export --format tensorrt)"
            )
        return load_tensorrt(export_dir)

    def __init__(self, directory: str | Path, use_cuda_graph: bool = True, trt: Any = None) -> None:
        self.trt = trt or require("tensorrt", "the TensorRT backend")
        self.torch = require("torch", "the TensorRT backend (CUDA buffers)")
        if not self.torch.cuda.is_available():
            raise SalrtError("the TensorRT backend needs a CUDA GPU")
        self.dir = Path(directory)
        self.manifest, self.engines, self.contexts = load_engines(self.trt, self.dir)
        self.stream = self.torch.cuda.Stream()
        self.use_cuda_graph = use_cuda_graph
        self._graphs: dict[tuple, Any] = {}
        self._setup(set(self.engines))

    def _dtype(self, trt_dtype: Any) -> Any:
        t, torch = self.trt, self.torch
        return {
            t.float32: torch.float32,
            t.float16: torch.float16,
            t.bfloat16: torch.bfloat16,
            t.int32: torch.int32,
            t.int64: torch.int64,
        }[trt_dtype]

    def run(self, graph: str, inputs: dict[str, Any], sync: bool = True) -> dict[str, Any]:
        """Bind torch CUDA tensors to the engine's I/O tensors by name and enqueue on this stream
        (after the work that produced the inputs on the current stream)."""
        torch, trt = self.torch, self.trt
        if graph not in self.engines:
            raise SalrtError(f"{self.dir}: no {graph} engine")
        engine, ctx = self.engines[graph], self.contexts[graph]
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        keep, outs = [], {}
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if name not in inputs:
                    raise SalrtError(f"{graph}: missing input {name!r}")
                x = torch.as_tensor(inputs[name]).to("cuda", self._dtype(engine.get_tensor_dtype(name))).contiguous()
                keep.append(x)
                if not ctx.set_input_shape(name, tuple(x.shape)):
                    raise SalrtError(f"{graph}: input {name} of shape {tuple(x.shape)} is outside the engine's profile")
                ctx.set_tensor_address(name, x.data_ptr())
        for name in names:
            if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                y = torch.empty(
                    tuple(ctx.get_tensor_shape(name)), dtype=self._dtype(engine.get_tensor_dtype(name)), device="cuda"
                )
                ctx.set_tensor_address(name, y.data_ptr())
                outs[name] = y
        self.stream.wait_stream(torch.cuda.current_stream())  # inputs made on the producer stream
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise SalrtError(f"TensorRT failed to enqueue {graph}")
        for t in [*keep, *outs.values()]:
            t.record_stream(self.stream)
        if sync:
            self.stream.synchronize()
        return outs

    def _run(self, graph: str, feed: dict[str, Any]) -> dict[str, Any]:
        if not self.use_cuda_graph or graph != self.roles.get("sampler", self.roles.get("predictor")):
            return self.run(graph, feed)
        torch = self.torch
        key = (graph, *(tuple(x.shape) for x in feed.values()))
        if key not in self._graphs:  # capture once per static shape: one graph replay per clip
            static_in = {k: torch.as_tensor(v).to("cuda").clone() for k, v in feed.items()}
            self.run(graph, static_in)  # warm-up outside capture
            cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cuda_graph, stream=self.stream):
                static_out = self.run(graph, static_in, sync=False)
            self._graphs[key] = (cuda_graph, static_in, static_out)
        cuda_graph, static_in, static_out = self._graphs[key]
        for k, v in feed.items():
            static_in[k].copy_(torch.as_tensor(v))
        cuda_graph.replay()
        return {k: v.clone() for k, v in static_out.items()}

    def _float(self, x: Any) -> Any:
        return self.torch.as_tensor(x)

    def _int(self, x: Any) -> Any:
        return self.torch.as_tensor(x, dtype=self.torch.int64)

    def _noise(self, shape: tuple[int, ...], seed: int | None) -> Any:
        gen = self.torch.Generator(device="cuda").manual_seed(seed or 0)
        return self.torch.randn(shape, generator=gen, device="cuda")

    def _clip(self, x: Any) -> Any:
        return x.clamp(0.0, 1.0)

    def _cat(self, parts: list[Any]) -> Any:
        return self.torch.cat(parts)


class TensorRTNumpyBackend(_Engines, NumpyArrays, GraphBackend):
    """The TensorRT backend without torch: numpy arrays in and out, device buffers (grown as
    needed, reused per graph input/output), host<->device copies and one stream from a
    :class:`~salrt.backends.cuda_device.DeviceAPI`. Sampling as :class:`GraphBackend`."""

    def __init__(self, directory: str | Path, device_api: str | Any = "auto", trt: Any = None) -> None:
        from salrt.backends.cuda_device import device_api as make_api

        self.trt = trt or require("tensorrt", "the TensorRT backend")
        self._owns_api = isinstance(device_api, str)
        self.api = make_api(device_api) if self._owns_api else device_api
        self.dir = Path(directory)
        with self.api.current():  # engines and their contexts belong to the device's CUDA context
            self.manifest, self.engines, self.contexts = load_engines(self.trt, self.dir)
        self.stream: int | None = self.api.stream()
        self._buffers: dict[tuple[str, str], tuple[int, int]] = {}
        precision = self.manifest["tensorrt"].get("precision", "fp32")
        self.float = np.float16 if self.manifest["precision"] == "fp16" or precision == "fp16" else np.float32
        self._setup(set(self.engines), self.float)

    def _np_dtype(self, trt_dtype: Any) -> Any:
        t = self.trt
        table = {t.float32: np.float32, t.float16: np.float16, t.int32: np.int32, t.int64: np.int64}
        if trt_dtype not in table:  # bf16 has no numpy type: such engines need the torch backend
            raise SalrtError(f"engine tensor type {trt_dtype} needs the torch TensorRT backend (numpy has no bf16)")
        return table[trt_dtype]

    def _buffer(self, graph: str, name: str, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` for this graph tensor (reallocated when too small)."""
        ptr, size = self._buffers.get((graph, name), (0, 0))
        if size < nbytes:
            if ptr:
                self.api.free(ptr)
            ptr, size = self.api.malloc(nbytes), nbytes
            self._buffers[(graph, name)] = (ptr, size)
        return ptr

    def run(self, graph: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Copy the inputs to the device, bind every I/O tensor by name, enqueue, copy back, all
        with the device's context current on the calling thread (the runtime's model thread is
        not the thread that loaded the engines)."""
        if self.stream is None:
            raise SalrtError("the TensorRT backend was closed")
        with self.api.current():
            return self._run_current(graph, inputs)

    def _run_current(self, graph: str, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        trt = self.trt
        if graph not in self.engines:
            raise SalrtError(f"{self.dir}: no {graph} engine")
        engine, ctx = self.engines[graph], self.contexts[graph]
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        held, outs = [], {}
        for name in names:
            if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
                continue
            if name not in inputs:
                raise SalrtError(f"{graph}: missing input {name!r}")
            x = np.ascontiguousarray(to_numpy(inputs[name]), dtype=self._np_dtype(engine.get_tensor_dtype(name)))
            held.append(x)  # alive until the stream has copied it
            ptr = self._buffer(graph, name, x.nbytes)
            self.api.h2d(ptr, x, self.stream)
            if not ctx.set_input_shape(name, tuple(x.shape)):
                raise SalrtError(f"{graph}: input {name} of shape {tuple(x.shape)} is outside the engine's profile")
            if not ctx.set_tensor_address(name, ptr):
                raise SalrtError(f"{graph}: TensorRT refused the address of {name}")
        for name in names:
            if engine.get_tensor_mode(name) != trt.TensorIOMode.OUTPUT:
                continue
            shape = tuple(int(v) for v in ctx.get_tensor_shape(name))
            if any(v < 0 for v in shape):
                raise SalrtError(f"{graph}: output {name} has an unresolved shape {shape}")
            y = np.empty(shape, dtype=self._np_dtype(engine.get_tensor_dtype(name)))
            ptr = self._buffer(graph, name, y.nbytes)
            if not ctx.set_tensor_address(name, ptr):
                raise SalrtError(f"{graph}: TensorRT refused the address of {name}")
            outs[name] = (y, ptr)
        if not ctx.execute_async_v3(self.stream):
            raise SalrtError(f"TensorRT failed to enqueue {graph}")
        for y, ptr in outs.values():
            self.api.d2h(y, ptr, self.stream)
        self.api.sync(self.stream)
        return {k: y for k, (y, _) in outs.items()}

    def close(self) -> None:
        """Free the device buffers, destroy the stream, release the binding (idempotent)."""
        if self.stream is None:
            return
        with self.api.current():
            for ptr, _ in self._buffers.values():
                self.api.free(ptr)
            self._buffers.clear()
            self.api.destroy_stream(self.stream)
            self.stream = None
            self.contexts.clear()  # execution contexts and engines before the CUDA context goes
            self.engines.clear()
        if self._owns_api:
            self.api.close()

    def _run(self, graph: str, feed: dict[str, Any]) -> dict[str, Any]:
        return self.run(graph, feed)


__all__ = ["MissingDependency", "TensorRTBackend", "TensorRTNumpyBackend", "load_engines", "load_tensorrt"]
