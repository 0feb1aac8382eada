"""DDIM scheduler with DiffSal's noise schedule, kept separate from any denoiser.

The scheduler owns the schedule, the timestep sequence and the update rule; callers own the
denoiser. ``step`` is a pure function of its tensor inputs.
"""

from __future__ import annotations

import numpy as np
import torch

from salrt.errors import UsageError
from salrt.sampling.schedule import DDIMStep, apply_ddim, ddim_coefficients, ddim_plan, diffsal_cosine_betas


class DDIMScheduler:
    """DDIM sampling for an x0-predicting denoiser (DiffSal's ``sample_ddim``).

    Args:
        num_timesteps: training steps T (1000).
        betas: optional explicit schedule; default :func:`diffsal_cosine_betas`.
        spacing: the timestep plan, ``"reference"`` (DiffSal's) or ``"even"`` (see :func:`ddim_plan`).
    """

    def __init__(self, num_timesteps: int = 1000, betas: np.ndarray | None = None, spacing: str = "reference") -> None:
        betas = diffsal_cosine_betas(num_timesteps) if betas is None else np.asarray(betas, dtype=np.float64)
        if betas.shape != (num_timesteps,):
            raise UsageError(f"betas must have shape ({num_timesteps},), got {betas.shape}")
        self.num_timesteps = num_timesteps
        ddim_plan(1, num_timesteps, spacing)  # an unknown spacing fails here, not at the first sample
        self.spacing = spacing
        # Reference quirk kept: betas go to float32 first and the cumulative product runs in float32.
        b32 = torch.tensor(betas, dtype=torch.float32, device="cpu")  # host-side table, whatever the default device
        self.alphas_cumprod = torch.cumprod(1.0 - b32, dim=0)

    def timesteps(self, steps: int) -> list[DDIMStep]:
        """Visited timesteps, largest first (:func:`ddim_plan` with this scheduler's spacing)."""
        return ddim_plan(steps, self.num_timesteps, self.spacing)

    def coefficients(self, step: DDIMStep, eta: float = 0.0) -> dict[str, float]:
        """Scalar coefficients of one update (float32 arithmetic, as the reference).

        x_next = a_next_sqrt * x0 + c1 * z + c2 * eps,  eps = (r * x_t - x0) / rm1.
        """
        return ddim_coefficients(self.alphas_cumprod, step, eta, sqrt=torch.sqrt)

    def passes(self, steps: int) -> int:
        """Denoiser passes ``steps`` runs: ``steps`` with even spacing; the reference plan
        ``range(0, T, T // steps)`` visits more when ``steps`` does not divide T (3: 999, 666, 333, 0)."""
        return len(self.timesteps(steps))

    def step(
        self,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        step: DDIMStep,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """x_{t_next} from x_t and the denoiser's x0 prediction. Returns x0 on the final step."""
        if step.t_next < 0:
            return x0
        c = self.coefficients(step, eta)
        if c["c1"] != 0.0 and noise is None:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return apply_ddim(x0, x_t, c, noise)
