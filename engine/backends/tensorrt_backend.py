"""TensorRT runtime backend: deserialised engines, torch CUDA buffers, ``execute_async_v3`` on a
CUDA stream, and CUDA-graph capture of the whole sampler when its shapes are static."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salrt.backends.graph import GraphBackend
from salrt.errors import SalrtError, require
from salrt.export.manifest import read_manifest


class TensorRTBackend(GraphBackend):
    """Runs ``<graph>.<precision>.engine`` files written by ``salrt export --format tensorrt``;
    sampling as :class:`GraphBackend` (the same loop as every backend)."""

    name = "tensorrt"

    def __init__(self, directory: str | Path, use_cuda_graph: bool = True, trt: Any = None) -> None:
        self.trt = trt or require("tensorrt", "the TensorRT backend")
        self.torch = require("torch", "the TensorRT backend (CUDA buffers)")
        if not self.torch.cuda.is_available():
            raise SalrtError("the TensorRT backend needs a CUDA GPU")
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        info = self.manifest.get("tensorrt")
        if not info:
            raise SalrtError(f"{directory}: no TensorRT engines (run salrt export --format tensorrt)")
        logger = self.trt.Logger(self.trt.Logger.WARNING)
        runtime = self.trt.Runtime(logger)
        self.engines, self.contexts = {}, {}
        for name, e in info["engines"].items():
            data = (self.dir / e["file"]).read_bytes()
            engine = runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise SalrtError(f"{e['file']}: TensorRT could not deserialise the engine (other GPU or version?)")
            self.engines[name] = engine
            self.contexts[name] = engine.create_execution_context()
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
