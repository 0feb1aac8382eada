"""Recording stand-ins for what cannot be installed or run here: the ``tensorrt`` module of each
API generation (10.0, 10.12, 11.x), NVIDIA's cuda-python runtime and PyCUDA's driver.

The "engine" is the ONNX graph itself, run by onnxruntime when the context executes, reading its
inputs from and writing its outputs to the addresses bound by name; "device memory" is host
memory, so every pointer, size and copy the backend computes is really exercised.
"""

from __future__ import annotations

import ctypes
import json
import threading
import types
from typing import Any

import numpy as np


class Recorder:
    """Records ``(name, args, kwargs)`` of every call made on objects it creates."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def make_trt(version: str, rec: Recorder, fail: dict[str, Any] | None = None) -> types.SimpleNamespace:
    """A ``tensorrt`` stand-in of ``version``: 11.x has no weak-typing FP16/BF16 builder flags."""
    fail = fail or {}
    major = int(version.split(".")[0])
    flags = {"TF32": "TF32"} if major >= 11 else {"FP16": "FP16", "BF16": "BF16", "TF32": "TF32"}
    dtypes = types.SimpleNamespace(float32="f32", float16="f16", bfloat16="bf16", int32="i32", int64="i64")

    def record(name: str, result: Any = None) -> Any:
        def call(*a: Any, **k: Any) -> Any:
            rec.calls.append((name, a, k))
            return fail.get(name.split(".")[-1], result)

        return call

    class Network:
        def __init__(self) -> None:
            self.inputs: list[Any] = []

        @property
        def num_inputs(self) -> int:
            return len(self.inputs)

        def get_input(self, i: int) -> Any:
            return self.inputs[i]

    class Parser:
        def __init__(self, network: Network, logger: Any) -> None:
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path: str) -> bool:
            import onnx

            rec.calls.append(("parser.parse_from_file", (path,), {}))
            if fail.get("parse_from_file") is False:
                self.num_errors = 1
                return False
            m = onnx.load(path, load_external_data=False)
            self.network.path = path
            for i in m.graph.input:
                dims = [d.dim_value if d.dim_value else -1 for d in i.type.tensor_type.shape.dim]
                self.network.inputs.append(types.SimpleNamespace(name=i.name, shape=tuple(dims)))
            return True

        def get_error(self, i: int) -> str:
            return "stand-in parse error"

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            rec.calls.append(("profile.set_shape", (name, lo, opt, hi), {}))
            self.shapes[name] = (lo, opt, hi)

    class Config:
        def __init__(self) -> None:
            self.__dict__["state"] = {"flags": [], "profiles": []}

        def __setattr__(self, key: str, value: Any) -> None:
            rec.calls.append((f"config.{key}=", (value,), {}))
            self.state[key] = value

        set_memory_pool_limit = staticmethod(record("config.set_memory_pool_limit"))

        def set_flag(self, flag: Any) -> None:
            rec.calls.append(("config.set_flag", (flag,), {}))
            self.state["flags"].append(flag)

        def add_optimization_profile(self, p: Profile) -> int:
            rec.calls.append(("config.add_optimization_profile", (p,), {}))
            self.state["profiles"].append(p)
            return fail.get("add_optimization_profile", 0)

        def create_timing_cache(self, data: bytes) -> Any:
            rec.calls.append(("config.create_timing_cache", (data,), {}))
            return fail.get("create_timing_cache", types.SimpleNamespace(serialize=lambda: b"TIMING"))

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            rec.calls.append(("config.set_timing_cache", (cache,), {"ignore_mismatch": ignore_mismatch}))
            return fail.get("set_timing_cache", True)

        def get_timing_cache(self) -> Any:
            return types.SimpleNamespace(serialize=lambda: b"TIMING")

    class Builder:
        def __init__(self, logger: Any) -> None:
            self.network: Network | None = None

        def create_network(self, flags: int) -> Network:
            rec.calls.append(("builder.create_network", (flags,), {}))
            self.network = Network()
            self.network.flags = flags
            return self.network

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            rec.calls.append(("builder.create_optimization_profile", (), {}))
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> Any:
            rec.calls.append(("builder.build_serialized_network", (), {}))
            if fail.get("build_serialized_network", 1) is None:
                return None
            prof = config.state["profiles"][0].shapes
            first = next(iter(prof.values()))
            blob = {"onnx": network.path, "flags": network.flags, "batch": [first[0][0], first[2][0]]}
            return json.dumps(blob).encode()

    class Engine:
        def __init__(self, blob: dict) -> None:
            import onnxruntime as ort

            self.blob = blob
            self.sess = ort.InferenceSession(blob["onnx"], providers=["CPUExecutionProvider"])
            self.ins = {i.name: i for i in self.sess.get_inputs()}
            self.outs = {o.name: o for o in self.sess.get_outputs()}
            self.names = [*self.ins, *self.outs]
            self.shape_cache: dict = {}

        @property
        def num_io_tensors(self) -> int:
            return len(self.names)

        def get_tensor_name(self, i: int) -> str:
            return self.names[i]

        def get_tensor_mode(self, name: str) -> str:
            return "INPUT" if name in self.ins else "OUTPUT"

        def get_tensor_dtype(self, name: str) -> str:
            t = (self.ins.get(name) or self.outs[name]).type
            return {"tensor(float)": "f32", "tensor(float16)": "f16", "tensor(int64)": "i64"}[t]

        def create_execution_context(self) -> Context:
            return Context(self)

    np_types = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32}

    class Context:
        def __init__(self, engine: Engine) -> None:
            self.engine, self.shapes, self.addr = engine, {}, {}

        def set_input_shape(self, name: str, shape: tuple) -> bool:
            rec.calls.append(("context.set_input_shape", (name, shape), {}))
            lo, hi = self.engine.blob["batch"]
            if not lo <= shape[0] <= hi:
                return False
            self.shapes[name] = shape
            return True

        def get_tensor_shape(self, name: str) -> tuple:
            """Output shapes resolved from the input shapes, as TensorRT does (here: by running the
            graph once on zeros of those shapes)."""
            key = tuple(sorted(self.shapes.items()))
            if key not in self.engine.shape_cache:
                feed = {n: np.zeros(s, np_types[self.engine.get_tensor_dtype(n)]) for n, s in self.shapes.items()}
                outs = self.engine.sess.run(None, feed)
                self.engine.shape_cache[key] = {n: y.shape for n, y in zip(self.engine.outs, outs)}
            return self.engine.shape_cache[key][name]

        def set_tensor_address(self, name: str, ptr: int) -> bool:
            rec.calls.append(("context.set_tensor_address", (name, ptr), {}))
            self.addr[name] = ptr
            return True

        def execute_async_v3(self, stream: int) -> bool:
            rec.calls.append(("context.execute_async_v3", (stream,), {}))
            feed = {}
            for name, shape in self.shapes.items():
                dt = np_types[self.engine.get_tensor_dtype(name)]
                n = int(np.prod(shape)) * np.dtype(dt).itemsize
                feed[name] = np.frombuffer(ctypes.string_at(self.addr[name], n), dtype=dt).reshape(shape)
            for name, y in zip(self.engine.outs, self.engine.sess.run(None, feed)):
                y = np.ascontiguousarray(y)
                ctypes.memmove(self.addr[name], y.ctypes.data, y.nbytes)
            return fail.get("execute_async_v3", True)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> Engine:
            rec.calls.append(("runtime.deserialize_cuda_engine", (), {}))
            return Engine(json.loads(data))

    return types.SimpleNamespace(
        __version__=version,
        Logger=type("Logger", (), {"WARNING": 2, "__init__": lambda self, lvl: None}),
        Builder=Builder,
        OnnxParser=Parser,
        Runtime=Runtime,
        MemoryPoolType=types.SimpleNamespace(WORKSPACE="WS"),
        BuilderFlag=types.SimpleNamespace(**flags),
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1),
        TensorIOMode=types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT"),
        **vars(dtypes),
    )


class FakeCudart:
    """cuda-python's runtime module: ``(status, *values)`` results; device memory is host memory.
    Like CUDA, the current device is per thread (0 until the thread calls ``cudaSetDevice``), and
    memory and streams belong to the device they were made on: using them from a thread whose
    current device differs fails with cudaErrorInvalidValue (1)."""

    def __init__(self, rec: Recorder, devices: int = 1) -> None:
        self.rec, self.devices, self.mem = rec, devices, {}
        self.streams: dict[int, int] = {}
        self.local = threading.local()
        self.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def _device(self) -> int:
        return getattr(self.local, "device", 0)

    def cudaGetDeviceCount(self) -> tuple:
        return (0, self.devices)

    def cudaSetDevice(self, device: int) -> tuple:
        if not 0 <= device < self.devices:
            return (101,)  # cudaErrorInvalidDevice
        self.local.device = device
        return (0,)

    def cudaMalloc(self, n: int) -> tuple:
        buf = np.zeros(n, np.uint8)
        self.mem[buf.ctypes.data] = (buf, self._device())
        self.rec.calls.append(("cudaMalloc", (n,), {}))
        return (0, buf.ctypes.data)

    def cudaFree(self, ptr: int) -> tuple:
        self.rec.calls.append(("cudaFree", (ptr,), {}))
        if ptr not in self.mem or self.mem[ptr][1] != self._device():
            return (1,)
        del self.mem[ptr]
        return (0,)

    def cudaStreamCreate(self) -> tuple:
        handle = 77 + len(self.streams)
        self.streams[handle] = self._device()
        return (0, handle)

    def cudaStreamDestroy(self, stream: int) -> tuple:
        self.rec.calls.append(("cudaStreamDestroy", (stream,), {}))
        return (0,) if self.streams.pop(stream, None) == self._device() else (1,)

    def cudaMemcpyAsync(self, dst: int, src: int, n: int, kind: int, stream: int) -> tuple:
        self.rec.calls.append(("cudaMemcpyAsync", (kind, n, stream), {}))
        dev = dst if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice else src
        if self.mem.get(dev, (None, -1))[1] != self._device() or self.streams.get(stream) != self._device():
            return (1,)
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamSynchronize(self, stream: int) -> tuple:
        self.rec.calls.append(("cudaStreamSynchronize", (stream,), {}))
        return (0,) if self.streams.get(stream) == self._device() else (1,)


def fake_pycuda_driver(rec: Recorder) -> types.SimpleNamespace:
    """PyCUDA's ``pycuda.driver`` with host memory as device memory. Like CUDA, contexts are current
    per thread (a stack per thread: ``make_context`` and ``push`` put one on the calling thread,
    ``Context.pop`` takes it off); allocating, copying or making a stream with no current context
    raises ``LogicError``, as PyCUDA does."""
    mem: dict[int, np.ndarray] = {}
    local = threading.local()

    class LogicError(RuntimeError):
        pass

    def stack() -> list:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    def need_context(what: str) -> None:
        if not stack():
            raise LogicError(f"cu{what} failed: invalid device context")

    class Context:
        def __init__(self) -> None:
            self.detached = False

        def push(self) -> None:
            assert not self.detached
            rec.calls.append(("Context.push", (), {}))
            stack().append(self)

        @staticmethod
        def pop() -> None:
            if not stack():
                raise LogicError("cuCtxPopCurrent failed: invalid device context")
            stack().pop()

        def detach(self) -> None:
            rec.calls.append(("Context.detach", (), {}))
            self.detached = True

    class Alloc:
        def __init__(self, n: int) -> None:
            need_context("MemAlloc")
            self.buf = np.zeros(n, np.uint8)
            mem[self.buf.ctypes.data] = self.buf

        def __int__(self) -> int:
            return self.buf.ctypes.data

        def free(self) -> None:
            need_context("MemFree")
            mem.pop(int(self))

    class Stream:
        count = 0

        def __init__(self) -> None:
            need_context("StreamCreate")
            Stream.count += 1
            self.handle = 4 + Stream.count

        def synchronize(self) -> None:
            need_context("StreamSynchronize")
            rec.calls.append(("Stream.synchronize", (), {}))

    class Device:
        @staticmethod
        def count() -> int:
            return 1

        def __init__(self, i: int) -> None:
            pass

        def make_context(self) -> Any:
            ctx = Context()
            stack().append(ctx)
            return ctx

    def htod(dst: int, src: np.ndarray, stream: Stream) -> None:
        need_context("MemcpyHtoDAsync")
        rec.calls.append(("memcpy_htod_async", (src.nbytes,), {}))
        ctypes.memmove(int(dst), src.ctypes.data, src.nbytes)

    def dtoh(dst: np.ndarray, src: int, stream: Stream) -> None:
        need_context("MemcpyDtoHAsync")
        rec.calls.append(("memcpy_dtoh_async", (dst.nbytes,), {}))
        ctypes.memmove(dst.ctypes.data, int(src), dst.nbytes)

    return types.SimpleNamespace(
        init=lambda: None,
        Device=Device,
        Context=Context,
        Error=RuntimeError,
        LogicError=LogicError,
        mem_alloc=Alloc,
        Stream=Stream,
        memcpy_htod_async=htod,
        memcpy_dtoh_async=dtoh,
        current_stack=stack,
    )
