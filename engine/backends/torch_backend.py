"""PyTorch eager and ``torch.compile`` backends over a loaded model."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class TorchBackend:
    """``model.encode/denoise/sample`` with numpy or tensor inputs moved to the model's device/dtype."""

    steps = None

    max_graphs = 4  # captured (batch, steps) shapes kept (each holds its activations)

    def __init__(self, model: Any, compile: bool = False, cuda_graphs: bool = True) -> None:
        self.model = model.eval()
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple[int, int], Any] = {}
        self._pool: Any = None
        self.name = "torch-compile" if compile else "torch"
        if compile:
            for part in ("video_encoder", "denoiser"):
                if hasattr(model, part):
                    getattr(model, part).forward = torch.compile(getattr(model, part).forward, dynamic=False)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype

    def _t(self, x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        if self.device.type == "cuda" and t.device.type == "cpu":
            t = t.pin_memory()  # pinned host buffer: the copy overlaps the previous clip's compute
        return t.to(self.device, dtype or self.dtype, non_blocking=True)

    @torch.inference_mode()
    def encode(self, video: Any, audio: Any) -> Any:
        return self.model.encode(self._t(video), self._t(audio))

    @torch.inference_mode()
    def denoise(self, x_t: Any, t: Any, features: Any) -> torch.Tensor:
        return self.model.denoise(self._t(x_t), self._t(t, torch.long), features)

    @torch.inference_mode()
    def sample(
        self,
        video: Any,
        audio: Any,
        steps: int | None = 4,
        noise: Any = None,
        seed: int | None = None,
        **conditions: Any,
    ) -> torch.Tensor:
        cond = {k: self._t(v, torch.long) if not _is_float(v) else self._t(v) for k, v in conditions.items()}
        if noise is not None and steps is not None and self._graphs_apply():
            # CUDA: a clip's denoiser passes are one CUDA-graph replay per (batch, steps)
            v, a, n = self._t(video), self._t(audio), self._t(noise)
            return self._graph_for(v.shape[0], steps)(v, a, n, **cond)
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        return self.model.sample(
            self._t(video),
            self._t(audio),
            steps=steps,
            noise=None if noise is None else self._t(noise),
            generator=gen,
            **cond,
        )

    def _graphs_apply(self) -> bool:
        return self.cuda_graphs and self.device.type == "cuda" and self.model.kind == "diffusion"

    def _graph_for(self, batch: int, steps: int) -> Any:
        """The captured sampler of this (batch, steps), the least recently used dropped beyond
        ``max_graphs``; all share one memory pool (they replay one at a time)."""
        from salrt.kernels.sampler import GraphSampler

        key = (batch, steps)
        if key in self._graphs:
            self._graphs[key] = self._graphs.pop(key)  # most recently used last
            return self._graphs[key]
        if len(self._graphs) >= self.max_graphs:
            self._graphs.pop(next(iter(self._graphs)))
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        self._graphs[key] = GraphSampler(self.model, batch, steps, pool=self._pool)
        return self._graphs[key]

    def passes(self, steps: int | None) -> int | None:
        return self.model.passes(steps) if self.model.kind == "diffusion" else None


def _is_float(x: Any) -> bool:
    return (
        bool(x.is_floating_point()) if isinstance(x, torch.Tensor) else np.issubdtype(np.asarray(x).dtype, np.floating)
    )
