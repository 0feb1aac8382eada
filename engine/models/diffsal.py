"""DiffSal (Xiong et al., CVPR 2024): MViTv2-S + VGGish encoders and the Saliency-UNet denoiser.

Public surface: :class:`DiffSalConfig` (with the ``paper`` and ``tiny`` presets),
:class:`DiffSalFeatures`, and :class:`DiffSal` with ``encode`` / ``denoise`` / ``sample``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from salrt.models.base import DiffusionModel, MViTVGGishConfig
from salrt.models.mvit import MViT, MViTConfig
from salrt.models.saliency_unet import SaliencyUNet, UNetConfig
from salrt.models.vggish import AudioEncoder
from salrt.sampling.ddim import DDIMScheduler
from salrt.errors import UsageError

# Per-channel pixel statistics on the 0..255 scale (the reference's dataset.json).
VIDEO_MEAN = (114.7748, 107.7354, 99.4750)
VIDEO_STD = (38.7568578, 37.88248729, 40.02898126)


@dataclass(frozen=True)
class DiffSalConfig(MViTVGGishConfig):
    """Every shape-defining hyper-parameter of a DiffSal model."""

    decoder_heads: int = 2
    decoder_mlp_ratio: float = 2.0
    kv_kernels: tuple[int, int, int, int] = (2, 4, 8, 16)
    temporal_kernel: int = 5
    group_norm_groups: int = 32
    num_timesteps: int = 1000


    def __post_init__(self) -> None:
        if self.height % 32 or self.width % 32:
            raise UsageError(f"video size must be a multiple of 32, got {self.height}x{self.width}")
        if (self.height // 32, self.width // 32) != (self.audio_height // 16, self.audio_width // 16):
            raise UsageError(
                "the audio feature grid (audio size / 16) must equal the coarsest video grid (video size / 32): "
                f"{self.audio_height}x{self.audio_width} vs {self.height}x{self.width}"
            )
        if self.frames // 2 + 1 != self.audio_slices:
            raise UsageError(f"audio_slices must be frames/2 + 1 (= {self.frames // 2 + 1}), got {self.audio_slices}")
        t = self.frames // 2 + 1
        if (t - self.temporal_kernel) // self.temporal_kernel + 1 != 1:
            raise UsageError("the temporal reduction must yield exactly one frame")

    def unet(self) -> UNetConfig:
        chans = self.mvit.out_channels[::-1]
        return UNetConfig(
            video_channels=chans,  # type: ignore[arg-type]
            audio_channels=self.vggish_channels[-1],
            noise_channels=self.mvit.embed_dim,
            fused_channels=chans[0],
            head_channels=self.mvit.embed_dim,
            num_heads=self.decoder_heads,
            mlp_ratio=self.decoder_mlp_ratio,
            kv_kernels=self.kv_kernels,
            temporal_kernel=self.temporal_kernel,
            group_norm_groups=self.group_norm_groups,
            out_size=(self.height, self.width),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DiffSalConfig":
        data = dict(data)
        mvit = MViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.pop("mvit", {}).items()})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise UsageError(f"unknown DiffSal config keys: {sorted(unknown)}")
        return cls(mvit=mvit, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        return ("paper", "tiny")

    @classmethod
    def preset(cls, name: str) -> "DiffSalConfig":
        """``paper``: the released model. ``tiny``: same code, few channels and small frames (tests)."""
        if name == "paper":
            return cls()
        if name == "tiny":
            return cls(
                height=64, width=128, audio_height=32, audio_width=64,
                mvit=MViTConfig(embed_dim=8, depth=4, num_heads=1, downscale_layers=(1, 2, 3), table_input=(16, 64, 64)),
                vggish_channels=(8, 8, 16, 16), audio_heads=2, audio_dim_head=8, audio_mlp_dim=16,
                group_norm_groups=4,
            )  # fmt: skip
        raise UsageError(f"unknown DiffSal preset {name!r} (choose 'paper' or 'tiny')")


class DiffSalFeatures(NamedTuple):
    """Per-clip encoder outputs, computed once and reused by every denoiser step.

    video: four (B, C_i, T/2, H_i, W_i) scales, coarsest first; audio: (B, Ca, S, h, w);
    audio_aligned: the four per-stage aligned audio tensors (B, C_i, S, H_i, W_i).
    """

    video: tuple[torch.Tensor, ...]
    audio: torch.Tensor
    audio_aligned: tuple[torch.Tensor, ...]


class DiffSal(DiffusionModel):
    """The DiffSal model: encoders, Saliency-UNet denoiser, and DDIM sampling (``sample`` from
    :class:`~salrt.models.base.DiffusionModel`; the reference clamps the final map to [0, 1] as it does)."""

    name = "diffsal"

    def __init__(self, config: DiffSalConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffSalConfig()
        cfg = self.config
        self.video_encoder = MViT(cfg.mvit)
        self.audio_encoder = AudioEncoder(cfg.vggish_channels, cfg.audio_heads, cfg.audio_dim_head, cfg.audio_mlp_dim)
        self.denoiser = SaliencyUNet(cfg.unet())
        self.scheduler = DDIMScheduler(cfg.num_timesteps)

    def encode(self, video: torch.Tensor, audio: torch.Tensor) -> DiffSalFeatures:
        """Run both encoders once per clip.

        Args:
            video: (B, 3, T, H, W) normalised as :data:`VIDEO_MEAN` / :data:`VIDEO_STD` on 0..255.
            audio: (B, 1, S, h, w) VGGish log-mel slices.
        """
        cfg = self.config
        video = self.check("video", video, cfg.video_shape)
        audio = self.check("audio", audio, cfg.audio_shape)
        if video.shape[0] != audio.shape[0]:
            raise UsageError(f"video and audio batch sizes differ: {video.shape[0]} vs {audio.shape[0]}")
        scales = tuple(self.video_encoder(video))
        audio_feats = self.audio_encoder(audio)
        aligned = tuple(self.denoiser.align_audio(audio_feats, scales))
        return DiffSalFeatures(scales, audio_feats, aligned)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, features: DiffSalFeatures) -> torch.Tensor:
        """One Saliency-UNet pass: (B,1,H,W) noisy map and (B,) integer timesteps -> x0 (B,1,H,W)."""
        cfg = self.config
        x_t = self.check("x_t", x_t, (1, cfg.height, cfg.width))
        if t.dim() != 1 or t.shape[0] != x_t.shape[0] or t.is_floating_point():
            raise UsageError(f"t must be an integer tensor of shape ({x_t.shape[0]},), got {t.dtype} {tuple(t.shape)}")
        return self.denoiser(x_t, t.to(x_t.device), features.video, features.audio_aligned)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per sub-network."""
        return {
            "video_encoder": sum(p.numel() for p in self.video_encoder.parameters()),
            "audio_encoder": sum(p.numel() for p in self.audio_encoder.audio_net.parameters()),
            "audio_temporal": sum(p.numel() for p in self.audio_encoder.spatiotemp_net.parameters()),
            "denoiser": sum(p.numel() for p in self.denoiser.parameters()),
        }
