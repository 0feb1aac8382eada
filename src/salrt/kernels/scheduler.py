"""The DDIM scheduler whose update is the fused Triton kernel (:mod:`salrt.kernels.ddim`)."""

from __future__ import annotations

import torch

from salrt.sampling import DDIMScheduler
from salrt.sampling.schedule import DDIMStep


class TritonDDIMScheduler(DDIMScheduler):
    """:class:`DDIMScheduler` whose ``step`` is one Triton launch on CUDA (or anywhere when forced)."""

    force = False

    @classmethod
    def from_scheduler(cls, s: DDIMScheduler, force: bool = False) -> TritonDDIMScheduler:
        new = cls(s.num_timesteps, spacing=s.spacing)
        new.alphas_cumprod = s.alphas_cumprod
        new.force = force
        new._eager = s
        return new

    def eager(self) -> DDIMScheduler:
        """The scheduler this one replaced (same schedule, eager update)."""
        return self._eager

    def step(
        self,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        step: DDIMStep,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        from salrt.kernels.ddim import ddim_update

        if not (x0.is_cuda or self.force) or (eta > 0 and noise is not None):
            return super().step(x0, x_t, step, eta, noise, generator)
        # the kernel's Philox seed, drawn on the generator's own device (a CUDA generator on CUDA)
        dev = generator.device if generator is not None else x0.device
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=dev).item()) if eta > 0 else 0
        return ddim_update(x0, x_t, self.coefficients(step, eta), seed=seed)
