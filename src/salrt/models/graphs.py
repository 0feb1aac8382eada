"""Export views of the models: flat tensor inputs and outputs, one module per graph.

A model declares its graphs (:meth:`salrt.models.base.SaliencyModel.export_graphs`) and the role
each plays (``encoders``, ``denoiser``, ``sampler``, ``predictor``); exporters and the graph
backends (onnxruntime, TensorRT) read both from the model or its export manifest and never ask
which model it is. The generic sets:

- one-pass models: ``predictor``: video, audio -> map;
- diffusion models: ``encoder``: video, audio, [conditions...] -> f0..fN (the per-clip features
  of :meth:`feature_tensors`) [, ``steps_raw`` (B,): an adaptive step count's raw output];
  ``denoiser``: x_t (B,1,H,W), t (B,) int64, f0..fN -> x0; ``sampler``: video, audio,
  [conditions...], noise (x_T) -> map: the encoder, the scheduler's plan unrolled (eta = 0) and
  the final clamp to [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn


class PredictorGraph(nn.Module):
    """video, audio, [conditions...] -> map: one pass of a direct (non-diffusion) model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.conditions = tuple(model.conditions)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        return self.model.predict(video, audio, **dict(zip(self.conditions, cond)))


class SamplerGraph(nn.Module):
    """video, audio, [conditions...], noise -> map: the model's encoder, ``steps`` of its scheduler's
    plan (eta = 0; the coefficients traced in as constants) and the final clamp to [0, 1]."""

    def __init__(self, model: nn.Module, steps: int = 4) -> None:
        super().__init__()
        self.model = model
        self.plan = model.scheduler.timesteps(steps)
        self.conditions = tuple(model.conditions)

    def forward(self, video: torch.Tensor, audio: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        *cond, noise = rest
        feats = self.model.encode(video, audio, **dict(zip(self.conditions, cond)))
        x = noise
        ones = torch.ones_like(noise[:, 0, 0, 0], dtype=torch.long)
        for step in self.plan:
            x = self.model.scheduler.step(self.model.denoise(x, ones * step.t, feats), x, step)
        return x.clamp(0.0, 1.0)


class EncoderGraph(nn.Module):
    """video, audio, [conditions...] -> f0..fN [, steps_raw]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.conditions = tuple(model.conditions)
        self.adaptive = hasattr(model, "raw_step_count")

    def forward(self, video: torch.Tensor, audio: torch.Tensor, *cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.model.encode(video, audio, **dict(zip(self.conditions, cond)))
        out = self.model.feature_tensors(feats)
        return (*out, self.model.raw_step_count(feats)) if self.adaptive else tuple(out)


class DenoiserGraph(nn.Module):
    """x_t (B,1,H,W), t (B,) int64, f0..fN -> x0: one denoiser pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        return self.model.denoise(x_t, t, self.model.features_from(features))
