"""CUDA-graph capture of a whole sampler (the torch backend on CUDA: each clip one graph replay)."""

from __future__ import annotations

from typing import Any

import torch


class GraphSampler:
    """A whole clip on a fixed batch captured in one CUDA graph: the encoders (static video, audio
    and condition buffers), the denoiser passes and updates of ``steps`` of the model's plan and the
    final clamp (diffusion models; the update is the scheduler's ``step``, the fused Triton update
    when kernels are on), or the one pass of a direct model. With ``encoders=False``, or when the
    encoders cannot be captured (a host sync inside them), only the steps are captured and the
    encoders run eagerly before each replay, their features copied into static buffers through
    :meth:`feature_tensors` / :meth:`features_from`. Captured on a side stream into this sampler's
    own memory pool, after a warm-up there (autotuning, allocations). eta = 0. CUDA only."""

    def __init__(self, model: Any, batch: int, steps: int = 4, pool: Any = None, encoders: bool = True) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError("GraphSampler needs CUDA")
        self.model, self.steps, self.encoders = model, steps, encoders
        self.pool = pool if pool is not None else torch.cuda.graph_pool_handle()
        p = next(model.parameters())
        cfg = model.config
        self.diffusion = model.kind == "diffusion"
        self.plan = model.scheduler.timesteps(steps) if self.diffusion else []
        self.x = torch.zeros((batch, 1, cfg.height, cfg.width), device=p.device, dtype=p.dtype)
        self.ts = [torch.full((batch,), s.t, dtype=torch.long, device=p.device) for s in self.plan]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: list[torch.Tensor] = []
        self.inputs: dict[str, torch.Tensor] = {}

    def _steps(self, feats: Any) -> torch.Tensor:
        x = self.x
        for st, t in zip(self.plan, self.ts):
            x = self.model.scheduler.step(self.model.denoise(x, t, feats), x, st)
        return x.clamp(0.0, 1.0)

    def _clip(self) -> torch.Tensor:
        """What the graph holds: from the static buffers to the map."""
        cond = {k: v for k, v in self.inputs.items() if k not in ("video", "audio")}
        if not self.diffusion:
            return self.model.predict(self.inputs["video"], self.inputs["audio"], **cond)
        if self.encoders:
            feats = self.model.encode(self.inputs["video"], self.inputs["audio"], **cond)
        else:
            feats = self.model.features_from(tuple(self.static))
        return self._steps(feats)

    def _capture(self) -> None:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            self._clip()  # warm-up outside the capture
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
            self.out = self._clip()
        self.graph = graph

    @torch.inference_mode()
    def __call__(
        self, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor | None = None, **conditions: Any
    ) -> torch.Tensor:
        feed = {"video": video, "audio": audio, **conditions}
        if self.graph is None:
            self.inputs = {k: v.clone() for k, v in feed.items()}
            if noise is not None:
                self.x.copy_(noise)
            if self.encoders or not self.diffusion:
                try:
                    self._capture()
                except RuntimeError as exc:  # e.g. a host sync in an encoder: capture the steps only
                    if not self.diffusion:
                        raise
                    import warnings

                    warnings.warn(f"encoders not captured in the CUDA graph ({str(exc).splitlines()[0]})", stacklevel=2)
                    self.encoders, self.graph = False, None
                    self.pool = torch.cuda.graph_pool_handle()
            if self.graph is None:
                self.static = [t.clone() for t in self.model.feature_tensors(self.model.encode(**feed))]
                self._capture()
        if self.diffusion and not self.encoders:
            for dst, src in zip(self.static, self.model.feature_tensors(self.model.encode(**feed))):
                dst.copy_(src)
        else:
            for k, v in feed.items():
                self.inputs[k].copy_(v)
        if noise is not None:
            self.x.copy_(noise)
        assert self.graph is not None
        self.graph.replay()
        return self.out.clone()
