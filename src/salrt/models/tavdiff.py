"""TAVDiff (Yu et al.): S3D + SoundNet + CLIP text, SITR image-text response, and a Saliency-DiT
x0-denoiser sampled with the shared DDIM scheduler. Equation numbers are the paper's.

Choices where the paper is silent (see shared/spec/tavdiff_digest.md; it reports no cost figures):

- Inputs: 16 frames of 224x384 (DiffSal's normalisation); a mono waveform at 22.05 kHz segmented per
  frame with a Hann window per segment, centred in STAViS' 1.6 s buffer (35280 samples); captions
  tokenised by CLIP's BPE to 77 ids. The map belongs to the clip's median frame (DiffSal's lineage).
- S3D: the deepest scale (1024 ch, T/8 x H/32 x W/32) is f_v; SoundNet conv7 (1024 ch) is f_a;
  CLIP ViT-B/32's text tower gives per-token features (512).
- SITR [1], ambiguity resolved: scores Q_t K_v^T / sqrt(d_k) are normalised by a softmax over the
  *text tokens* (padding masked) for each visual position and averaged over heads, so each token's
  map A_i has a meaningful pixel sum (a softmax over positions would make every sum 1 and the paper's
  argmax degenerate). Inference picks k = argmax_i sum(A_i); training, with a ground truth S_0
  (resized to the feature grid), k = argmax_i sum(A_i * S_0). f_tv = A_k * V_v (a response map with
  d channels per visual position). Only word tokens compete: the start-of-text token (whose
  output does not depend on the caption in CLIP's causal encoder) and the end-of-text token (a
  summary of the whole caption, not a word) are left out of the softmax and the argmax; a caption
  with no word token counts as no caption.
- Without captions (an all-padding token row) the condition uses the projected visual tokens instead
  of f_tv: the paper's AV variant. Chosen per clip, so one exported graph serves both.
- Variants (Tables I-II), config ``modalities``: ``"tav"`` (default) conditions on [audio tokens;
  f_tv tokens]; ``"tv"`` (preset ``tv``, text + video) on the f_tv tokens alone, with no audio
  encoder (the waveform input is accepted and ignored); ``"ta"`` (preset ``ta``, text + audio) has
  no video encoder and no SITR (it needs visual keys): the condition is [audio tokens; the caption's
  CLIP sentence embedding (the end-of-text token's feature), projected], the video input is accepted
  and ignored. The paper does not describe how its TA variant uses the text; this is the reading
  that needs no visual features.
- Saliency-DiT [2-7]: 16x16 patches of the noisy map (14x24 tokens), fixed 2-D sin-cos positions,
  ``depth`` blocks of width ``hidden`` with ``heads`` heads; t -> sinusoidal -> MLP -> per-block
  adaLN-Zero (msa/mlp scale, shift, gate); residuals around MSA, MCA and MLP (DiT's form); LN before
  the MCA as the text says (Eq. 5 puts it after); the condition tokens C_t = [audio tokens; f_tv
  tokens], each projected to ``hidden``; final adaLN + linear "projection phase" back to patches.
- Diffusion: DiffSal's cosine schedule through the shared scheduler, x0 target, eta = 0, 4 steps;
  final clamp to 0..1. ``steps=N`` runs exactly N denoiser passes at timesteps evenly spaced from
  999 down to 0 (4: 999, 666, 333, 0; ``timestep_spacing="even"``); Alg. 2's t = 1000 lies outside a
  1000-entry schedule. DiffSal's own plan (``"reference"``) visits N + 1 timesteps for some N.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from salrt import losses as L
from salrt.errors import UsageError
from salrt.models.base import DiffusionModel, S3DSoundNetConfig
from salrt.models.blocks import MultiheadAttention, check_batch, sinusoidal_embedding
from salrt.models.clip_text import CLIPTextConfig, CLIPTextEncoder
from salrt.models.recipe import TrainingRecipe, diffusion_x0_loss
from salrt.models.s3d import S3D
from salrt.models.soundnet import SoundNet
from salrt.sampling.ddim import DDIMScheduler


@dataclass(frozen=True)
class TAVDiffConfig(S3DSoundNetConfig):
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    sitr_dim: int = 256
    sitr_heads: int = 8
    patch: int = 16
    hidden: int = 384
    depth: int = 8
    heads: int = 6
    mlp_ratio: float = 4.0
    time_dim: int = 256
    modalities: str = "tav"
    num_timesteps: int = 1000
    # N passes from T - 1 evenly down to 0 (ddim_plan "even"); Alg. 2's 1000 lies outside the schedule
    timestep_spacing: str = "even"

    PRESETS = {
        "tiny": dict(
            height=64,
            width=128,
            audio_samples=8192,
            s3d_width_div=16,
            soundnet_width_div=16,
            text=CLIPTextConfig(vocab_size=49408, context=16, width=16, layers=1, heads=2, embed_dim=16),
            sitr_dim=16,
            sitr_heads=2,
            patch=16,
            hidden=32,
            depth=2,
            heads=2,
            time_dim=32,
        ),
        "tv": dict(modalities="tv"),
        "ta": dict(modalities="ta"),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.modalities not in ("tav", "tv", "ta"):
            raise UsageError(f"TAVDiffConfig.modalities must be tav, tv or ta, got {self.modalities!r}")


class TAVDiffFeatures(NamedTuple):
    """Condition tokens C_t (B, N_c, hidden), computed once per clip."""

    cond: torch.Tensor


class SITR(nn.Module):
    """Saliency-oriented image-text response [1]: text (B,n,ct), visual (B,P,cv) -> f_tv (B,P,d), index (B,)."""

    def __init__(self, ct: int, cv: int, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(ct, d), nn.Linear(cv, d), nn.Linear(cv, d)

    def maps(self, text: torch.Tensor, valid: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """(B, n, P) response maps: per position, a softmax over the word tokens (``valid``), head-averaged."""
        b, n, _ = text.shape
        h = self.heads
        q = self.q(text).reshape(b, n, h, -1).transpose(1, 2)
        k = self.k(visual).reshape(b, visual.shape[1], h, -1).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (B,h,n,P)
        logits = logits.masked_fill(~valid[:, None, :, None], float("-inf"))
        return torch.softmax(logits, dim=2).nan_to_num(0.0).mean(dim=1)

    def forward(
        self, text: torch.Tensor, valid: torch.Tensor, visual: torch.Tensor, gt: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.maps(text, valid, visual)
        score = a.sum(-1) if gt is None else (a * gt[:, None]).sum(-1)  # gt: (B, P) on the feature grid
        score = score.masked_fill(~valid, float("-inf"))
        k = score.argmax(dim=1)
        sel = torch.gather(a, 1, k[:, None, None].expand(-1, 1, a.shape[2]))[:, 0]  # (B, P)
        return sel[..., None] * self.v(visual), k


class DiTBlock(nn.Module):
    """Saliency-DiT block [3-7]: adaLN-modulated MSA (gated), MCA on the condition, adaLN-modulated MLP (gated)."""

    def __init__(self, hidden: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.msa = MultiheadAttention(hidden, heads)
        self.norm_ca = nn.LayerNorm(hidden)
        self.mca = MultiheadAttention(hidden, heads)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        h = int(hidden * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(hidden, h), nn.GELU(approximate="tanh"), nn.Linear(h, hidden))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 6 * hidden))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        msa_shift, msa_scale, msa_gate, mlp_shift, mlp_scale, mlp_gate = self.ada(c)[:, None].chunk(6, dim=-1)
        h = self.norm1(x) * (1 + msa_scale) + msa_shift  # [3]
        x = x + msa_gate * self.msa(h, h)  # [4]
        h = self.norm_ca(x)
        x = x + self.mca(h, cond)  # [5]
        h = self.norm2(x) * (1 + mlp_scale) + mlp_shift  # [6]
        return x + mlp_gate * self.mlp(h)  # [7]


def sincos_2d(h: int, w: int, dim: int) -> torch.Tensor:
    """(h*w, dim) fixed 2-D sin-cos position embedding (MAE/DiT)."""

    def one(pos: np.ndarray, d: int) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = pos.reshape(-1)[:, None] * omega[None]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gy, gx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return torch.from_numpy(np.concatenate([one(gy, dim // 2), one(gx, dim // 2)], axis=1)).float()


class SaliencyDiT(nn.Module):
    """x_t (B,1,H,W), t (B,), condition (B,Nc,hidden) -> x0 (B,1,H,W)  [2]."""

    def __init__(self, cfg: TAVDiffConfig) -> None:
        super().__init__()
        self.cfg = cfg
        p, d = cfg.patch, cfg.hidden
        self.gh, self.gw = cfg.height // p, cfg.width // p
        self.patch_embed = nn.Conv2d(1, d, p, p)
        self.register_buffer("pos", sincos_2d(self.gh, self.gw, d)[None], persistent=False)
        self.time_mlp = nn.Sequential(nn.Linear(cfg.time_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.blocks = nn.ModuleList(DiTBlock(d, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.proj = nn.Linear(d, p * p)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b = x_t.shape[0]
        p = self.cfg.patch
        x = self.patch_embed(x_t).flatten(2).transpose(1, 2) + self.pos.to(device=x_t.device, dtype=x_t.dtype)
        c = self.time_mlp(sinusoidal_embedding(t, self.cfg.time_dim).to(x_t.dtype))
        for blk in self.blocks:
            x = blk(x, c, cond)
        shift, scale = self.ada_out(c)[:, None].chunk(2, dim=-1)
        x = self.proj(self.norm_out(x) * (1 + scale) + shift)  # the linear projection phase
        x = x.reshape(b, self.gh, self.gw, p, p).permute(0, 1, 3, 2, 4)
        return x.reshape(b, 1, self.gh * p, self.gw * p)


class TAVDiff(DiffusionModel):
    """TAVDiff: video (B,3,16,224,384), waveform (B,1,35280), caption ids (B,77) -> map (B,1,224,384)."""

    name = "tavdiff"
    conditions = ("text",)

    def __init__(self, config: TAVDiffConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or TAVDiffConfig()
        if cfg.modalities != "ta":
            self.video_encoder = S3D(cfg.s3d_width_div)
            cv = self.video_encoder.out_channels[-1]
            self.sitr = SITR(cfg.text.embed_dim, cv, cfg.sitr_dim, cfg.sitr_heads)
            self.cond_visual = nn.Linear(cv, cfg.hidden)  # AV variant (no captions)
        if cfg.modalities != "tv":
            self.audio_encoder = SoundNet(cfg.soundnet_width_div)
            self.cond_audio = nn.Linear(self.audio_encoder.out_channels, cfg.hidden)
        self.text_encoder = CLIPTextEncoder(cfg.text)
        self.cond_text = nn.Linear(cfg.sitr_dim if cfg.modalities != "ta" else cfg.text.embed_dim, cfg.hidden)
        self.denoiser = SaliencyDiT(cfg)
        self.scheduler = DDIMScheduler(cfg.num_timesteps, spacing=cfg.timestep_spacing)

    def condition_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        return {"text": ((self.config.text.context,), torch.long)}

    def training_recipe(self) -> TrainingRecipe:
        """Algorithm 1 / Eq. 8: x0 target, per-pixel MSE, t ~ U(1, 1000) per clip (here 1..999: the
        schedule has entries 0..999), SITR's training-time selection with the ground-truth map
        (``encode(gt=...)``), AdamW 1e-4, ReduceLROnPlateau x0.2 (on the validation CC), batch 16;
        the epoch count is cut off in the paper (10 here)."""
        return TrainingRecipe(
            loss=lambda m, b, g: diffusion_x0_loss(
                m, b, g, loss=L.mse_mean, t_range=(1, m.scheduler.num_timesteps), encode_kwargs={"gt": b["map"]}
            ),
            optimizer=lambda p: torch.optim.AdamW(p, lr=1e-4),
            scheduler=lambda opt, epochs: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.2),
            schedule_on="plateau",
            batch_size=16,
            epochs=10,
            source="TAVDiff Algorithm 1, Eq. 8, Sec. IV-B",
        )

    def parts(self) -> dict[str, nn.Module]:
        names = ("video_encoder", "audio_encoder", "text_encoder")
        p: dict[str, nn.Module] = {n: getattr(self, n) for n in names if hasattr(self, n)}
        cond = [getattr(self, n) for n in ("sitr", "cond_audio", "cond_text", "cond_visual") if hasattr(self, n)]
        p["sitr_condition"] = nn.ModuleList(cond)
        p["denoiser"] = self.denoiser
        return p

    def encode(
        self, video: torch.Tensor, audio: torch.Tensor, text: torch.Tensor | None = None, gt: torch.Tensor | None = None
    ) -> TAVDiffFeatures:
        """Encoders, SITR and the condition tokens, once per clip [Alg. 2 l.1-4].

        ``text``: (B, context) CLIP token ids, an all-zero row for a clip without a caption; None for
        none at all (the AV variant, with a warning). ``gt``: optional (B,1,H,W) maps for SITR's
        training-time selection.
        """
        cfg = self.config
        video = self.check("video", video, cfg.video_shape)
        audio = self.check("audio", audio, cfg.audio_shape)
        b = check_batch(video, audio)
        if text is None:
            warnings.warn("tavdiff: no captions given; running the audio-visual (AV) variant", stacklevel=2)
            text = torch.zeros(b, cfg.text.context, dtype=torch.long, device=video.device)
        if text.dim() != 2 or text.shape != (b, cfg.text.context) or text.is_floating_point():
            raise UsageError(
                f"text must be int64 token ids of shape ({b}, {cfg.text.context}), got {text.dtype} {tuple(text.shape)}"
            )
        text = text.to(video.device)
        vocab = cfg.text.vocab_size
        words = (text != 0) & (text < vocab - 2)  # word tokens: not padding, start- or end-of-text
        has_text = words.any(dim=1)[:, None, None]
        ft = self.text_encoder(text)
        parts = []
        if cfg.modalities != "tv":
            parts.append(self.cond_audio(self.audio_encoder(audio).transpose(1, 2)))  # (B, L, hidden)
        if cfg.modalities == "ta":  # no video: the caption's sentence embedding (end-of-text feature)
            eot = ft[torch.arange(b, device=ft.device), text.argmax(dim=1)]  # CLIP: the EOT id is the largest
            parts.append(torch.where(has_text, self.cond_text(eot[:, None]), torch.zeros_like(parts[0][:, :1])))
            return TAVDiffFeatures(torch.cat(parts, dim=1))
        fv = self.video_encoder(video)[-1]  # (B, Cv, t, h, w)
        vis = fv.flatten(2).transpose(1, 2)  # (B, P, Cv)
        g = None
        if gt is not None:
            g = F.adaptive_avg_pool2d(gt.to(fv.dtype), fv.shape[-2:]).flatten(1).repeat(1, fv.shape[2])
        ftv, _ = self.sitr(ft, words, vis, g)
        parts.append(torch.where(has_text, self.cond_text(ftv), self.cond_visual(vis)))
        return TAVDiffFeatures(torch.cat(parts, dim=1))

    def feature_tensors(self, features: TAVDiffFeatures) -> tuple[torch.Tensor, ...]:
        return (features.cond,)

    def features_from(self, tensors: tuple[torch.Tensor, ...]) -> TAVDiffFeatures:
        return TAVDiffFeatures(tensors[0])

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, features: TAVDiffFeatures) -> torch.Tensor:
        cfg = self.config
        x_t = self.check("x_t", x_t, (1, cfg.height, cfg.width))
        if t.dim() != 1 or t.shape[0] != x_t.shape[0] or t.is_floating_point():
            raise UsageError(f"t must be an integer tensor of shape ({x_t.shape[0]},), got {t.dtype} {tuple(t.shape)}")
        return self.denoiser(x_t, t.to(x_t.device), features.cond)
