"""DiffSal (Xiong et al., CVPR 2024): MViTv2-S + VGGish encoders and the Saliency-UNet denoiser.

Public surface: :class:`DiffSalConfig` (with the ``paper`` and ``tiny`` presets),
:class:`DiffSalFeatures`, and :class:`DiffSal` with ``encode`` / ``denoise`` / ``sample``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from salrt.checkpoint import check_and_load, extract_state_dict, read_torch_file
from salrt.errors import CheckpointError, UsageError
from salrt.models.base import DiffusionModel, MViTVGGishConfig, check_field_types
from salrt.models.mvit import MViT, MViTConfig, reference_attention
from salrt.models.recipe import TrainingRecipe, diffusion_x0_loss
from salrt.models.saliency_unet import SaliencyUNet, UNetConfig
from salrt.models.vggish import AudioEncoder
from salrt.sampling.ddim import DDIMScheduler
from salrt.sampling.schedule import DDIMStep

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
    # the reference plan range(0, T, T // steps), kept for checkpoint fidelity (N + 1 passes for some N)
    timestep_spacing: str = "reference"

    def __post_init__(self) -> None:
        super().__post_init__()
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
    def from_dict(cls, data: dict[str, Any]) -> DiffSalConfig:
        data = dict(data)
        mvit = MViTConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.pop("mvit", {}).items()})
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise UsageError(f"unknown DiffSal config keys: {sorted(unknown)}")
        check_field_types(cls, data)
        return cls(mvit=mvit, **{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        return ("paper", "tiny")

    def with_video_shape(self, frames: int, height: int, width: int) -> DiffSalConfig:
        """Other clip sizes: the log-mel grid follows the video (T/2 + 1 slices of H/2 x W/2)."""
        return dataclasses.replace(
            self,
            frames=frames,
            height=height,
            width=width,
            audio_slices=frames // 2 + 1,
            audio_height=height // 2,
            audio_width=width // 2,
        )

    @classmethod
    def preset(cls, name: str) -> DiffSalConfig:
        """``paper``: the released model. ``tiny``: same code, few channels and small frames (tests)."""
        if name == "paper":
            return cls()
        if name == "tiny":
            return cls(
                height=64,
                width=128,
                audio_height=32,
                audio_width=64,
                mvit=MViTConfig(
                    embed_dim=8, depth=4, num_heads=1, downscale_layers=(1, 2, 3), table_input=(16, 64, 64)
                ),
                vggish_channels=(8, 8, 16, 16),
                audio_heads=2,
                audio_dim_head=8,
                audio_mlp_dim=16,
                group_norm_groups=4,
            )
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
    paper_figures = {
        "paper": (("params (thop)", 76.57, "M", "paper_params"), ("FLOPs (thop MACs)", 187.31, "G", "paper_macs"))
    }

    def training_recipe(self) -> TrainingRecipe:
        """The reference code's training (``diffusion_trainer.py``, ``cfgs/diffusion.yml``): x0 target,
        squared error summed over the map's pixels and averaged over the batch (``loss_mse``, weight 1;
        the KL/CC/SIM/NSS terms are off), one timestep for the whole batch drawn uniformly from
        0..999, the target dequantized with N(0, 0.01^2) noise first (``gaussian_dequantization``),
        Adam 1e-4 (betas 0.9/0.999, eps 1e-8, no weight decay), gradient-norm clip 1.0, MultiStepLR
        x0.1 at 50 % and 75 % of the epochs; batch 48, 4 epochs on the audio-visual sets (3 on DHF1K).
        Not kept: the reference pads a short last batch by repeating its last clip."""
        return TrainingRecipe(
            loss=lambda m, b, g: diffusion_x0_loss(m, b, g, one_t_per_batch=True, dequantize=0.01),
            optimizer=lambda p: torch.optim.Adam(p, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
            scheduler=lambda opt, epochs: torch.optim.lr_scheduler.MultiStepLR(
                opt, [int(epochs * 0.5), int(epochs * 0.75)], gamma=0.1
            ),
            grad_clip=1.0,
            batch_size=48,
            epochs=4,
            source="DiffSal reference code (diffusion_trainer.py, cfgs/diffusion.yml)",
        )

    def cost_parts(self, count: Any, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor) -> None:
        """The reference's parts: video and audio encoders, the per-clip audio alignment, one step."""
        scales = count("video_encoder", lambda: self.video_encoder(inputs["video"]))
        audio_feats = count("audio_encoder", lambda: self.audio_encoder(inputs["audio"]))
        aligned = count("audio_alignment", lambda: self.denoiser.align_audio(audio_feats, scales))
        count("denoiser_step", lambda: self.denoiser(x_t, t, scales, aligned))

    def __init__(self, config: DiffSalConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffSalConfig()
        cfg = self.config
        self.video_encoder = MViT(cfg.mvit)
        self.audio_encoder = AudioEncoder(cfg.vggish_channels, cfg.audio_heads, cfg.audio_dim_head, cfg.audio_mlp_dim)
        self.denoiser = SaliencyUNet(cfg.unet())
        self.scheduler = DDIMScheduler(cfg.num_timesteps, spacing=cfg.timestep_spacing)

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

    # -- the authors' inference loop, as ``salrt bench`` times it for its baseline --------------
    def reference_encode(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Both encoders, with the MViT attention scores materialised as the reference computes them."""
        with torch.no_grad(), reference_attention(self):
            return self.video_encoder(video), self.audio_encoder(audio)

    def reference_step(
        self, saved: list[torch.Tensor], audio_feats: torch.Tensor, x: torch.Tensor, step: DDIMStep
    ) -> torch.Tensor:
        """One step as the reference runs it: feature copy, alignment inside the step, host round trip."""
        with torch.no_grad():
            feats = copy.deepcopy(saved)  # the reference mutates its feature list every step
            aligned = self.denoiser.align_audio(audio_feats, feats)
            t = torch.full((x.shape[0],), step.t, dtype=torch.long, device=x.device)
            x0 = self.denoiser(x, t, feats, aligned)
            return self.scheduler.step(x0, x, step).cpu().to(x0.device)

    def reference_sample(
        self, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor, steps: int
    ) -> torch.Tensor:
        """The authors' inference loop (eager fp32): encoders once, then per step the above."""
        video_feats, audio_feats = self.reference_encode(video, audio)
        x = noise
        for step in self.scheduler.timesteps(steps):
            x = self.reference_step(video_feats, audio_feats, x, step)
        return x.clamp(0, 1)

    def load_authors_checkpoint(self, path: str) -> None:
        """The authors' checkpoint (``{"state_dict": ...}`` from DataParallel, ``module.`` prefixes;
        bare and salrt-named state dicts too), mapped by :data:`_REFERENCE_RULES`."""
        load_diffsal_checkpoint(self, path)

    def feature_tensors(self, features: DiffSalFeatures) -> tuple[torch.Tensor, ...]:
        """(v0..v3, audio, a0..a3): the four video scales, the audio features, the aligned audio."""
        return (*features.video, features.audio, *features.audio_aligned)

    def features_from(self, tensors: tuple[torch.Tensor, ...]) -> DiffSalFeatures:
        n = len(self.denoiser.stages)
        return DiffSalFeatures(tuple(tensors[: -n - 1]), tensors[-n - 1], tuple(tensors[-n:]))

    # -- export: DiffSal's encoders are two graphs (the reference's split), fed by name --------
    def graph_roles(self) -> dict[str, object]:
        return {"encoders": ["video_encoder", "audio_encoder"], "denoiser": "denoiser", "sampler": "sampler"}

    def export_graphs(self, steps: int) -> dict[str, nn.Module]:
        from salrt.models.graphs import SamplerGraph

        io = self.graph_io(1)
        coarsest = io["video_encoder"]["outputs"]["v0"][-2:]
        return {
            "video_encoder": _VideoEncoderGraph(self),
            "audio_encoder": _AudioEncoderGraph(self, coarsest),
            "denoiser": _DenoiserGraph(self),
            "sampler": SamplerGraph(self, steps),
        }

    def graph_io(self, batch: int) -> dict[str, dict[str, dict[str, tuple[int, ...]]]]:
        """video_encoder: video -> v0..v3 (the MViT scales, coarsest first); audio_encoder: audio ->
        a0..a3 (the audio aligned to each decoder stage); denoiser: x_t, t, v0..v2, a0..a3 -> x0 (the
        finest scale v3 is computed, as in the reference, but never used); sampler: video, audio,
        noise -> map."""
        cfg = self.config
        x = (batch, 1, cfg.height, cfg.width)
        feats = self.meta_features(batch)
        v = {f"v{i}": tuple(f.shape) for i, f in enumerate(feats.video)}
        a = {f"a{i}": tuple(f.shape) for i, f in enumerate(feats.audio_aligned)}
        denoiser_video = {k: v[k] for k in list(v)[:3]}
        return {
            "video_encoder": {"inputs": {"video": (batch, *cfg.video_shape)}, "outputs": v},
            "audio_encoder": {"inputs": {"audio": (batch, *cfg.audio_shape)}, "outputs": a},
            "denoiser": {"inputs": {"x_t": x, "t": (batch,), **denoiser_video, **a}, "outputs": {"x0": x}},
            "sampler": {
                "inputs": {"video": (batch, *cfg.video_shape), "audio": (batch, *cfg.audio_shape), "noise": x},
                "outputs": {"map": x},
            },
        }

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per sub-network."""
        return {
            "video_encoder": sum(p.numel() for p in self.video_encoder.parameters()),
            "audio_encoder": sum(p.numel() for p in self.audio_encoder.audio_net.parameters()),
            "audio_temporal": sum(p.numel() for p in self.audio_encoder.spatiotemp_net.parameters()),
            "denoiser": sum(p.numel() for p in self.denoiser.parameters()),
        }


class _VideoEncoderGraph(nn.Module):
    """video -> (v0, v1, v2, v3)."""

    def __init__(self, model: DiffSal) -> None:
        super().__init__()
        self.video_encoder = model.video_encoder

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.video_encoder(video))


class _AudioEncoderGraph(nn.Module):
    """audio -> (a0, a1, a2, a3); the stage sizes come from the coarsest video scale's size (the
    alignment needs nothing else of the video)."""

    def __init__(self, model: DiffSal, coarsest_hw: tuple[int, int]) -> None:
        super().__init__()
        self.audio_encoder = model.audio_encoder
        self.stages = model.denoiser.stages
        self.hw = coarsest_hw

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.audio_encoder(audio)
        h0, w0 = self.hw
        return tuple(stage.align(feats, (h0 * 2**i, w0 * 2**i)) for i, stage in enumerate(self.stages))


class _DenoiserGraph(nn.Module):
    """x_t, t, v0..v2, a0..a3 -> x0."""

    def __init__(self, model: DiffSal) -> None:
        super().__init__()
        self.denoiser = model.denoiser

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        v0: torch.Tensor,
        v1: torch.Tensor,
        v2: torch.Tensor,
        a0: torch.Tensor,
        a1: torch.Tensor,
        a2: torch.Tensor,
        a3: torch.Tensor,
    ) -> torch.Tensor:
        return self.denoiser(x_t, t, (v0, v1, v2), (a0, a1, a2, a3))


# -- the authors' checkpoints (their names -> salrt's) -----------------------------------------
# Reference parameter names -> salrt names (first matching rule wins).
_REFERENCE_RULES: list[tuple[str, str]] = [
    (r"^visual_net\.", "video_encoder."),
    (r"^audio_net\.features\.", "audio_encoder.audio_net.features."),
    (r"^spatiotemp_net\.transformer\.", "audio_encoder.spatiotemp_net."),
    (r"^decoder_net\.temb\.dense\.", "denoiser.time_embed."),
    (r"^decoder_net\.conv_in\.", "denoiser.noise_encoder.conv_in."),
    (r"^decoder_net\.down1\.", "denoiser.noise_encoder.down."),
    (r"^decoder_net\.res_encoder\.(\d+)\.0\.", r"denoiser.noise_encoder.blocks.\1."),
    (r"^decoder_net\.res_encoder\.(\d+)\.1\.", r"denoiser.noise_encoder.downs.\1."),
    (
        r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.1\.",
        r"denoiser.stages.\1.upsample.conv1.",
    ),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.2\.", r"denoiser.stages.\1.upsample.bn1."),
    (
        r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.4\.",
        r"denoiser.stages.\1.upsample.conv2.",
    ),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.5\.", r"denoiser.stages.\1.upsample.bn2."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.align_conv\.", r"denoiser.stages.\1.align_conv."),
    (
        r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.attn\.conv_proj_(q|k|v)\.conv\.",
        r"denoiser.stages.\1.block.attn.\2_conv.",
    ),
    (
        r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.attn\.conv_proj_(q|k|v)\.bn\.",
        r"denoiser.stages.\1.block.attn.\2_norm.",
    ),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.", r"denoiser.stages.\1.block."),
    (r"^decoder_net\.invpt_decoder\.norm_mts\.(\d+)\.", r"denoiser.stages.\1.out_norm."),
    (r"^decoder_net\.invpt_decoder\.redu_chan_up\.(\d+)\.proj\.0\.", r"denoiser.stages.\1.temporal_reduce."),
    (r"^decoder_net\.invpt_decoder\.mt_proj\.0\.", "denoiser.head.conv."),
    (r"^decoder_net\.invpt_decoder\.mt_proj\.1\.", "denoiser.head.bn."),
    (r"^decoder_net\.logits\.linear_pred\.", "denoiser.head.logits."),
]

# Reference tensors that never influence its outputs; accepted and dropped on import.
REFERENCE_IGNORED: list[tuple[str, str]] = [
    (r"^fc\.", "the reference defines `fc` (128->512->768) but never calls it"),
    (r"^audio_net\.embeddings\.", "VGGish embedding MLP: DiffSal uses only the conv features"),
    (r"^spatiotemp_net\.to_patch_embedding\.", "audio patch embedding: computed, then discarded by the reference"),
    (r"^spatiotemp_net\.pos_embedding$", "audio position embedding: added to the discarded branch only"),
]


def reference_to_salrt(name: str) -> str | None:
    """Map one reference parameter name to salrt's, or None when the reference never uses it."""
    for pattern, _ in REFERENCE_IGNORED:
        if re.search(pattern, name):
            return None
    for pattern, repl in _REFERENCE_RULES:
        if re.search(pattern, name):
            return re.sub(pattern, repl, name)
    raise CheckpointError(f"unknown reference parameter {name!r}")


def _invert_rule(pattern: str, repl: str) -> tuple[str, str]:
    """Turn a (source regex, replacement) rule around; groups are (\\d+) or (a|b|...) only."""
    groups = re.findall(r"\([^)]*\)", pattern)
    parts = re.split(r"\\(\d)", repl)  # literal, group number, literal, ...
    inv_pattern = "^" + "".join(re.escape(p) if i % 2 == 0 else groups[int(p) - 1] for i, p in enumerate(parts))
    counter = iter(range(1, len(groups) + 1))
    inv_repl = re.sub(r"\([^)]*\)", lambda _: f"\\{next(counter)}", pattern.lstrip("^")).replace("\\.", ".")
    return inv_pattern, inv_repl


def salrt_to_reference(name: str) -> str:
    """Inverse of :func:`reference_to_salrt` (to write reference-layout state dicts)."""
    for pattern, repl in _REFERENCE_RULES:
        inv_pattern, inv_repl = _invert_rule(pattern, repl)
        if re.search(inv_pattern, name):
            return re.sub(inv_pattern, inv_repl, name)
    raise CheckpointError(f"no reference name for {name!r}")


def import_reference_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], source: str = "checkpoint") -> list[str]:
    """Load a reference-named (or salrt-named) DiffSal state dict. Returns the ignored keys."""
    own = set(model.state_dict())
    if all(k in own for k in sd):
        check_and_load(model, sd, source)
        return []
    converted: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for name, tensor in sd.items():
        try:
            new = reference_to_salrt(name)
        except CheckpointError:
            raise CheckpointError(
                f"{source}: unexpected tensor {name!r} (not part of the DiffSal reference model)"
            ) from None
        if new is None:
            ignored.append(name)
        else:
            converted[new] = tensor
    check_and_load(model, converted, source)
    return ignored


def load_diffsal_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load an authors' DiffSal checkpoint (or a bare state dict) into ``model``."""
    sd = extract_state_dict(read_torch_file(path), str(path))
    return import_reference_state_dict(model, sd, str(path))
