"""AVRSP (Yu et al.): S3D + SoundNet, relevance-guided fusion (RAVF), multi-scale synergy (MS),
multi-scale regulator gates (MRG) and a four-block decoder; one pass. Equation numbers are the paper's.

Choices where the paper is silent (it reports no parameter or FLOP figures):

- Inputs: 32 frames of 224x384 (the paper), normalised as DiffSal's video; a raw mono waveform at
  22.05 kHz (SoundNet's rate), segmented per video frame with a Hann window per segment and centred
  in a fixed 3.2 s buffer (STAViS' 1.6 s buffer scaled to 32 frames). The map is the last frame's.
  Frame k < 31 is predicted from frames k..k+31 played backwards (the paper); its audio window is
  reversed too, so that sound and picture stay in sync (the paper does not mention the audio).
- S3D scales (finest first): 192@(16,56,96), 480@(16,28,48), 832@(8,14,24), 1024@(4,7,12); after each,
  ASPP (1x1x1 + three 1x3x3 atrous convs with dilation 1/2/3 + global pooling, to ``dim``) and LIP
  (local importance pooling with a 3x3 window, stride 1). X^0 is the coarsest scale (RAVF input).
- RAVF [1-7]: ``ravf_blocks`` blocks, ``heads`` heads; Ret_A = V_Q A_K^T / sqrt(d), no softmax (the
  paper omits it on purpose); v2a = Ret_A A_V + V_V, a2v = Ret_V V_V + A_V; the per-head weights
  C = softmax over heads of an MLP of [v2a_h ; mean over audio tokens of a2v_h]; F_av = C * v2a
  (head-wise), then an output projection, residual + LN, FFN (ratio 2), residual + LN.
- Width ``dim`` = 96 after ASPP (the paper gives no width and no cost). At 96 the model costs
  about 285 GMACs per clip (thop), mostly 96-channel 1x3x3 convs at 16x56x96: about 2.5x ViNet's
  115 G and 3x TASED's 92 G on the same kind of backbone, close only to CASP-Net's 283 G; 192
  would be about 0.8 TMAC.
- MS [8-12] for X^1..X^3 with their neighbours (missing neighbours drop out); C = 1x3x3 conv,
  U / D = trilinear resize to the target's (T, H, W) then 1x3x3 conv.
- MRG [13-15] for l = 1..3: trilinear upsampling, G = GAP(sigmoid(Conv1x3x3([F; X]))), Conv1x3x3(G * F).
- Decoder: four blocks (1x3x3 conv + BN + ReLU, x2 upsampling in space and to the next scale's time);
  a (T, 1, 1) conv to one frame, 1x1 conv to one channel, bilinear resize to 224x384, sigmoid.
  What each block after the first takes is ambiguous; the config switch ``decoder_inputs`` selects
  the reading. ``"features"`` (default): [previous; F_gated^l; X^l], the MS-enhanced visual features
  themselves with the gated ones, as the prose says ("F_av ... fed into the decoder synchronously
  with other multi-scale visual features", MRG processes the fused features "alongside
  higher-resolution visual features"). ``"gates"``: [previous; F_gated^l] only, Eqs. 13-15 read
  literally: the finest visual features then reach the decoder only as global per-channel gates
  (GAP in Eq. 14), so a local change at the finest scale shifts the map almost uniformly.
  ``salrt info avrsp`` prints the cost of both.
- ``use_audio=False`` (preset ``visual``) builds AVRSP(V), the paper's visual-only model: no
  SoundNet and no RAVF; F_av is the coarsest enhanced visual feature X^0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from salrt import constants as A
from salrt.errors import UsageError
from salrt.models.base import S3DSoundNetConfig, SaliencyModel
from salrt.models.blocks import ConvBNReLU3d, check_batch, upsample_to
from salrt.models.recipe import TrainingRecipe, saliency_terms
from salrt.models.s3d import S3D
from salrt.models.soundnet import SoundNet


@dataclass(frozen=True)
class AVRSPConfig(S3DSoundNetConfig):
    frames: int = 32
    audio_samples: int = 2 * A.REFERENCE_BUFFER  # 70560: STAViS' 1.6 s buffer doubled for 32 frames
    dim: int = 96
    heads: int = 4
    ravf_blocks: int = 2
    decoder_inputs: str = "features"
    use_audio: bool = True

    PRESETS = {
        "tiny": dict(
            frames=8, height=64, width=128, audio_samples=8192, s3d_width_div=16, soundnet_width_div=16, dim=16, heads=2
        ),
        "visual": dict(use_audio=False),
    }
    READINGS = {"decoder_inputs": ("features", "gates")}

    target = "last"
    start = "reverse"  # frame k < 31 is predicted from frames k..k+31 played backwards (the paper)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling in 3-D (dilations on the spatial axes) to ``dim`` channels."""

    def __init__(self, cin: int, dim: int, rates: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        self.point = ConvBNReLU3d(cin, dim, (1, 1, 1))
        self.atrous = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(cin, dim, (1, 3, 3), padding=(0, r, r), dilation=(1, r, r), bias=False),
                nn.BatchNorm3d(dim),
                nn.ReLU(),
            )
            for r in rates
        )
        # the image-pooling branch has no BatchNorm: on a 1x1x1 pooled map it is undefined at batch 1
        self.pool = nn.Sequential(nn.Conv3d(cin, dim, 1), nn.ReLU())
        self.project = ConvBNReLU3d(dim * (len(rates) + 2), dim, (1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.pool(x.mean(dim=(2, 3, 4), keepdim=True)).repeat(
            1, 1, *x.shape[2:]
        )  # Tile: exports with dynamic batch
        return self.project(torch.cat([self.point(x), *(a(x) for a in self.atrous), g], dim=1))


class LIP(nn.Module):
    """Local importance pooling (Gao et al. 2019), 3x3 window, stride 1: avg(x e^l) / avg(e^l)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.logit = nn.Sequential(nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.exp(torch.sigmoid(self.logit(x)) * 12.0)  # bounded logits, as LIP's soft gate

        def pool(y):
            return F.avg_pool3d(F.pad(y, (1, 1, 1, 1)), (1, 3, 3), 1)

        return pool(x * w) / pool(w)


class RelevanceAttention(nn.Module):
    """Relevance-aware multi-head cross-attention [1-7] on visual (B,Nv,D) and audio (B,Na,D) tokens."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.vq, self.vk, self.vv, self.aq, self.ak, self.av = (nn.Linear(dim, dim) for _ in range(6))
        dh = dim // heads
        self.head_mlp = nn.Sequential(nn.Linear(2 * dh, dh), nn.ReLU(), nn.Linear(dh, 1))
        self.out = nn.Linear(dim, dim)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        b, nv, d = v.shape
        h = self.heads

        def split(x: torch.Tensor) -> torch.Tensor:  # (B, N, d) -> (B, h, N, d / h)
            return x.reshape(b, x.shape[1], h, d // h).transpose(1, 2)

        VQ, VK, VV = split(self.vq(v)), split(self.vk(v)), split(self.vv(v))  # [1]
        AQ, AK, AV = split(self.aq(a)), split(self.ak(a)), split(self.av(a))
        scale = 1.0 / math.sqrt(d // h)
        ret_a = VQ @ AK.transpose(-1, -2) * scale  # [2] (B,h,Nv,Na)
        ret_v = AQ @ VK.transpose(-1, -2) * scale  # [3] (B,h,Na,Nv)
        v2a = ret_a @ AV + VV  # [4]
        a2v = ret_v @ VV + AV  # [5]
        ctx = torch.cat([v2a, a2v.mean(dim=2, keepdim=True).expand_as(v2a)], dim=-1)
        c = torch.softmax(self.head_mlp(ctx), dim=1)  # [6] (B,h,Nv,1): softmax over heads
        fav = (c * v2a).transpose(1, 2).reshape(b, nv, d)  # [7]
        return self.out(fav)


class RAVFBlock(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = RelevanceAttention(dim, heads)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = self.norm1(v + self.attn(v, a))
        return self.norm2(x + self.ffn(x))


class Resample(nn.Module):
    """U / D of [10-11]: trilinear resize to a target size, then a 1x3x3 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, size: torch.Size | tuple[int, ...]) -> torch.Tensor:
        return self.conv(upsample_to(x, tuple(size)))


class MS(nn.Module):
    """Multi-scale synergy for one middle scale m with neighbours h (finer) and l (coarser) [8-12]."""

    def __init__(self, dim: int) -> None:
        super().__init__()

        def conv():
            return nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1))

        self.c1 = nn.ModuleList(conv() for _ in range(3))
        self.c2 = nn.ModuleList(conv() for _ in range(3))
        self.up2, self.down2 = (
            nn.ModuleList(Resample(dim) for _ in range(3)),
            nn.ModuleList(Resample(dim) for _ in range(3)),
        )
        self.c3, self.up3, self.down3 = conv(), Resample(dim), Resample(dim)

    def forward(self, xh: torch.Tensor | None, xm: torch.Tensor, xl: torch.Tensor | None) -> torch.Tensor:
        xs = [xh, xm, xl]
        x1 = [None if x is None else c(x) for c, x in zip(self.c1, xs)]  # [9]
        x2: list[torch.Tensor | None] = []
        for i, x in enumerate(x1):  # [10]
            if x is None:
                x2.append(None)
                continue
            y = self.c2[i](x)
            if i + 1 < 3 and x1[i + 1] is not None:
                y = y + self.up2[i](x1[i + 1], x.shape[2:])
            if i > 0 and x1[i - 1] is not None:
                y = y + self.down2[i](x1[i - 1], x.shape[2:])
            x2.append(y)
        x3 = self.c3(x2[1])  # [11]
        if x2[0] is not None:
            x3 = x3 + self.down3(x2[0], xm.shape[2:])
        if x2[2] is not None:
            x3 = x3 + self.up3(x2[2], xm.shape[2:])
        return x3 + xm  # [12]


class MRG(nn.Module):
    """F_gated = Conv(GAP(sigmoid(Conv([up(F); X]))) * up(F))  [13-15]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gate = nn.Conv3d(2 * dim, dim, (1, 3, 3), padding=(0, 1, 1))
        self.out = nn.Conv3d(dim, dim, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, fav: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        up = upsample_to(fav, x.shape[2:])  # [13]
        g = torch.sigmoid(self.gate(torch.cat([up, x], dim=1))).mean(dim=(2, 3, 4), keepdim=True)  # [14]
        return self.out(g * up)  # [15]


class AVRSP(SaliencyModel):
    """AVRSP: video (B,3,32,224,384) + waveform (B,1,70560) -> map (B,1,224,384) in 0..1."""

    name = "avrsp"
    kind = "direct"

    def __init__(self, config: AVRSPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AVRSPConfig()
        d = cfg.dim
        self.video_encoder = S3D(cfg.s3d_width_div)
        self.enhance = nn.ModuleList(nn.Sequential(ASPP(c, d), LIP(d)) for c in self.video_encoder.out_channels)
        if cfg.use_audio:
            self.audio_encoder = SoundNet(cfg.soundnet_width_div)
            self.audio_proj = nn.Linear(self.audio_encoder.out_channels, d)
            self.ravf = nn.ModuleList(RAVFBlock(d, cfg.heads) for _ in range(cfg.ravf_blocks))
        self.ms = nn.ModuleList(MS(d) for _ in range(3))
        self.mrg = nn.ModuleList(MRG(d) for _ in range(3))
        skip = 3 * d if cfg.decoder_inputs == "features" else 2 * d  # [previous; F_gated (; X)]
        self.decoder = nn.ModuleList(ConvBNReLU3d(d if i == 0 else skip, d, (1, 3, 3)) for i in range(4))
        t_final = cfg.frames // 2
        self.temporal = nn.Conv3d(d, d, (t_final, 1, 1))
        self.head = nn.Conv3d(d, 1, 1)

    def training_recipe(self) -> TrainingRecipe:
        """Eqs. 16-19: L = KL - 0.1 CC - 0.1 SIM on the predicted map; AdamW 1e-4, weight decay 1e-5,
        ReduceLROnPlateau x0.5 (the paper monitors the validation loss; here the validation CC), 100
        epochs on the audio-visual sets (after 80 visual-only epochs on DHF1K); the batch size is
        not given (8 here)."""
        return TrainingRecipe(
            loss=lambda m, b, g: saliency_terms(
                m.predict(b["video"], b["audio"]), b, {"kld": 1.0, "cc": -0.1, "sim": -0.1}
            ),
            optimizer=lambda p: torch.optim.AdamW(p, lr=1e-4, weight_decay=1e-5),
            scheduler=lambda opt, epochs: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5),
            schedule_on="plateau",
            batch_size=8,
            epochs=100,
            source="AVRSP Eqs. 16-19, Training Details",
        )

    def parts(self) -> dict[str, nn.Module]:
        p: dict[str, nn.Module] = {"video_encoder": self.video_encoder}
        if self.config.use_audio:
            p["audio_encoder"] = self.audio_encoder
        p["aspp_lip"] = self.enhance
        if self.config.use_audio:
            p["ravf"] = nn.ModuleList([self.audio_proj, self.ravf])
        p["ms_mrg"] = nn.ModuleList([self.ms, self.mrg])
        p["decoder"] = nn.ModuleList([self.decoder, self.temporal, self.head])
        return p

    def predict(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """(B,3,T,H,W) video and (B,1,N) waveform (ignored by AVRSP(V)) -> (B,1,H,W) map."""
        cfg = self.config
        video = self.check("video", video, cfg.video_shape)
        xs = [e(x) for e, x in zip(self.enhance, self.video_encoder(video))]  # finest first
        x0 = xs[3]
        if cfg.use_audio:
            if audio is None:
                raise UsageError("AVRSP needs audio (the preset 'visual' builds AVRSP(V))")
            audio = self.check("audio", audio, cfg.audio_shape)
            check_batch(video, audio)
            a = self.audio_proj(self.audio_encoder(audio).transpose(1, 2))  # (B, L, D)
            v = x0.flatten(2).transpose(1, 2)
            for blk in self.ravf:
                v = blk(v, a)
            fav = v.transpose(1, 2).reshape(x0.shape)
        else:  # AVRSP(V): no audio, no RAVF
            fav = x0
        # X^1..X^3 = coarse-to-fine middle scales; neighbours by resolution (finer h, coarser l)
        enhanced = {i: self.ms[k](xs[i - 1] if i > 0 else None, xs[i], xs[i + 1]) for k, i in enumerate((2, 1, 0))}
        gated = []
        f = fav
        for k, i in enumerate((2, 1, 0)):
            f = self.mrg[k](f, enhanced[i])
            gated.append((f, enhanced[i]))
        y = self.decoder[0](fav)
        for k, (g, x) in enumerate(gated):
            skip = [g, x] if cfg.decoder_inputs == "features" else [g]
            y = self.decoder[k + 1](torch.cat([upsample_to(y, g.shape[2:]), *skip], dim=1))
        y = self.head(F.relu(self.temporal(y)))[:, :, 0]
        return torch.sigmoid(upsample_to(y, (cfg.height, cfg.width)))
