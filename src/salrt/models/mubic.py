"""MUBiC (Melesse, MSc thesis 2025): DiffSal's encoders, bidirectional cross-modal fusion (4 MMI
blocks), a FiLM-conditioned 2-D ResNet noise encoder, 4 conditional denoising modules and an
entropy-driven adaptive DDIM step count. Equation numbers are the thesis's (3.x).

Choices where the thesis is silent or contradicts itself (see shared/spec/mubic_digest.md §8):

- Inputs as DiffSal (16x224x384 video, 9 log-mel slices of 112x192); MViTv2-S (96/192/384/768 at
  T' = 8), DiffSal's module and weights. Audio: VGGish (DiffSal's), then the thesis's temporal
  refinement [3.5-3.8] (config ``audio_refinement="thesis"``, default): a learnable positional
  embedding e_pos per log-mel slice added to the features (F-bar_a = f_a + e_pos, the thesis leaves
  F-bar_a undefined), multi-head self-attention along the temporal axis only (each of the h x w
  positions attends over the S slices), post-norm: x1 = LN(f + MHA), x2 = LN(x1 + FFN(x1)); heads,
  head width and FFN width as DiffSal's layer (2 x 64, 256). ``audio_refinement="diffsal"`` keeps
  DiffSal's layer instead (pre-norm, attention over all S*h*w tokens, no positional embedding), so
  DiffSal's released audio weights load as they are.
- MMI i (C_i = visual channels): FFN_a (ratio 1) then TransConv3D to (T', h_i, w_i, C_i) as a 1x1x1
  projection to C_i and a depthwise ConvTranspose3d (kernel = stride = the spatial factor, temporal
  kernel 2 / padding 1 for 9 -> 8) [3.24, 3.26]; two visual
  FFNs [3.25]; learnable temporal embeddings [3.27]; VBECA / ABECA: K and V from the *other*
  modality after STC = spatial average pooling with kernel = stride = 2^(5-i) (16, 8, 4, 2 from the
  finest scale, as DiffSal's kv kernels), separate weights per direction, ``heads`` heads
  [3.28-3.35]; conv module Y = DWConv3d(GLU(PWConv(F))) + F then FFN + LN [3.36-3.37]; gate
  sigma(Conv1x1x1([f_vc; f_ac])) per voxel and channel [Alg. 1 l.9-11]; skip alpha_i * Conv1x1x1(f_v)
  with alpha_i initialised to 1 [Alg. 1 l.12] (the -0.8 M ablation delta fits 1x1x1 convs).
- Noise encoder [3.18-3.23]: x_t bilinearly resized to 112x192; per stage a 3x3 stride-2 conv + BN +
  ReLU, FiLM (gamma, beta from an MLP of a sinusoidal embedding of t), one residual conv block;
  64/128/256/512 channels at 56x96 .. 7x12.
- CDMs [3.42-3.51], i = 4..1: upsampling of f_dec_{i+1} by a 1x1x1 projection and a depthwise
  ConvTranspose3d (1,2,2) (a full transposed conv at these widths alone would exceed the thesis's
  cost in thop's convention, which counts transposed convs like convs); A/B 1x1x1
  projections and a concat gate (the equations' version, not Alg. 1's sum gate); cross-attention
  with queries from the noise features (broadcast over T', plus a temporal embedding) and keys /
  values from f_con after the same STC; a residual on the queries; Temporal3DCNN with 3 frames
  (3x3x3 at the two finest scales, 3x1x1 at the others), FFN ratio 2 (audio FFN 1): calibrated so that the
  thop-convention cost matches the thesis's 79.60 M / 192.4 G (encoders + one denoiser pass).
- Head [3.52]: Conv3d (T', 3, 3) to one channel, sigmoid, bilinear resize to 224x384 (DiffSal).
- Diffusion: DiffSal's cosine schedule (shared scheduler), x0 target, eta = 0. ``steps=N`` (or the
  adaptive count) runs exactly N denoiser passes at timesteps evenly spaced from 999 down to 0
  (``timestep_spacing="even"``; N = 1 is one pass at t = 999). The thesis's Alg. 2 l.15
  (Reversed(Linspace(-1, T, N))) is not a usable plan as printed; DiffSal's ``range(0, T, T // N)``
  would run N + 1 passes for N = 3, 6, 7, 9, 11, 12 and call the model once at t = 0 for N = 1.
- Adaptive steps [Alg. 2 l.14]: entropy of the spatial softmax of f_av,1's channel mean,
  normalised to 0..1; MLP 1 -> 16 -> 1 (ReLU), N = clamp(round(out), 1, max_steps). Untrained,
  it is initialised to output the thesis's default of 4 steps; ``steps=`` overrides it.
- Ablation switches (Table 4.3): ``bidirectional`` (VBECA only), ``residual_skip``, ``gated_fusion``
  (False: "concat fusion", the concatenation [f_vc; f_ac] folded back to C channels by averaging
  the two halves, with no learned gate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from salrt.errors import UsageError
from salrt.models.base import DiffusionModel, MViTVGGishConfig
from salrt.models.blocks import channels_first, channels_last, check_batch, sinusoidal_embedding, upsample_to
from salrt.models.mvit import MViT, MViTConfig
from salrt.models.recipe import TrainingRecipe, diffusion_x0_loss
from salrt.models.vggish import AudioEncoder
from salrt.sampling.ddim import DDIMScheduler
from salrt.sampling.schedule import adaptive_step_count

_TINY_MVIT = MViTConfig(embed_dim=8, depth=4, num_heads=1, downscale_layers=(1, 2, 3), table_input=(16, 64, 64))


@dataclass(frozen=True)
class MUBiCConfig(MViTVGGishConfig):
    heads: int = 2
    ffn_ratio: float = 2.0
    audio_ffn_ratio: float = 1.0
    # Temporal3DCNN kernels of CDM 1..4 (3 frames, [3.51]; spatial 3x3 at the two finest scales: calibrated)
    temporal_kernels: tuple[tuple[int, int, int], ...] = ((3, 3, 3), (3, 3, 3), (3, 1, 1), (3, 1, 1))
    noise_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    time_dim: int = 128
    bidirectional: bool = True
    residual_skip: bool = True
    gated_fusion: bool = True
    audio_refinement: str = "thesis"
    max_steps: int = 12
    default_steps: int = 4
    num_timesteps: int = 1000
    # N passes from T - 1 evenly down to 0 (ddim_plan "even"): the thesis does not ask for DiffSal's plan
    timestep_spacing: str = "even"

    PRESETS = {
        "tiny": dict(
            height=64,
            width=128,
            audio_height=32,
            audio_width=64,
            mvit=_TINY_MVIT,
            vggish_channels=(8, 8, 16, 16),
            audio_dim_head=8,
            audio_mlp_dim=16,
            noise_channels=(4, 8, 8, 16),
            time_dim=16,
        ),
    }
    READINGS = {"audio_refinement": ("thesis", "diffsal")}


class TemporalAudioRefinement(nn.Module):
    """Eqs. 3.5-3.8: (B, C, S, h, w) -> (B, C, S, h, w); e_pos per slice, attention along S at each
    of the h*w positions, post-norm residuals around the attention and the FFN."""

    def __init__(self, dim: int, slices: int, heads: int, dim_head: int, mlp_dim: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.pos = nn.Parameter(torch.zeros(1, slices, dim))  # e_pos
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, c, s, h, w = f.shape
        x = f.permute(0, 3, 4, 2, 1).reshape(b * h * w, s, c) + self.pos[:, :s]  # [3.5] F-bar_a = f_a + e_pos
        q, k, v = self.to_qkv(x).reshape(b * h * w, s, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * h * w, s, -1)
        x1 = self.norm1(x + self.to_out(att))  # [3.6]
        x2 = self.norm2(x1 + self.ffn(x1))  # [3.7]
        return x2.reshape(b, h, w, s, c).permute(0, 4, 3, 1, 2)  # [3.8]


class MUBiCFeatures(NamedTuple):
    """f_av,i (B, C_i, T', h_i, w_i) for i = 1..4 (finest first), computed once per clip."""

    fused: tuple[torch.Tensor, ...]


class FFN(nn.Module):
    """Token-wise ReLU FFN on (B, C, T, H, W): LN(x + W2 relu(W1 x)) when ``norm``."""

    def __init__(self, c: int, ratio: float, norm: bool = True) -> None:
        super().__init__()
        h = max(int(c * ratio), 1)
        self.fc1, self.fc2 = nn.Linear(c, h), nn.Linear(h, c)
        self.norm = nn.LayerNorm(c) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = channels_last(x)
        z = self.fc2(F.relu(self.fc1(y)))
        return channels_first(self.norm(y + z) if self.norm is not None else z)


def stc(x: torch.Tensor, k: int) -> torch.Tensor:
    """Spatio-temporal compression: spatial average pooling, kernel = stride = k (ceil at edges)."""
    if k <= 1:
        return x
    return F.avg_pool3d(x, (1, k, k), (1, k, k), ceil_mode=True)


class CrossAttention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V with Q from ``q`` (B,Nq,C) and K, V from ``kv`` (B,Nk,C); out projection."""

    def __init__(self, c: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(c, c) for _ in range(4))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        b, nq, c = q.shape
        h = self.heads
        qh = self.q(q).reshape(b, nq, h, c // h).transpose(1, 2)
        kh = self.k(kv).reshape(b, -1, h, c // h).transpose(1, 2)
        vh = self.v(kv).reshape(b, -1, h, c // h).transpose(1, 2)
        out = F.scaled_dot_product_attention(qh, kh, vh)
        return self.o(out.transpose(1, 2).reshape(b, nq, c))


def tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


def untokens(x: torch.Tensor, like_shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    return x.transpose(1, 2).reshape(like_shape)


class ConvModule(nn.Module):
    """Y = DWConv3d(GLU(PWConv(F))) + F, then a second FFN with LN [3.36-3.37]."""

    def __init__(self, c: int, ratio: float) -> None:
        super().__init__()
        self.pw = nn.Conv3d(c, 2 * c, 1)
        self.dw = nn.Conv3d(c, c, 3, padding=1, groups=c)
        self.bn = nn.BatchNorm3d(c)
        self.ffn = FFN(c, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.bn(self.dw(F.glu(self.pw(x), dim=1))) + x)


class MMI(nn.Module):
    """Multimodal interaction at one scale: (f_v (B,C,T',h,w), f_a (B,Ca,S,ha,wa)) -> f_av (B,C,T',h,w)."""

    def __init__(self, c: int, ca: int, frames: int, up: int, kv: int, cfg: MUBiCConfig) -> None:
        super().__init__()
        self.kv, self.cfg = kv, cfg
        self.ffn_a = FFN(ca, cfg.audio_ffn_ratio)
        t_pad = max((cfg.audio_slices - frames + 1) // 2, 0)
        self.upsample_a = nn.Sequential(
            nn.Conv3d(ca, c, 1), nn.ConvTranspose3d(c, c, (2, up, up), (1, up, up), (t_pad, 0, 0), groups=c)
        )
        self.ffn_v1, self.ffn_v2 = FFN(c, cfg.ffn_ratio, norm=False), FFN(c, cfg.ffn_ratio, norm=False)
        self.norm_v = nn.LayerNorm(c)
        self.te_a = nn.Parameter(torch.zeros(1, c, frames, 1, 1))
        self.te_v = nn.Parameter(torch.zeros(1, c, frames, 1, 1))
        self.vbeca = CrossAttention(c, cfg.heads)
        self.conv_v = ConvModule(c, cfg.ffn_ratio)
        if cfg.bidirectional:
            self.abeca = CrossAttention(c, cfg.heads)
            self.conv_a = ConvModule(c, cfg.ffn_ratio)
        if cfg.gated_fusion:
            self.gate = nn.Conv3d(2 * c, c, 1)
        if cfg.residual_skip:
            self.skip = nn.Conv3d(c, c, 1)
            self.alpha = nn.Parameter(torch.ones(()))

    def forward(self, fv: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        a = self.upsample_a(self.ffn_a(fa))[:, :, : fv.shape[2]]  # [3.26, 3.24]
        a = upsample_to(a, fv.shape[2:]) if a.shape[2:] != fv.shape[2:] else a
        v2 = self.ffn_v2(self.ffn_v1(fv))
        v = channels_first(self.norm_v(channels_last(v2 + fv)))  # [3.25]
        a, v = a + self.te_a, v + self.te_v  # [3.27]
        f_vc = untokens(self.vbeca(tokens(v), tokens(stc(a, self.kv))), v.shape)  # [3.28-3.31]
        f_vc = self.conv_v(f_vc)
        if self.cfg.bidirectional:
            f_ac = untokens(self.abeca(tokens(a), tokens(stc(v, self.kv))), a.shape)  # [3.32-3.35]
            f_ac = self.conv_a(f_ac)
        else:
            f_ac = a
        if self.cfg.gated_fusion:
            g = torch.sigmoid(self.gate(torch.cat([f_vc, f_ac], dim=1)))
            fused = g * f_vc + (1 - g) * f_ac  # [3.39]
        else:  # concat fusion: [f_vc; f_ac] folded back to C channels
            fused = 0.5 * (f_vc + f_ac)
        if self.cfg.residual_skip:
            fused = fused + self.alpha * self.skip(fv)  # [3.41] / Alg. 1 l.12
        return fused


class NoiseEncoder(nn.Module):
    """x_t (B,1,H,W), temb (B,D) -> four (B, c_i, H/4/2^(i-1), W/4/2^(i-1)) noise features [3.18-3.23]."""

    def __init__(self, channels: tuple[int, ...], time_dim: int) -> None:
        super().__init__()
        self.down, self.film, self.res = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = 1
        for c in channels:
            self.down.append(nn.Sequential(nn.Conv2d(cin, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
            self.film.append(nn.Linear(time_dim, 2 * c))
            self.res.append(nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()))
            cin = c

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)  # S_t at 112x192
        outs = []
        for down, film, res in zip(self.down, self.film, self.res):
            x = down(x)
            gamma, beta = film(temb)[:, :, None, None].chunk(2, dim=1)
            x = gamma * x + beta  # [3.22]
            x = x + res(x)  # [3.23]
            outs.append(x)
        return outs


class CDM(nn.Module):
    """Conditional denoising module i: (X_i, f_av,i, f_dec_{i+1}) -> f_dec_i (B, C_i, T', h_i, w_i)."""

    def __init__(
        self,
        c: int,
        c_noise: int,
        c_up: int | None,
        frames: int,
        kv: int,
        heads: int,
        temporal_kernel: tuple[int, int, int] = (3, 3, 3),
    ) -> None:
        super().__init__()
        self.kv = kv
        self.up = (
            nn.Sequential(nn.Conv3d(c_up, c, 1), nn.ConvTranspose3d(c, c, (1, 2, 2), (1, 2, 2), groups=c))
            if c_up
            else None
        )
        if c_up:
            self.proj_a, self.proj_b = nn.Conv3d(c, c, 1), nn.Conv3d(c, c, 1)
            self.gate = nn.Conv3d(2 * c, c, 1)
        self.query = nn.Conv2d(c_noise, c, 1)
        self.te = nn.Parameter(torch.zeros(1, c, frames, 1, 1))
        self.attn = CrossAttention(c, heads)
        self.temporal = nn.Conv3d(c, c, temporal_kernel, padding=tuple(k // 2 for k in temporal_kernel))

    def forward(self, x_i: torch.Tensor, f_av: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        if self.up is not None and prev is not None:
            up = self.up(prev)  # [3.43]
            a, b = self.proj_a(f_av), self.proj_b(up)  # [3.44]
            g = torch.sigmoid(self.gate(torch.cat([a, b], dim=1)))  # [3.45]
            con = g * a + (1 - g) * b  # [3.46]
        else:
            con = f_av  # [3.42]
        q = self.query(x_i)[:, :, None].expand(-1, -1, f_av.shape[2], -1, -1) + self.te
        out = untokens(self.attn(tokens(q), tokens(stc(con, self.kv))), q.shape) + q  # [3.47-3.50]
        return self.temporal(out)  # [3.51]


class StepSelector(nn.Module):
    """N = clamp(round(MLP(Entropy(f_av,1))), 1, max_steps)  [Alg. 2 l.14]."""

    def __init__(self, default_steps: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.constant_(self.mlp[2].bias, float(default_steps))

    @staticmethod
    def entropy(f: torch.Tensor) -> torch.Tensor:
        """Normalised entropy (B,) of the spatial softmax of f's channel mean."""
        logits = f.float().mean(dim=1).flatten(1)
        logp = torch.log_softmax(logits, dim=1)
        return -(logp.exp() * logp).sum(dim=1) / math.log(logits.shape[1])

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """(B,) float: the MLP's raw step-count output (rounded and clamped by the caller)."""
        return self.mlp(self.entropy(f)[:, None].to(self.mlp[0].weight.dtype))[:, 0]


class MUBiC(DiffusionModel):
    """MUBiC: video (B,3,16,224,384) + audio (B,1,9,112,192) -> map (B,1,224,384) by DDIM."""

    name = "mubic"
    paper_figures = {
        "paper": (("params (thop)", 79.60, "M", "paper_params"), ("FLOPs (thop MACs)", 192.4, "G", "paper_macs"))
    }

    def __init__(self, config: MUBiCConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or MUBiCConfig()
        self.video_encoder = MViT(cfg.mvit)
        refine = (
            TemporalAudioRefinement(
                cfg.vggish_channels[-1], cfg.audio_slices, cfg.audio_heads, cfg.audio_dim_head, cfg.audio_mlp_dim
            )
            if cfg.audio_refinement == "thesis"
            else None
        )
        self.audio_encoder = AudioEncoder(
            cfg.vggish_channels, cfg.audio_heads, cfg.audio_dim_head, cfg.audio_mlp_dim, temporal=refine
        )
        chans = cfg.mvit.out_channels  # finest first
        t = cfg.frames // 2
        ca = cfg.vggish_channels[-1]
        kvs = (16, 8, 4, 2)
        ups = tuple(2 ** (len(chans) - 1 - i) for i in range(len(chans)))  # 8, 4, 2, 1
        self.fusion = nn.ModuleList(MMI(c, ca, t, u, k, cfg) for c, u, k in zip(chans, ups, kvs))
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_dim, cfg.time_dim), nn.SiLU(), nn.Linear(cfg.time_dim, cfg.time_dim)
        )
        self.noise_encoder = NoiseEncoder(cfg.noise_channels, cfg.time_dim)
        self.decoder = nn.ModuleList(
            CDM(
                chans[i],
                cfg.noise_channels[i],
                chans[i + 1] if i + 1 < len(chans) else None,
                t,
                kvs[i],
                cfg.heads,
                cfg.temporal_kernels[i],
            )
            for i in range(len(chans))
        )
        self.head = nn.Conv3d(chans[0], 1, (t, 3, 3), padding=(0, 1, 1))
        self.step_selector = StepSelector(cfg.default_steps)
        self.scheduler = DDIMScheduler(cfg.num_timesteps, spacing=cfg.timestep_spacing)

    def training_recipe(self) -> TrainingRecipe:
        """The thesis's (§3.2.4, §4.2, Table 4.1): x0 target, weighted MSE summed over the map's
        pixels and averaged over the batch (Eq. 3.53 / 3.57, lambda = 1: the value used is not given),
        a timestep per clip drawn uniformly from 0..999, Adam 1e-4 with the piecewise schedule
        1e-4 / 1e-5 / 1e-6 over epochs 1-6 / 7-9 / 10-12 (scaled to other epoch counts), batch 8,
        12 epochs. The adaptive-step MLP gets no gradient from this objective (the thesis never
        trains it)."""
        return TrainingRecipe(
            loss=lambda m, b, g: diffusion_x0_loss(m, b, g),
            optimizer=lambda p: torch.optim.Adam(p, lr=1e-4),
            scheduler=lambda opt, epochs: torch.optim.lr_scheduler.MultiStepLR(
                opt, [round(epochs * 6 / 12), round(epochs * 9 / 12)], gamma=0.1
            ),
            batch_size=8,
            epochs=12,
            source="MUBiC thesis Eq. 3.53/3.57, Table 4.1, Fig. 4.2",
        )

    def parts(self) -> dict[str, nn.Module]:
        return {
            "video_encoder": self.video_encoder,
            "audio_encoder": self.audio_encoder,
            "fusion": self.fusion,
            "noise_encoder": nn.ModuleList([self.time_mlp, self.noise_encoder]),
            "decoder": nn.ModuleList([self.decoder, self.head]),
            "step_selector": self.step_selector,
        }

    def encode(self, video: torch.Tensor, audio: torch.Tensor) -> MUBiCFeatures:
        """Encoders and the four MMI blocks, once per clip [Alg. 2 l.1-12]."""
        cfg = self.config
        video = self.check("video", video, cfg.video_shape)
        audio = self.check("audio", audio, cfg.audio_shape)
        check_batch(video, audio)
        scales = self.video_encoder(video)[::-1]  # finest first
        fa = self.audio_encoder(audio)
        return MUBiCFeatures(tuple(mmi(fv, fa) for mmi, fv in zip(self.fusion, scales)))

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, features: MUBiCFeatures) -> torch.Tensor:
        """One pass [Alg. 2 l.18-29]: (B,1,H,W) x_t and (B,) timesteps -> x0 (B,1,H,W) in 0..1."""
        cfg = self.config
        x_t = self.check("x_t", x_t, (1, cfg.height, cfg.width))
        if t.dim() != 1 or t.shape[0] != x_t.shape[0] or t.is_floating_point():
            raise UsageError(f"t must be an integer tensor of shape ({x_t.shape[0]},), got {t.dtype} {tuple(t.shape)}")
        temb = self.time_mlp(sinusoidal_embedding(t.to(x_t.device), cfg.time_dim).to(x_t.dtype))
        noise_feats = self.noise_encoder(x_t, temb)
        prev = None
        for i in reversed(range(len(self.decoder))):
            prev = self.decoder[i](noise_feats[i], features.fused[i], prev)
        s = torch.sigmoid(self.head(prev))[:, :, 0]  # [3.52]
        return upsample_to(s, (cfg.height, cfg.width))

    def feature_tensors(self, features: MUBiCFeatures) -> tuple[torch.Tensor, ...]:
        return tuple(features.fused)

    def features_from(self, tensors: tuple[torch.Tensor, ...]) -> MUBiCFeatures:
        return MUBiCFeatures(tuple(tensors))

    def raw_step_count(self, features: MUBiCFeatures) -> torch.Tensor:
        """(B,) float output of the step MLP (exported as the encoder graph's ``steps`` output)."""
        return self.step_selector(features.fused[0])

    def step_counts(self, features: MUBiCFeatures, steps: int | None) -> list[int]:
        if steps is not None:
            return super().step_counts(features, steps)
        raw = self.raw_step_count(features)
        return [adaptive_step_count(r, self.config.max_steps) for r in raw]

    def forward(self, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.sample(video, audio, steps=self.config.default_steps, noise=noise)
