"""Export-friendly views of the models: flat tensor inputs and outputs, one module per graph.

Graphs (names are part of the exported contract, see ``manifest.json``). DiffSal:

- ``video_encoder``: video (B,3,T,H,W) -> v0..v3, the four MViT scales, coarsest first;
- ``audio_encoder``: audio (B,1,S,h,w) -> a0..a3, the audio features aligned to each decoder stage;
- ``denoiser``: x_t (B,1,H,W), t (B,) int64, v0..v2, a0..a3 -> x0 (B,1,H,W), one Saliency-UNet pass
  (the finest video scale v3 is computed by the encoder, as in the reference, but never used);
- ``sampler``: video, audio, noise (x_T) -> map (B,1,H,W): both encoders and the whole
  ``steps``-step DDIM loop (eta = 0) unrolled, with the reference's final clamp to [0, 1].

MUBiC and TAVDiff: ``encoder`` (-> f0..fN [, steps_raw]), ``denoiser`` and ``sampler`` (their
conditions, e.g. ``text``, between audio and noise). One-pass models: ``predictor``.
"""

from __future__ import annotations

import torch
from torch import nn

from salrt.models.diffsal import DiffSal

VIDEO_FEATURES = ("v0", "v1", "v2", "v3")
DENOISER_VIDEO = VIDEO_FEATURES[:3]
AUDIO_FEATURES = ("a0", "a1", "a2", "a3")


class VideoEncoderGraph(nn.Module):
    """video -> (v0, v1, v2, v3)."""

    def __init__(self, model: DiffSal) -> None:
        super().__init__()
        self.video_encoder = model.video_encoder

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.video_encoder(video))


class AudioEncoderGraph(nn.Module):
    """audio -> (a0, a1, a2, a3); the stage sizes come from the config (the alignment only needs
    the coarsest video scale's size)."""

    def __init__(self, model: DiffSal, coarsest_hw: tuple[int, int]) -> None:
        super().__init__()
        self.audio_encoder = model.audio_encoder
        self.stages = model.denoiser.stages
        self.hw = coarsest_hw

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.audio_encoder(audio)
        h0, w0 = self.hw
        return tuple(stage.align(feats, (h0 * 2**i, w0 * 2**i)) for i, stage in enumerate(self.stages))


class DenoiserGraph(nn.Module):
    """x_t, t, v0..v2, a0..a3 -> x0."""

    def __init__(self, model: DiffSal) -> None:
        super().__init__()
        self.denoiser = model.denoiser

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor,
                a0: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, a3: torch.Tensor) -> torch.Tensor:  # fmt: skip
        return self.denoiser(x_t, t, (v0, v1, v2), (a0, a1, a2, a3))


class PredictorGraph(nn.Module):
    """video, audio -> map: one pass of a direct (non-diffusion) model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return self.model.predict(video, audio)


class SamplerGraph(nn.Module):
    """video, audio, [conditions...], noise -> map: a diffusion model's encoder, ``steps`` unrolled
    DDIM steps (eta = 0) of its denoiser (the scheduler's coefficients traced in as constants), and
    the final clamp to [0, 1] (the reference's)."""

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


class ConditionalEncoderGraph(nn.Module):
    """video, audio, [conditions...] -> f0..fN (the per-clip features) [, steps_raw (B,): the
    adaptive step MLP's output, for models that have one]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.conditions = tuple(model.conditions)
        self.adaptive = hasattr(model, "raw_step_count")

    def forward(self, video: torch.Tensor, audio: torch.Tensor, *cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.model.encode(video, audio, **dict(zip(self.conditions, cond)))
        out = self.model.feature_tensors(feats)
        return (*out, self.model.raw_step_count(feats)) if self.adaptive else tuple(out)


class ConditionalDenoiserGraph(nn.Module):
    """x_t (B,1,H,W), t (B,) int64, f0..fN -> x0: one denoiser pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *features: torch.Tensor) -> torch.Tensor:
        return self.model.denoise(x_t, t, self.model.features_from(features))
