"""Diffusion schedulers (kept separate from the denoisers)."""

from salrt.sampling.ddim import DDIMScheduler, DDIMStep, diffsal_cosine_betas

__all__ = ["DDIMScheduler", "DDIMStep", "diffsal_cosine_betas"]
