"""Device memory, copies and streams without torch, for the TensorRT backend: NVIDIA's cuda-python
(``pip install "salrt[tensorrt]"``) or PyCUDA (``pip install "salrt[tensorrt-pycuda]"``),
whichever is installed. Both expose the same operations on raw device pointers (ints) and numpy
host arrays; every CUDA call's status is checked.

CUDA contexts are current per thread, and ``salrt run`` loads a backend in one thread and samples in
its model thread. So every operation (and TensorRT's own calls, through :meth:`DeviceAPI.current`)
runs with the device's context made current on the calling thread: cuda-python selects the device
(``cudaSetDevice``, which binds the device's primary context to this thread); PyCUDA pushes its
context around the call and pops it after, leaving the thread as it found it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

from salrt.errors import MissingDependency, SalrtError


class DeviceAPI(Protocol):
    """What the TensorRT backend needs from a CUDA binding."""

    name: str

    def current(self) -> contextlib.AbstractContextManager[None]:
        """The device's context current on the calling thread for the ``with`` block."""
        ...

    def malloc(self, nbytes: int) -> int: ...

    def free(self, ptr: int) -> None: ...

    def stream(self) -> int: ...

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None: ...

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None: ...

    def sync(self, stream: int) -> None: ...

    def destroy_stream(self, stream: int) -> None: ...

    def close(self) -> None:
        """Release what the binding itself holds (PyCUDA: its context)."""
        ...


class CudaPython:
    """NVIDIA's cuda-python runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before
    cuda-python 12.6). Each call returns ``(status, *values)``; a non-zero status raises. Every
    operation first selects ``device`` on the calling thread (cheap; a thread that never called
    ``cudaSetDevice`` would otherwise use device 0)."""

    name = "cuda-python"

    def __init__(self, cudart: Any = None, device: int = 0) -> None:
        if cudart is None:
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                try:
                    from cuda import cudart
                except ImportError:
                    raise MissingDependency(
                        "the TensorRT backend without torch needs cuda-python or PyCUDA: "
                        "pip install 'salrt[tensorrt]' (cuda-python) or 'salrt[tensorrt-pycuda]'"
                    ) from None
        self.rt = cudart
        (count,) = self._ok(cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if int(count) < 1:
            raise SalrtError("the TensorRT backend needs a CUDA GPU (cuda-python sees none)")
        if not 0 <= device < int(count):
            raise SalrtError(f"CUDA device {device} does not exist (cuda-python sees {int(count)})")
        self.device = device

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        self._ok(self.rt.cudaSetDevice(self.device), "cudaSetDevice")
        yield

    def _ok(self, result: Any, what: str) -> tuple:
        res = result if isinstance(result, tuple) else (result,)
        status, values = res[0], res[1:]
        if int(status) != 0:
            raise SalrtError(f"CUDA {what} failed: {status}")
        return values

    def malloc(self, nbytes: int) -> int:
        with self.current():
            (ptr,) = self._ok(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        return int(ptr)

    def free(self, ptr: int) -> None:
        with self.current():
            self._ok(self.rt.cudaFree(ptr), "cudaFree")

    def stream(self) -> int:
        with self.current():
            (s,) = self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        return int(s)

    def destroy_stream(self, stream: int) -> None:
        with self.current():
            self._ok(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        with self.current():
            self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync (H2D)")

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self.current():
            self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync (D2H)")

    def sync(self, stream: int) -> None:
        with self.current():
            self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def close(self) -> None:
        """Nothing to release: the primary context belongs to the process."""


class PyCuda:
    """PyCUDA's driver API on its own context for ``device``. The context is made, then popped, so
    no thread holds it; each operation pushes it on the calling thread and pops it after (contexts
    nest, so a thread's own context is restored). :meth:`close` detaches it."""

    name = "pycuda"

    def __init__(self, driver: Any = None, device: int = 0) -> None:
        if driver is None:
            try:
                import pycuda.driver as driver
            except ImportError:
                raise MissingDependency(
                    "the TensorRT backend without torch needs cuda-python or PyCUDA: pip install 'salrt[tensorrt-pycuda]'"
                ) from None
        self.cuda = driver
        try:
            driver.init()
            count = driver.Device.count()
            if count < 1:
                raise SalrtError("the TensorRT backend needs a CUDA GPU (PyCUDA sees none)")
            if not 0 <= device < count:
                raise SalrtError(f"CUDA device {device} does not exist (PyCUDA sees {count})")
            self.ctx = driver.Device(device).make_context()  # made current on this thread ...
            self.ctx.pop()  # ... and released: every call pushes it where it runs
        except driver.Error as exc:
            raise SalrtError(f"CUDA initialisation failed: {exc}") from None
        self._lock = threading.Lock()
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        if self.ctx is None:
            raise SalrtError("the PyCUDA context was closed")
        self.ctx.push()
        try:
            yield
        finally:
            self.cuda.Context.pop()

    def malloc(self, nbytes: int) -> int:
        with self.current():
            a = self.cuda.mem_alloc(max(int(nbytes), 1))
        with self._lock:
            self._allocs[int(a)] = a
        return int(a)

    def free(self, ptr: int) -> None:
        with self._lock:
            a = self._allocs.pop(int(ptr))
        with self.current():
            a.free()

    def stream(self) -> int:
        with self.current():
            s = self.cuda.Stream()
        with self._lock:
            self._streams[int(s.handle)] = s
        return int(s.handle)

    def destroy_stream(self, stream: int) -> None:
        with self._lock:
            s = self._streams.pop(stream)
        with self.current():
            s.synchronize()
            del s  # PyCUDA destroys a stream when its last reference goes, in the current context

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        with self.current():
            self.cuda.memcpy_htod_async(dst, src, self._streams[stream])

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        with self.current():
            self.cuda.memcpy_dtoh_async(dst, src, self._streams[stream])

    def sync(self, stream: int) -> None:
        with self.current():
            self._streams[stream].synchronize()

    def close(self) -> None:
        """Free what is left and detach the context (once)."""
        if self.ctx is None:
            return
        for ptr in list(self._allocs):
            self.free(ptr)
        for s in list(self._streams):
            self.destroy_stream(s)
        self.ctx.detach()
        self.ctx = None


def device_api(prefer: str = "auto", device: int = 0) -> DeviceAPI:
    """cuda-python when installed (or ``prefer="cuda-python"``), else PyCUDA, on ``device``."""
    if prefer not in ("auto", "cuda-python", "pycuda"):
        raise SalrtError(f"unknown CUDA binding {prefer!r}: auto, cuda-python or pycuda")
    if prefer == "pycuda":
        return PyCuda(device=device)
    try:
        return CudaPython(device=device)
    except MissingDependency:
        if prefer == "cuda-python":
            raise
        return PyCuda(device=device)
