"""Triton kernels for the torch backend: fused ECA compression + attention, fused DDIM update.

Liger-style: each kernel has a PyTorch reference, a parity test and a benchmark; a model
declares which kernels apply to it (:meth:`salrt.models.base.SaliencyModel.triton_kernels`: a
module with a ``triton_kernel`` name and a ``use_triton`` switch, ``"ddim"`` for diffusion
models), and ``enable(model)`` switches exactly those, per instance (nothing global). On CUDA
tensors the kernels run; on CPU the eager path stays unless ``force=True`` (tests run the kernels
on CPU under ``TRITON_INTERPRET=1``). ``disable(model)`` restores the eager path.
"""

from __future__ import annotations

from typing import Any

from salrt.errors import UsageError, require


def enable(model: Any, force: bool = False) -> Any:
    """Route the kernels ``model`` declares through Triton; a model with none is refused."""
    names = model.triton_kernels()
    if not names:
        raise UsageError(f"model {model.name!r} has no Triton kernels (use --kernels torch)")
    require("triton", "--kernels triton")
    for m in model.modules():
        if getattr(m, "triton_kernel", None) in names:
            m.use_triton, m.triton_force = True, force
    if "ddim" in names:
        from salrt.kernels.scheduler import TritonDDIMScheduler

        model.scheduler = TritonDDIMScheduler.from_scheduler(model.scheduler, force=force)
    return model


def disable(model: Any) -> Any:
    """Back to the eager path."""
    for m in model.modules():
        if getattr(m, "triton_kernel", None):
            m.use_triton = m.triton_force = False
    if enabled_scheduler(model):
        model.scheduler = model.scheduler.eager()
    return model


def enabled_scheduler(model: Any) -> bool:
    """Whether the model's DDIM update runs through the fused kernel."""
    return hasattr(getattr(model, "scheduler", None), "eager")
