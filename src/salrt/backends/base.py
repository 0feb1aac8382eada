"""The backend interface and optional-dependency handling."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


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
