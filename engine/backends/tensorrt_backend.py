"""TensorRT runtime backend: deserialised engines, torch CUDA buffers, ``execute_async_v3`` on a
CUDA stream, and CUDA-graph capture of the whole sampler when its shapes are static."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salrt.backends.base import require
from salrt.backends.onnxruntime_backend import read_manifest
from salrt.errors import SalrtError


class TensorRTBackend:
    """Runs ``<graph>.<precision>.engine`` files written by ``salrt export --format tensorrt``."""

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
        self.steps = self.manifest["steps"] if "sampler" in self.engines and "predictor" not in self.engines else None
        self.stream = self.torch.cuda.Stream()
        self.use_cuda_graph = use_cuda_graph
        self._graphs: dict[tuple, Any] = {}
        cfg = self.manifest["config"]
        self.map_shape = (1, cfg["height"], cfg["width"])

    def _dtype(self, trt_dtype: Any) -> Any:
        t, torch = self.trt, self.torch
        return {t.float32: torch.float32, t.float16: torch.float16, t.bfloat16: torch.bfloat16,
                t.int32: torch.int32, t.int64: torch.int64}[trt_dtype]  # fmt: skip

    def run(self, graph: str, inputs: dict[str, Any], sync: bool = True) -> list[Any]:
        """Bind torch CUDA tensors to the engine's I/O tensors and enqueue on this stream."""
        torch, trt = self.torch, self.trt
        if graph not in self.engines:
            raise SalrtError(f"{self.dir}: no {graph} engine")
        engine, ctx = self.engines[graph], self.contexts[graph]
        outs, keep = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                x = inputs[name].to("cuda", self._dtype(engine.get_tensor_dtype(name))).contiguous()
                keep.append(x)
                ctx.set_input_shape(name, tuple(x.shape))
                ctx.set_tensor_address(name, x.data_ptr())
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                y = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=self._dtype(engine.get_tensor_dtype(name)),
                                device="cuda")  # fmt: skip
                ctx.set_tensor_address(name, y.data_ptr())
                outs.append(y)
        if not ctx.execute_async_v3(self.stream.cuda_stream):
            raise SalrtError(f"TensorRT failed to enqueue {graph}")
        if sync:
            self.stream.synchronize()
        return outs

    def encode(self, video: Any, audio: Any) -> dict[str, Any]:
        torch = self.torch
        v = self.run("video_encoder", {"video": torch.as_tensor(video)})
        a = self.run("audio_encoder", {"audio": torch.as_tensor(audio)})
        return {**dict(zip(("v0", "v1", "v2", "v3"), v)), **dict(zip(("a0", "a1", "a2", "a3"), a))}

    def denoise(self, x_t: Any, t: Any, features: dict[str, Any]) -> Any:
        torch = self.torch
        return self.run("denoiser", {"x_t": torch.as_tensor(x_t), "t": torch.as_tensor(t), **features})[0]

    def sample(self, video: Any, audio: Any, steps: int | None = 4, noise: Any = None, seed: int | None = None,
               **conditions: Any) -> Any:  # fmt: skip
        """The ``sampler`` engine (its exported step count), or ``predictor`` for one-pass models;
        ``conditions`` (TAVDiff's ``text`` ids) are bound as extra inputs."""
        torch = self.torch
        feeds = {"video": torch.as_tensor(video), "audio": torch.as_tensor(audio),
                 **{k: torch.as_tensor(v) for k, v in conditions.items()}}  # fmt: skip
        graph = "predictor" if "predictor" in self.engines else "sampler"
        if graph == "sampler":
            if steps != self.steps:
                raise SalrtError(f"this TensorRT export samples {self.steps} steps; re-export with --steps {steps}")
            if noise is None:
                gen = torch.Generator(device="cuda").manual_seed(seed or 0)
                noise = torch.randn((feeds["video"].shape[0], *self.map_shape), generator=gen, device="cuda")
            feeds["noise"] = torch.as_tensor(noise)
        if not self.use_cuda_graph:
            return self.run(graph, feeds)[0]
        key = tuple(tuple(x.shape) for x in feeds.values())
        if key not in self._graphs:  # capture once per static shape: one graph replay per clip
            static_in = {k: v.to("cuda").clone() for k, v in feeds.items()}
            self.run(graph, static_in)  # warm-up outside capture
            cuda_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(cuda_graph, stream=self.stream):
                static_out = self.run(graph, static_in, sync=False)
            self._graphs[key] = (cuda_graph, static_in, static_out)
        cuda_graph, static_in, static_out = self._graphs[key]
        for k, v in feeds.items():
            static_in[k].copy_(v)
        cuda_graph.replay()
        return static_out[0].clone()
