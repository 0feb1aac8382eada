"""The backend interface and optional-dependency handling."""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

from salrt.errors import SalrtError

_EXTRAS = {"onnxruntime": "onnx", "tensorrt": "tensorrt", "torch": "torch", "onnx": "export", "onnxsim": "export",
           "av": "core", "skimage": "eval", "PIL": "eval"}  # fmt: skip


class MissingDependency(SalrtError, ImportError):
    """An optional package needed by the requested feature is not installed."""


def require(module: str, feature: str) -> Any:
    """Import ``module`` or raise one clear message naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = _EXTRAS.get(module.split(".")[0], module)
        raise MissingDependency(f"{feature} needs the '{module}' package: pip install 'salrt[{extra}]'") from None


@runtime_checkable
class Backend(Protocol):
    """What the runtime needs from an execution backend.

    Arrays are numpy arrays or torch tensors (each backend accepts both and returns its native
    kind; ``to_numpy`` converts). Shapes as :class:`salrt.DiffSal`: video (B,3,T,H,W), audio
    (B,1,S,h,w), maps (B,1,H,W).
    """

    name: str
    steps: int | None  # a fixed step count (exported sampler), or None when any count works

    def encode(self, video: Any, audio: Any) -> Any:
        """Per-clip features (opaque to callers)."""

    def denoise(self, x_t: Any, t: Any, features: Any) -> Any:
        """One denoiser pass -> x0."""

    def sample(self, video: Any, audio: Any, steps: int = 4, noise: Any = None, seed: int | None = None) -> Any:
        """Saliency maps in 0..1 (eta = 0)."""


def to_numpy(x: Any) -> Any:
    """A numpy array from a numpy array or a torch tensor (any device)."""
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return x
