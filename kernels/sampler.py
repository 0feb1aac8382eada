"""The DDIM scheduler with the fused update kernel, and CUDA-graph capture of a whole sampler."""

from __future__ import annotations

from typing import Any

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


class GraphSampler:
    """The denoiser passes and updates of ``steps`` of the model's plan, plus the final clamp, for a
    fixed batch, captured in one CUDA graph (any diffusion model: its features are copied into
    static buffers through :meth:`feature_tensors` / :meth:`features_from`); the encoders run
    eagerly before each replay. The update is the model scheduler's ``step`` (the fused Triton
    update when kernels are on). eta = 0. CUDA only."""

    def __init__(self, model: Any, batch: int, steps: int = 4, pool: Any = None) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("GraphSampler needs CUDA")
        self.model, self.steps, self.pool = model, steps, pool
        p = next(model.parameters())
        cfg = model.config
        self.plan = model.scheduler.timesteps(steps)
        self.x = torch.zeros((batch, 1, cfg.height, cfg.width), device=p.device, dtype=p.dtype)
        self.ts = [torch.full((batch,), s.t, dtype=torch.long, device=p.device) for s in self.plan]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: list[torch.Tensor] = []

    def _loop(self) -> torch.Tensor:
        feats = self.model.features_from(tuple(self.static))
        x = self.x
        for st, t in zip(self.plan, self.ts):
            x = self.model.scheduler.step(self.model.denoise(x, t, feats), x, st)
        return x.clamp(0.0, 1.0)

    @torch.inference_mode()
    def __call__(
        self, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor, **conditions: Any
    ) -> torch.Tensor:
        tensors = self.model.feature_tensors(self.model.encode(video, audio, **conditions))
        if self.graph is None:
            self.static = [t.clone() for t in tensors]
            self.x.copy_(noise)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                self._loop()  # warm-up (autotuning, allocations) outside the capture
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=self.pool, capture_error_mode="thread_local"):
                self.out = self._loop()
        for dst, src in zip(self.static, tensors):
            dst.copy_(src)
        self.x.copy_(noise)
        self.graph.replay()
        return self.out.clone()
