"""What every salrt model shares: config (de)serialisation, input checks, the sampling API.

A model has ``name``, ``config`` (with ``frames``, ``height``, ``width``, ``video_shape``,
``audio_shape``, ``audio_format``, ``target``), ``kind`` ("diffusion" or "direct") and
``sample(video, audio, steps, eta, noise, generator, **conditions)`` returning maps (B,1,H,W)
in 0..1. Direct (one-pass) models ignore ``steps``/``noise``: the runtime, backends, export and
bench treat every model alike.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from salrt.io import audio as A
from salrt.models.blocks import check_input
from salrt.models.mvit import MViTConfig
from salrt.errors import UsageError


class ConfigMixin:
    """``to_dict`` / ``from_dict`` (nested dataclasses, lists -> tuples) / ``preset`` for frozen dataclasses."""

    PRESETS: typing.ClassVar[dict[str, dict[str, Any]]] = {}
    # how the model's clips are made (salrt.io.contract.InputContract.of reads these)
    audio_format = "logmel"  # or "waveform"
    target = "centre"  # the frame each clip's map belongs to: "centre" (median) or "last"
    start = "repeat"  # early clips repeat the first frame ("reverse": AVRSP's reversed window)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - fields
        if unknown:
            raise UsageError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        kw: dict[str, Any] = {}
        for k, v in data.items():
            sub = hints.get(k)
            if dataclasses.is_dataclass(sub) and isinstance(v, dict):
                v = sub(**{a: tuple(b) if isinstance(b, list) else b for a, b in v.items()})  # type: ignore[operator]
            elif isinstance(v, list):
                v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
            kw[k] = v
        return cls(**kw)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """(3, T, H, W) of one clip."""
        return (3, self.frames, self.height, self.width)  # type: ignore[attr-defined]

    @property
    def audio_shape(self) -> tuple[int, ...]:
        """(1, S, h, w) log-mel slices, or (1, N) waveform samples, of one clip."""
        if getattr(self, "audio_format", "logmel") == "waveform":
            return (1, self.audio_samples)  # type: ignore[attr-defined]
        return (1, self.audio_slices, self.audio_height, self.audio_width)  # type: ignore[attr-defined]

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        """The names :meth:`preset` accepts."""
        return ("paper", *cls.PRESETS)

    @classmethod
    def preset(cls, name: str) -> Any:
        if name == "paper":
            return cls()
        if name not in cls.PRESETS:
            raise UsageError(f"unknown {cls.__name__} preset {name!r} (choose from: paper, {', '.join(cls.PRESETS)})")
        return cls(**cls.PRESETS[name])


@dataclass(frozen=True)
class MViTVGGishConfig(ConfigMixin):
    """Input sizes and encoders shared by DiffSal and the models built on it (MUBiC, DTFSal):
    MViTv2-S on RGB clips and VGGish + one temporal transformer layer on log-mel slices."""

    frames: int = 16
    height: int = 224
    width: int = 384
    audio_slices: int = 9
    audio_height: int = 112
    audio_width: int = 192
    mvit: MViTConfig = field(default_factory=MViTConfig)
    vggish_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    audio_heads: int = 2
    audio_dim_head: int = 64
    audio_mlp_dim: int = 256


@dataclass(frozen=True)
class S3DSoundNetConfig(ConfigMixin):
    """Input sizes and encoders shared by TAVDiff and AVRSP: S3D on RGB clips, SoundNet on a mono
    waveform at 22.05 kHz centred in ``audio_samples`` (STAViS' 1.6 s buffer by default)."""

    frames: int = 16
    height: int = 224
    width: int = 384
    audio_samples: int = A.REFERENCE_BUFFER
    s3d_width_div: int = 1
    soundnet_width_div: int = 1

    audio_format = "waveform"
    audio_rate = A.WAVEFORM_RATE


class SaliencyModel(nn.Module):
    """Base class of every salrt model (one-pass and diffusion)."""

    name = "model"
    kind = "direct"
    conditions: tuple[str, ...] = ()  # extra per-clip inputs beyond video and audio (e.g. "text")
    config: Any

    def check(self, name: str, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return check_input(self, name, x, shape)

    def parts(self) -> dict[str, nn.Module]:
        """Sub-networks whose parameters :meth:`parameter_counts` reports."""
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.parts().items()}

    def condition_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per-clip shape and dtype of each extra input named in ``conditions``."""
        return {}

    def predict(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> torch.Tensor:
        return self.predict(video, audio, **conditions)

    @torch.no_grad()
    def sample(self, video: torch.Tensor, audio: torch.Tensor, steps: int = 4, eta: float = 0.0,
               noise: torch.Tensor | None = None, generator: torch.Generator | None = None, **conditions: Any) -> torch.Tensor:  # fmt: skip
        """Maps (B,1,H,W) in 0..1. One-pass models: a single forward; ``steps``/``noise`` unused."""
        return self.predict(video, audio, **conditions)


class DiffusionModel(SaliencyModel):
    """A conditional x0-predicting diffusion model: ``encode`` once per clip, ``denoise`` per step,
    sampled with the shared DDIM scheduler (``self.scheduler``)."""

    kind = "diffusion"
    scheduler: Any

    def encode(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> Any:
        raise NotImplementedError

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, features: Any) -> torch.Tensor:
        raise NotImplementedError

    def step_counts(self, features: Any, steps: int | None) -> list[int]:
        """DDIM steps per batch item: ``steps`` for all, or the model's own choice when None."""
        if steps is None:
            raise UsageError(f"{self.name} has no adaptive step count: pass steps")
        return [int(steps)] * self.batch_of(features)

    @staticmethod
    def batch_of(features: Any) -> int:
        first = features[0] if isinstance(features, (tuple, list)) else features
        while isinstance(first, (tuple, list)):
            first = first[0]
        return int(first.shape[0])

    @torch.no_grad()
    def sample(self, video: torch.Tensor, audio: torch.Tensor, steps: int | None = 4, eta: float = 0.0,
               noise: torch.Tensor | None = None, generator: torch.Generator | None = None, **conditions: Any) -> torch.Tensor:  # fmt: skip
        """DDIM from x_T (``noise`` or drawn from ``generator``) -> maps (B,1,H,W) clamped to 0..1."""
        if eta < 0:
            raise UsageError(f"eta must be >= 0, got {eta}")
        feats = self.encode(video, audio, **conditions)
        b = self.batch_of(feats)
        p = next(self.parameters())
        shape = (b, 1, self.config.height, self.config.width)
        if noise is None:
            x_T = torch.randn(shape, generator=generator, device=p.device, dtype=p.dtype)
        else:
            x_T = self.check("noise", noise, shape[1:])
            if x_T.shape[0] != b:
                raise UsageError(f"noise batch {x_T.shape[0]} does not match the clip batch {b}")
            if generator is None and eta > 0:
                generator = torch.Generator(device=p.device).manual_seed(0)
        counts = self.step_counts(feats, steps)
        out = torch.empty_like(x_T)
        for n in sorted(set(counts)):  # items that chose the same step count run together
            idx = [i for i, c in enumerate(counts) if c == n]
            sel = torch.tensor(idx, device=p.device)
            f = self.select(feats, sel) if len(idx) < b else feats
            x = x_T[sel]
            for step in self.scheduler.timesteps(n):
                t = torch.full((len(idx),), step.t, dtype=torch.long, device=p.device)
                x = self.scheduler.step(self.denoise(x, t, f), x, step, eta=eta, generator=generator)
            out[sel] = x
        return out.clamp(0.0, 1.0)

    @staticmethod
    def select(features: Any, idx: torch.Tensor) -> Any:
        """The batch items ``idx`` of (nested tuples of) feature tensors."""
        if isinstance(features, torch.Tensor):
            return features.index_select(0, idx)
        return type(features)(*(DiffusionModel.select(f, idx) for f in features)) if hasattr(features, "_fields") \
            else type(features)(DiffusionModel.select(f, idx) for f in features)  # fmt: skip
