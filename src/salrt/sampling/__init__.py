"""Diffusion schedulers (kept separate from the denoisers). ``schedule`` is torch-free."""

from __future__ import annotations

from typing import Any

from salrt.sampling.schedule import DDIMStep, ddim_plan, diffsal_cosine_betas

__all__ = ["DDIMScheduler", "DDIMStep", "ddim_plan", "diffsal_cosine_betas"]


def __getattr__(name: str) -> Any:
    if name == "DDIMScheduler":
        from salrt.sampling.ddim import DDIMScheduler

        return DDIMScheduler
    raise AttributeError(f"module 'salrt.sampling' has no attribute {name!r}")
