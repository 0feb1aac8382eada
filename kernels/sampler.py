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
    def from_scheduler(cls, s: DDIMScheduler, force: bool = False) -> "TritonDDIMScheduler":
        new = cls(s.num_timesteps)
        new.alphas_cumprod = s.alphas_cumprod
        new.force = force
        return new

    def step(self, x0: torch.Tensor, x_t: torch.Tensor, step: DDIMStep, eta: float = 0.0,
             noise: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:  # fmt: skip
        from salrt.kernels.ddim import ddim_update

        if not (x0.is_cuda or self.force) or (eta > 0 and noise is not None):
            return super().step(x0, x_t, step, eta, noise, generator)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator).item()) if eta > 0 else 0
        return ddim_update(x0, x_t, self.coefficients(step, eta), seed=seed)


class GraphSampler:
    """Captures encoders-excluded sampling (``steps`` denoiser passes + fused updates + clamp) of a
    fixed batch in one CUDA graph, so a clip's sampling is one replay. CUDA only."""

    def __init__(self, model: Any, batch: int, steps: int = 4) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("GraphSampler needs CUDA")
        from salrt.kernels.ddim import ddim_update

        self.model, self.steps = model, steps
        p = next(model.parameters())
        cfg = model.config
        self.plan = model.scheduler.timesteps(steps)
        self.coefs = [model.scheduler.coefficients(s, 0.0) for s in self.plan]
        self.x = torch.zeros((batch, 1, cfg.height, cfg.width), device=p.device, dtype=p.dtype)
        self.ts = [torch.full((batch,), s.t, dtype=torch.long, device=p.device) for s in self.plan]
        self._update = ddim_update
        self.graph: torch.cuda.CUDAGraph | None = None
        self.feats: Any = None

    def _loop(self) -> torch.Tensor:
        x = self.x
        for t, c in zip(self.ts, self.coefs):
            x0 = self.model.denoiser(x, t, self.feats.video, self.feats.audio_aligned)
            x = self._update(x0, x, c, clamp=(0.0, 1.0) if c["final"] else None)
        return x

    @torch.inference_mode()
    def __call__(self, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        feats = self.model.encode(video, audio)
        if self.graph is None:
            self.feats = feats
            self.x.copy_(noise)
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                self._loop()  # warm-up (autotuning, allocations) outside the capture
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = self._loop()
        for dst, src in zip([*self.feats.video, *self.feats.audio_aligned], [*feats.video, *feats.audio_aligned]):
            dst.copy_(src)
        self.x.copy_(noise)
        self.graph.replay()
        return self.out.clone()
