"""The one DDIM sampling loop of salrt, written once against a small denoiser protocol.

The torch models (:class:`salrt.models.base.DiffusionModel`), the onnxruntime backend (numpy
arrays, exported graphs) and the TensorRT backend (engines) all sample through :func:`ddim_loop`;
the unrolled ``sampler`` graph and the CUDA-graph sampler are captures of the same plan
(:meth:`Scheduler.timesteps`) and update (:meth:`Scheduler.step`). Arrays are numpy arrays or torch
tensors: the loop only indexes with Python lists, assigns and calls the protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from salrt.sampling.schedule import DDIMStep


class Denoiser(Protocol):
    """What the loop needs of a model or a backend.

    ``encode`` turns one batch of clips into opaque per-clip features; ``denoise(x_t, t, features)``
    is one x0-predicting pass ((B,1,H,W), (B,) integer timesteps); ``step_counts`` gives each batch
    item's step count (``steps`` for all, or the model's own choice when None); ``select`` keeps the
    batch items ``idx`` of the features; ``timestep(t, n)`` is an (n,) integer array of value ``t``
    in the denoiser's array type and device.
    """

    def encode(self, video: Any, audio: Any, **conditions: Any) -> Any: ...

    def denoise(self, x_t: Any, t: Any, features: Any) -> Any: ...

    def step_counts(self, features: Any, steps: int | None) -> list[int]: ...

    def select(self, features: Any, idx: list[int]) -> Any: ...

    def timestep(self, t: int, n: int) -> Any: ...


class Scheduler(Protocol):
    """The plan and the update: ``timesteps(n)`` (largest first; ``t_next < 0`` ends) and
    ``step(x0, x_t, step, eta, noise, generator)``."""

    def timesteps(self, steps: int) -> list[DDIMStep]: ...

    def step(
        self, x0: Any, x_t: Any, step: DDIMStep, eta: float = 0.0, noise: Any = None, generator: Any = None
    ) -> Any: ...


def ddim_loop(
    denoiser: Denoiser,
    scheduler: Scheduler,
    features: Any,
    x_T: Any,
    steps: int | None,
    eta: float = 0.0,
    generator: Any = None,
) -> Any:
    """x_0 for every batch item from x_T: items with the same step count run together, each
    through ``scheduler.timesteps(count)``. Not clamped (callers clamp to [0, 1])."""
    counts = denoiser.step_counts(features, steps)
    b = len(counts)
    out = x_T * 1  # a copy in the same array type, filled group by group
    for n in sorted(set(counts)):
        idx = [i for i, c in enumerate(counts) if c == n]
        feats = features if len(idx) == b else denoiser.select(features, idx)
        x = x_T if len(idx) == b else x_T[idx]
        for st in scheduler.timesteps(n):
            x0 = denoiser.denoise(x, denoiser.timestep(st.t, len(idx)), feats)
            x = scheduler.step(x0, x, st, eta=eta, generator=generator)
        if len(idx) == b:
            return x
        out[idx] = x
    return out


def select_rows(features: Any, idx: Sequence[int]) -> Any:
    """Rows ``idx`` of (nested tuples, named tuples or dicts of) arrays or tensors."""
    if isinstance(features, dict):
        return {k: select_rows(v, idx) for k, v in features.items()}
    if isinstance(features, (tuple, list)):
        items = [select_rows(f, idx) for f in features]
        return type(features)(*items) if hasattr(features, "_fields") else type(features)(items)
    if hasattr(features, "index_select"):  # torch: an index tensor on the features' device
        import torch

        return features.index_select(0, torch.as_tensor(list(idx), device=features.device))
    return features[list(idx)]
