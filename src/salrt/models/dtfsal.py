"""DTFSal (Hooshanfar et al.): MViTv2-S + VGGish, FPN, LTEB/DLTFB, AMFB and a multi-decoder; one pass.

Equations follow the paper (numbers in brackets). Choices where the paper is silent, each picked
from its hints and checked against the paper's cost (49.08 M parameters, 297.91 GFLOPs in the thop
convention, 187.26 MB; DTFSal(V) 40.73 M / 259.57 G / 155.37 MB):

- Encoders: DiffSal's MViTv2-S (C = 96) on 32x224x384 clips (T/2 = 16 token frames) and DiffSal's
  VGGish + temporal transformer on 9 log-mel slices of 112x192 (the paper cites DiffSal for both).
- FPN [2, 3]: a 1x1x1 lateral conv to C* = 192 per scale; trilinear upsampling; refinement convs
  for scales 1-3 (kernels set by the ``decoders`` reading below); F4^R is the lateral conv of F4.
- LTEB [4-8] as a module on scales 1-3: G = sigmoid(Conv1x3x3 C*->C*); E(t) = spatial mean of G
  per frame; w = softmax(Linear(E(t))) over ``tokens`` N learnable single-channel token maps P_i of
  ``token_size``; K = sum_i w_i P_i; P'' = Conv1x3x3(1->C*) of K interpolated to the scale's size;
  F^w = F * P'' + F. Table 3's "all stages" is met at stage 4 by DLTFB, whose Eq. 11 term F * P''
  is LTEB's token weighting; there is no separate LTEB module before it (the paper's figure,
  which might settle the order, is not in the text).
- DLTFB [9-11] at stage 4 only (Table 3's best): the shift is UNeXt-style: five channel groups
  rolled by -2..2 along W (then along H); the middle conv is 3x3x3 with GELU before it.
- AMFB [12-14] at ``amfb_stage`` 3: audio features projected by a 1x1x1 conv to
  ``audio_fusion_channels`` and resized (trilinear) to that scale, concatenated with the visual
  features, then local (1x3x3) / global (1x5x5) conv streams with BN+ReLU and an adaptive deformable
  3x3 stream (per frame, BN+ReLU); tri-stream scores from GAP -> Linear -> sigmoid. Stage 3 is the
  stage at which DTFSal(V)'s paper difference (+8.35 M / +38.34 G) is met: at stage 4 the AMFB would
  add about 29 G less, at stage 2 about 42 G more.
- Decoders [15] (one per scale): three 3x3x3 convs with temporal stride 2 (ReLU) and a (2,1,1)
  stride-2 conv to one channel, trilinear upsampling to H x W, sigmoid. Table 5 gives the
  multi-decoder 1.74 M parameters; the config switch ``decoders`` selects the reading:
  ``"table5"`` (default): width 57, 0.427 M per decoder and 1.71 M for all four (Table 5 read as
  the multi-decoder's total), with refinement kernels 1x1x1 / 3x3x3 / 3x3x3: 49.02 M / 302.35 G
  (-0.1 % / +1.5 % from the paper's totals). ``"cost-fit"``: width 88 with refinement kernels
  1x1x1 / 1x3x3 / 1x3x3, fitted to the totals (49.07 M / 298.04 G, -0.03 % / +0.04 %) at 0.77 M
  per decoder, which contradicts Table 5 under either reading. ``salrt info dtfsal`` prints both.
- Output [16]: Conv3d(4 -> 1, 1x3x3) over the concatenated maps, sigmoid. The paper does not say
  which frame the map belongs to; salrt takes the clip's last frame (ViNet's and TMFI-Net's
  convention, the lineage DTFSal compares with; DiffSal, whose audio pipeline it reuses, predicts
  the median frame).
- ``use_audio=False`` builds DTFSal(V) (preset ``visual``): no audio branch, no AMFB ("disabling the
  audio feature extraction branch"; removing the AMFB too is what the paper's -8.35 M requires).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from salrt.errors import UsageError
from salrt.models.base import MViTVGGishConfig, SaliencyModel
from salrt.models.blocks import ConvBNReLU3d, DeformConv2d, LayerNorm3d, check_batch, upsample_to
from salrt.models.mvit import MViT, MViTConfig
from salrt.models.recipe import TrainingRecipe, saliency_terms
from salrt.models.vggish import AudioEncoder

_TINY_MVIT = MViTConfig(embed_dim=8, depth=4, num_heads=1, downscale_layers=(1, 2, 3), table_input=(8, 64, 64))


@dataclass(frozen=True)
class DTFSalConfig(MViTVGGishConfig):
    frames: int = 32
    fpn_channels: int = 192
    # None: set by the ``decoders`` reading (DECODER_READINGS); a number / tuple overrides it
    refine_kernels: tuple[tuple[int, int, int], ...] | None = None
    tokens: int = 8
    token_size: tuple[int, int] = (7, 12)
    dltfb_shift: int = 2
    amfb_stage: int = 3
    audio_fusion_channels: int = 192
    decoder_channels: int | None = None
    decoders: str = "table5"
    use_audio: bool = True

    PRESETS = {
        "tiny": dict(
            frames=8,
            height=64,
            width=128,
            audio_height=32,
            audio_width=64,
            mvit=_TINY_MVIT,
            vggish_channels=(8, 8, 16, 16),
            audio_dim_head=8,
            audio_mlp_dim=16,
            fpn_channels=16,
            tokens=4,
            token_size=(2, 4),
            audio_fusion_channels=8,
            decoder_channels=8,
        ),
        "visual": dict(use_audio=False),
    }
    READINGS = {"decoders": ("table5", "cost-fit")}
    # (decoder width, FPN refinement kernels of scales 1-3) per reading of Table 5 (module docstring)
    DECODER_READINGS = {
        "table5": (57, ((1, 1, 1), (3, 3, 3), (3, 3, 3))),
        "cost-fit": (88, ((1, 1, 1), (1, 3, 3), (1, 3, 3))),
    }

    target = "last"

    @property
    def decoder_width(self) -> int:
        return self.decoder_channels or self.DECODER_READINGS[self.decoders][0]

    @property
    def refine(self) -> tuple[tuple[int, int, int], ...]:
        return self.refine_kernels or self.DECODER_READINGS[self.decoders][1]


class FPN(nn.Module):
    """Top-down pathway with lateral connections [3]: scales finest first, C_i -> C*."""

    def __init__(self, in_channels: tuple[int, ...], c: int, refine_kernels: tuple[tuple[int, int, int], ...]) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv3d(ci, c, 1) for ci in in_channels)
        self.refine = nn.ModuleList(nn.Conv3d(c, c, k, padding=tuple(x // 2 for x in k)) for k in refine_kernels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        f1, f2, f3, f4 = (lat(f) for lat, f in zip(self.lateral, feats))
        r4 = f4
        x3 = f3 + upsample_to(r4, f3.shape[2:])
        x2 = f2 + upsample_to(x3, f2.shape[2:]) + upsample_to(r4, f2.shape[2:])
        x1 = f1 + upsample_to(x2, f1.shape[2:]) + upsample_to(r4, f1.shape[2:])
        return [self.refine[0](x1), self.refine[1](x2), self.refine[2](x3), r4]


class TokenWeights(nn.Module):
    """LTEB's adaptive tokens [4-7]: F (B,C,T,H,W) -> P'' (B,C,T,H,W)."""

    def __init__(self, c: int, tokens: int, token_size: tuple[int, int]) -> None:
        super().__init__()
        self.gate = nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))
        self.score = nn.Linear(c, tokens)
        self.tokens = nn.Parameter(torch.randn(tokens, *token_size) * 0.02)
        self.expand = nn.Conv3d(1, c, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(x))  # [4]
        e = g.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C): E(t)
        w = torch.softmax(self.score(e), dim=-1)  # [5] (B, T, N)
        k = torch.einsum("btn,nhw->bthw", w, self.tokens.to(w.dtype))[:, None]  # [6] (B, 1, T, h, w)
        return self.expand(upsample_to(k, x.shape[2:]))  # [7]


class LTEB(nn.Module):
    """F^w = F * P'' + F  [8]."""

    def __init__(self, c: int, tokens: int, token_size: tuple[int, int]) -> None:
        super().__init__()
        self.tokens = TokenWeights(c, tokens, token_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.tokens(x) + x


def group_shift(x: torch.Tensor, dim: int, shift: int) -> torch.Tensor:
    """Roll 2*shift+1 channel groups by -shift..shift along ``dim`` (zero-filled, UNeXt-style).

    Groups as ``torch.chunk`` makes them, cut with plain slices (exports as ONNX Slice, no sequences)."""
    c, n = int(x.shape[1]), int(x.shape[dim])
    size = -(-c // (2 * shift + 1))

    def part(t: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        idx = [slice(None)] * t.dim()
        idx[dim] = slice(start, stop)
        return t[tuple(idx)]

    out = []
    for i, s in enumerate(range(-shift, shift + 1)):
        if i * size >= c:
            break
        g = x[:, i * size : (i + 1) * size]
        k = min(abs(s), n)
        if k == 0:
            out.append(g)
        elif s > 0:
            out.append(torch.cat([torch.zeros_like(part(g, 0, k)), part(g, 0, n - k)], dim=dim))
        else:
            out.append(torch.cat([part(g, k, n), torch.zeros_like(part(g, 0, k))], dim=dim))
    return torch.cat(out, dim=1)


class DLTFB(nn.Module):
    """Token weights plus shifted mixing: F^w = F * P'' + F + Conv1(LN(shift_H(Conv3(GELU(Conv1(shift_W F))))))  [9-11]."""

    def __init__(self, c: int, tokens: int, token_size: tuple[int, int], shift: int) -> None:
        super().__init__()
        self.tokens = TokenWeights(c, tokens, token_size)
        self.shift = shift
        self.fc1 = nn.Conv3d(c, c, 1)
        self.conv = nn.Conv3d(c, c, 3, padding=1)
        self.norm = LayerNorm3d(c)
        self.fc2 = nn.Conv3d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(F.gelu(self.fc1(group_shift(x, 4, self.shift))))  # [9]
        sh = x + self.fc2(self.norm(group_shift(y, 3, self.shift)))  # [10]
        return x * self.tokens(x) + sh  # [11]


class AMFB(nn.Module):
    """Local / global / deformable streams over [visual; audio] with tri-stream scores [12-14]."""

    def __init__(self, c: int, ca: int) -> None:
        super().__init__()
        cin = c + ca
        self.local = ConvBNReLU3d(cin, c, (1, 3, 3))
        self.glob = ConvBNReLU3d(cin, c, (1, 5, 5))
        self.adaptive = DeformConv2d(cin, c)
        self.adaptive_norm = nn.Sequential(nn.BatchNorm3d(c), nn.ReLU())
        self.score = nn.Linear(3 * c, 3)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([v, a], dim=1)
        streams = [self.local(x), self.glob(x), self.adaptive_norm(self.adaptive(x))]
        fused = torch.cat(streams, dim=1)  # [12]
        w = torch.sigmoid(self.score(fused.mean(dim=(2, 3, 4))))  # [13] (B, 3)
        return sum(w[:, i, None, None, None, None] * s for i, s in enumerate(streams))  # [14]


class ScaleDecoder(nn.Module):
    """(B, C*, T, h, w) -> s_i (B, 1, 1, H, W): temporal-stride-2 3x3x3 convs, upsampling, sigmoid [15]."""

    def __init__(self, c: int, d: int, frames: int, out_size: tuple[int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = [c, d, d, d // 2]
        t = frames
        for cin, cout in zip(chans, chans[1:]):
            layers += [nn.Conv3d(cin, cout, 3, stride=(2 if t > 2 else 1, 1, 1), padding=1), nn.ReLU()]
            t = (t + 1) // 2 if t > 2 else t
        layers.append(nn.Conv3d(chans[-1], 1, (t, 1, 1), stride=(t, 1, 1)))
        self.net = nn.Sequential(*layers)
        self.out_size = out_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(upsample_to(self.net(x), (1, *self.out_size)))


class DTFSal(SaliencyModel):
    """DTFSal: video (B,3,32,224,384) + audio (B,1,9,112,192) -> map (B,1,224,384) in 0..1."""

    name = "dtfsal"
    # DTFSal reports the whole model's parameters (not thop's); MB = params x 4 / 2^20
    paper_figures = {
        "paper": (
            ("params", 49.08, "M", "params"),
            ("FLOPs (thop MACs)", 297.91, "G", "paper_macs"),
            ("model size", 187.26, "MB", "size_mb"),
        ),
        "visual": (  # DTFSal(V), Table 2 and Table 1
            ("params", 40.73, "M", "params"),
            ("FLOPs (thop MACs)", 259.57, "G", "paper_macs"),
            ("model size", 155.37, "MB", "size_mb"),
        ),
    }
    kind = "direct"

    def __init__(self, config: DTFSalConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or DTFSalConfig()
        c = cfg.fpn_channels
        self.video_encoder = MViT(cfg.mvit)
        self.fpn = FPN(cfg.mvit.out_channels, c, cfg.refine)
        self.enhance = nn.ModuleList(
            [LTEB(c, cfg.tokens, cfg.token_size) for _ in range(3)]
            + [DLTFB(c, cfg.tokens, cfg.token_size, cfg.dltfb_shift)]
        )
        if cfg.use_audio:
            self.audio_encoder = AudioEncoder(
                cfg.vggish_channels, cfg.audio_heads, cfg.audio_dim_head, cfg.audio_mlp_dim
            )
            self.audio_proj = nn.Conv3d(cfg.vggish_channels[-1], cfg.audio_fusion_channels, 1)
            self.amfb = AMFB(c, cfg.audio_fusion_channels)
        t = cfg.frames // 2
        self.decoders = nn.ModuleList(ScaleDecoder(c, cfg.decoder_width, t, (cfg.height, cfg.width)) for _ in range(4))
        self.fuse = nn.Conv3d(4, 1, (1, 3, 3), padding=(0, 1, 1))

    def training_recipe(self) -> TrainingRecipe:
        """Eqs. 17-19: L = lambda1 KL + lambda2 CC with lambda1 = 1, lambda2 = -1; Adam 1e-4, the
        learning rate x0.1 every 3 epochs, batch 1, 10 epochs (the paper adds early stopping after 3
        epochs without improvement; here the best checkpoint is kept instead)."""
        return TrainingRecipe(
            loss=lambda m, b, g: saliency_terms(m.predict(b["video"], b["audio"]), b, {"kld": 1.0, "cc": -1.0}),
            optimizer=lambda p: torch.optim.Adam(p, lr=1e-4),
            scheduler=lambda opt, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.1),
            batch_size=1,
            epochs=10,
            source="DTFSal Eqs. 17-19, Implementation Details",
        )

    def parts(self) -> dict[str, nn.Module]:
        p: dict[str, nn.Module] = {"video_encoder": self.video_encoder, "fpn": self.fpn, "lteb_dltfb": self.enhance}
        if self.config.use_audio:
            p.update(audio_encoder=self.audio_encoder, amfb=nn.ModuleList([self.audio_proj, self.amfb]))
        p["decoders"] = nn.ModuleList([self.decoders, self.fuse])
        return p

    def predict(self, video: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        video = self.check("video", video, cfg.video_shape)
        feats = self.fpn(self.video_encoder(video)[::-1])  # finest first
        feats = [blk(f) for blk, f in zip(self.enhance, feats)]
        if cfg.use_audio:
            if audio is None:
                raise UsageError("DTFSal needs audio (build DTFSalConfig(use_audio=False) for DTFSal(V))")
            audio = self.check("audio", audio, cfg.audio_shape)
            check_batch(video, audio)
            i = cfg.amfb_stage - 1
            a = upsample_to(self.audio_proj(self.audio_encoder(audio)), feats[i].shape[2:])
            feats[i] = self.amfb(feats[i], a)
        maps = torch.cat([dec(f) for dec, f in zip(self.decoders, feats)], dim=1)  # (B, 4, 1, H, W)
        return torch.sigmoid(self.fuse(maps))[:, :, 0]  # [16]
