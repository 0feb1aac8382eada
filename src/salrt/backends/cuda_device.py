"""Device memory, copies and streams without torch, for the TensorRT backend: NVIDIA's cuda-python
(``pip install "salrt[tensorrt]"``) or PyCUDA (``pip install "salrt[tensorrt-pycuda]"``),
whichever is installed. Both expose the same five operations on raw device pointers (ints) and
numpy host arrays; every CUDA call's status is checked.
"""

from __future__ import annotations

import atexit
from typing import Any, Protocol

import numpy as np

from salrt.errors import MissingDependency, SalrtError


class DeviceAPI(Protocol):
    """What the TensorRT backend needs from a CUDA binding."""

    name: str

    def malloc(self, nbytes: int) -> int: ...

    def free(self, ptr: int) -> None: ...

    def stream(self) -> int: ...

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None: ...

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None: ...

    def sync(self, stream: int) -> None: ...


class CudaPython:
    """NVIDIA's cuda-python runtime bindings (``cuda.bindings.runtime``, or ``cuda.cudart`` before
    cuda-python 12.6). Each call returns ``(status, *values)``; a non-zero status raises."""

    name = "cuda-python"

    def __init__(self, cudart: Any = None) -> None:
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

    def _ok(self, result: Any, what: str) -> tuple:
        res = result if isinstance(result, tuple) else (result,)
        status, values = res[0], res[1:]
        if int(status) != 0:
            raise SalrtError(f"CUDA {what} failed: {status}")
        return values

    def malloc(self, nbytes: int) -> int:
        (ptr,) = self._ok(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc")
        return int(ptr)

    def free(self, ptr: int) -> None:
        self._ok(self.rt.cudaFree(ptr), "cudaFree")

    def stream(self) -> int:
        (s,) = self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        return int(s)

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync (H2D)")

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync (D2H)")

    def sync(self, stream: int) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")


class PyCuda:
    """PyCUDA's driver API on its own context for device 0 (popped at exit)."""

    name = "pycuda"

    def __init__(self, driver: Any = None) -> None:
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
            if driver.Device.count() < 1:
                raise SalrtError("the TensorRT backend needs a CUDA GPU (PyCUDA sees none)")
            self.ctx = driver.Device(0).make_context()
        except driver.Error as exc:
            raise SalrtError(f"CUDA initialisation failed: {exc}") from None
        atexit.register(self.ctx.pop)
        self._allocs: dict[int, Any] = {}
        self._streams: dict[int, Any] = {}

    def malloc(self, nbytes: int) -> int:
        a = self.cuda.mem_alloc(max(int(nbytes), 1))
        self._allocs[int(a)] = a
        return int(a)

    def free(self, ptr: int) -> None:
        self._allocs.pop(int(ptr)).free()

    def stream(self) -> int:
        s = self.cuda.Stream()
        self._streams[int(s.handle)] = s
        return int(s.handle)

    def h2d(self, dst: int, src: np.ndarray, stream: int) -> None:
        self.cuda.memcpy_htod_async(dst, src, self._streams[stream])

    def d2h(self, dst: np.ndarray, src: int, stream: int) -> None:
        self.cuda.memcpy_dtoh_async(dst, src, self._streams[stream])

    def sync(self, stream: int) -> None:
        self._streams[stream].synchronize()


def device_api(prefer: str = "auto") -> DeviceAPI:
    """cuda-python when installed (or ``prefer="cuda-python"``), else PyCUDA."""
    if prefer not in ("auto", "cuda-python", "pycuda"):
        raise SalrtError(f"unknown CUDA binding {prefer!r}: auto, cuda-python or pycuda")
    if prefer == "pycuda":
        return PyCuda()
    try:
        return CudaPython()
    except MissingDependency:
        if prefer == "cuda-python":
            raise
        return PyCuda()
