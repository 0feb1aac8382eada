"""DiffSal's Saliency-UNet denoiser.

A noise ResNet encoder turns x_t (and the timestep) into three feature maps that are appended as
an extra frame to the three coarsest video scales; four multi-modal attention modulation (MAM)
stages then decode coarse to fine, each modulated by the audio features, and a head predicts the
clean map x0. Everything that depends only on the encoder features (the audio alignment
convolutions) is computed once per clip by :meth:`SaliencyUNet.align_audio`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from salrt.errors import UsageError
from salrt.kernels.resize_reference import resize_tap_sum as resize_tap_sum_reference


@dataclass(frozen=True)
class UNetConfig:
    """Saliency-UNet hyper-parameters (defaults: the released DiffSal model)."""

    video_channels: tuple[int, int, int, int] = (768, 384, 192, 96)  # coarsest first
    audio_channels: int = 512
    noise_channels: int = 96  # conv_in width; also the sinusoidal timestep width
    fused_channels: int = 768  # width of the per-stage side outputs
    head_channels: int = 96
    num_heads: int = 2
    mlp_ratio: float = 2.0
    kv_kernels: tuple[int, int, int, int] = (2, 4, 8, 16)
    temporal_kernel: int = 5
    group_norm_groups: int = 32
    out_size: tuple[int, int] = (224, 384)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (DDPM/fairseq form): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -(math.log(10000) / (half - 1)))
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


def conv_of_resized_sum(
    inputs: list[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    size: tuple[int, int],
    dilation: int = 1,
    fused: bool = False,
) -> torch.Tensor:
    """``conv2d(sum_i resize(inputs[i], size), weight, bias, padding=dilation, dilation=dilation)``
    for a 3x3 (odd) kernel, computed without the convolution at full size.

    A convolution is a sum over kernel taps of a channel mixing followed by a shift; the mixing
    commutes with the per-channel bilinear resize, so each tap's (Ci -> Co) mixing runs at every
    input's own resolution (one 1x1 convolution to K*K*Co channels), and the taps are resized,
    summed and shifted into place at ``size`` (:func:`salrt.kernels.resize_reference.resize_tap_sum`; ``fused``: as one Triton
    kernel, :mod:`salrt.kernels.resize`). Same weights and result up to rounding (~1e-6); at an
    input resolution of a quarter of ``size`` or less, ~4x fewer FLOPs. Shapes: (B, Ci, h_i, w_i)
    -> (B, Co, *size).
    """
    co, ci, kh, kw = weight.shape
    taps = weight.permute(2, 3, 0, 1).reshape(kh * kw * co, ci, 1, 1)  # one 1x1 mixing per tap
    mixed = [F.conv2d(x, taps) for x in inputs]
    if fused:
        from salrt.kernels.resize import resize_tap_sum as fused_resize_tap_sum

        return fused_resize_tap_sum(mixed, co, size, dilation, bias)
    return resize_tap_sum_reference(mixed, co, size, dilation, bias, kernel=kh)


class PadConv(nn.Module):
    """Zero-pad right/bottom by one, then a stride-s 3x3 conv: (B,C,H,W) -> (B,C,H',W')."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class ResnetBlock(nn.Module):
    """GroupNorm/swish/conv residual block with a timestep projection: (B,Ci,H,W) -> (B,Co,H,W)."""

    def __init__(self, in_ch: int, out_ch: int, temb_ch: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch, eps=1e-6)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb_proj = nn.Linear(temb_ch, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch, eps=1e-6)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(swish(self.norm1(x)))
        h = h + self.temb_proj(swish(temb))[:, :, None, None]
        h = self.conv2(swish(self.norm2(h)))
        return (self.nin_shortcut(x) if self.nin_shortcut is not None else x) + h


class NoiseEncoder(nn.Module):
    """x_t (B,1,H,W) -> [(B,C3,H/32,W/32), (B,C2,H/16,W/16), (B,C1,H/8,W/8)], coarsest first."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        ch = cfg.noise_channels
        self.conv_in = nn.Conv2d(1, ch, 3, padding=1)
        self.down = PadConv(ch, 4)
        widths = cfg.video_channels[:-1][::-1]  # e.g. 192, 384, 768
        ins = (ch,) + widths[:-1]
        self.blocks = nn.ModuleList(ResnetBlock(i, o, 4 * ch, cfg.group_norm_groups) for i, o in zip(ins, widths))
        self.downs = nn.ModuleList(PadConv(o, 2) for o in widths)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> list[torch.Tensor]:
        h = self.down(self.conv_in(x))
        outs = []
        for block, down in zip(self.blocks, self.downs):
            h = down(block(h, temb))
            outs.append(h)
        return outs[::-1]


class DepthOneConv(nn.Module):
    """Depthwise Conv3d applied to a depth-1 volume, computed as the equivalent 2-D conv.

    The weight keeps the reference's Conv3d shape (C, 1, kt, k, k). With a depth-1 input and
    temporal padding kt // 2, only the middle temporal slice of the kernel touches data.
    Shapes: (N, C, H, W) -> (N, C, H', W').
    """

    def __init__(self, channels: int, kernel: tuple[int, int, int], stride: int, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 1, *kernel))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.stride, self.padding, self.channels = stride, padding, channels

    def thop_macs(self, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
        """The papers' thop count: the reference runs a depthwise Conv3d with the full (kt, k, k)
        kernel on a padded depth-1 volume."""
        return out.numel() * math.prod(self.weight.shape[2:]), self.weight.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight[:, :, self.weight.shape[2] // 2]
        return F.conv2d(x, w, stride=self.stride, padding=self.padding, groups=self.channels)


class CompressedCrossAttention(nn.Module):
    """Per-frame attention with spatially compressed keys/values (the paper's ECA).

    Q comes from the frame's tokens (depthwise 3x3 + LayerNorm + linear), V from the same tokens
    through a k x k stride-k depthwise conv + LayerNorm + linear, K likewise from the
    audio-modulated tokens. Scores are scaled by dim^-0.5 with dim the full width (reference).
    Shapes: x, kv_source (N, H*W, C) -> (N, H*W, C).

    Triton (``salrt.kernels.enable`` sets ``use_triton``): the K/V compression + LayerNorm and the
    attention run as the fused kernels of :mod:`salrt.kernels.eca` on CUDA tensors (on any tensor
    with ``triton_force``, as the tests do under the interpreter).
    """

    triton_kernel = "eca_attention"

    def __init__(self, dim: int, num_heads: int, kv_kernel: int) -> None:
        super().__init__()
        self.use_triton = self.triton_force = False
        self.num_heads = num_heads
        self.scale = dim**-0.5
        self.q_conv = DepthOneConv(dim, (3, 3, 3), 1, 1)
        self.k_conv = DepthOneConv(dim, (1, kv_kernel, kv_kernel), kv_kernel, 0)
        self.v_conv = DepthOneConv(dim, (1, kv_kernel, kv_kernel), kv_kernel, 0)
        self.q_norm, self.k_norm, self.v_norm = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.proj_q = nn.Linear(dim, dim)
        self.proj_k = nn.Linear(dim, dim)
        self.proj_v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _tokens(self, conv: DepthOneConv, norm: nn.LayerNorm, proj: nn.Linear, img: torch.Tensor) -> torch.Tensor:
        n = img.shape[0]
        y = norm(conv(img).flatten(2).transpose(1, 2))
        return proj(y).reshape(n, y.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, kv_source: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.use_triton and (x.is_cuda or self.triton_force):
            return self._forward_triton(x, kv_source, h, w)
        n, length, c = x.shape
        x_img = x.transpose(1, 2).reshape(n, c, h, w)
        kv_img = kv_source.transpose(1, 2).reshape(n, c, h, w)
        q = self._tokens(self.q_conv, self.q_norm, self.proj_q, x_img)
        k = self._tokens(self.k_conv, self.k_norm, self.proj_k, kv_img)
        v = self._tokens(self.v_conv, self.v_norm, self.proj_v, x_img)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(n, length, c))

    def _forward_triton(self, x: torch.Tensor, kv_source: torch.Tensor, h: int, w: int) -> torch.Tensor:
        from salrt.kernels.eca import attention, compress_tokens

        n, length, c = x.shape
        q = self._tokens(self.q_conv, self.q_norm, self.proj_q, x.transpose(1, 2).reshape(n, c, h, w))
        k = self.k_conv.weight.shape[-1]

        def kv(conv: DepthOneConv, norm: nn.LayerNorm, proj: nn.Linear, src: torch.Tensor) -> torch.Tensor:
            wgt = conv.weight[:, 0, conv.weight.shape[2] // 2]
            t = proj(compress_tokens(src, wgt, norm.weight, norm.bias, k, norm.eps, hw=(h, w)))
            return t.reshape(n, t.shape[1], self.num_heads, -1).transpose(1, 2)

        keys = kv(self.k_conv, self.k_norm, self.proj_k, kv_source)
        values = kv(self.v_conv, self.v_norm, self.proj_v, x)
        return self.proj(attention(q, keys, values, self.scale))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2: (..., C) -> (..., C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MAMBlock(nn.Module):
    """Audio interaction (MIM) + compressed cross-attention + MLP on every frame.

    Shapes: x (B, C, T, H, W), aligned audio (B, C, T, H, W) -> (B, C, T, H, W).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, kv_kernel: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = CompressedCrossAttention(dim, num_heads, kv_kernel)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        # Audio interaction: weights from the time-averaged audio*video product, softmax over width.
        weights = torch.softmax((audio * x).mean(dim=2, keepdim=True), dim=-1)
        # Reference quirk kept for checkpoint fidelity: the (B, C, T, H, W) modulated audio is
        # reinterpreted in memory order as (B*T, H*W, C) tokens (a view, not a permute).
        kv_source = (audio * weights).reshape(b * t, h * w, c)
        tokens = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        tokens = tokens + self.attn(self.norm(tokens), kv_source, h, w)
        tokens = tokens + self.mlp(self.norm2(tokens))
        return tokens.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)


class UpEmbed(nn.Module):
    """Per-frame bilinear x2 upsampling + two dilated 3x3 conv/BN/ReLU: (B,Ci,T,H,W) -> (B,Co,T,2H,2W)."""

    triton_kernel = "resize_tap_sum"

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.use_triton = self.triton_force = False  # salrt.kernels.enable: the fused resize_tap_sum
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=2, dilation=2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=2, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def thop_macs(self, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
        """thop: the reference's nn.Upsample(bilinear) module, 11 ops per output element, and its
        conv1 over the upsampled frames (applied functionally here, in either order)."""
        b, c, t, h, w = inputs[0].shape
        conv1 = out.numel() * c * math.prod(self.conv1.weight.shape[2:])
        return 11 * b * t * c * (2 * h) * (2 * w) + conv1, self.conv1.weight.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        y = x.transpose(1, 2).reshape(b * t, c, h, w)
        dil = self.conv1.dilation[0]
        fused = self.use_triton and (y.is_cuda or self.triton_force)
        if fused or torch.onnx.is_in_onnx_export():
            # conv1 of the upsampled frames with its channel mixing run before the upsampling (exact
            # up to rounding, a quarter of the FLOPs): 10% less time per clip in the exported graphs
            # under OpenVINO, and no full-size tap tensor at all with the fused kernel. Eager torch
            # keeps the reference's order: its resize of the 4.5x wider tap tensor costs more than
            # the FLOPs saved there (9.1 vs 7.7 s per clip on CPU).
            y = conv_of_resized_sum([y], self.conv1.weight, None, (2 * h, 2 * w), dil, fused)
        else:  # conv1 applied functionally either way: thop_macs counts it once
            y = F.interpolate(y, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)
            y = F.conv2d(y, self.conv1.weight, None, padding=self.conv1.padding, dilation=dil)
        y = F.relu(self.bn1(y))
        y = F.relu(self.bn2(self.conv2(y)))
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


class TemporalReduce(nn.Module):
    """The reference's Conv3d (k,1,1), stride k, no bias, + ReLU, for a single output frame.

    Computed as one matmul over the first k frames' channel-last tokens (the only ones the
    strided kernel sees). Shapes: (B, k, H, W, Ci) -> (B, Co, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, k: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, k, 1, 1))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def thop_macs(self, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
        """thop: the reference's Conv3d (k,1,1) with one output frame."""
        return out.numel() * self.weight.shape[1] * self.weight.shape[2], self.weight.numel()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, k, h, w, c = frames.shape
        weight = self.weight[:, :, :, 0, 0].permute(0, 2, 1).reshape(self.weight.shape[0], k * c)
        y = F.linear(frames.permute(0, 2, 3, 1, 4).reshape(b, h * w, k * c), weight)
        # NCHW-contiguous: the bilinear resize that follows is several times slower on channels-last.
        return F.relu(y).transpose(1, 2).contiguous().reshape(b, -1, h, w)


class MAMStage(nn.Module):
    """One decoder stage: [upsample + video skip] -> MAM block -> side output at the fused width."""

    def __init__(self, in_ch: int, dim: int, cfg: UNetConfig, kv_kernel: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = UpEmbed(in_ch, dim) if upsample else None
        self.align_conv = nn.Conv2d(cfg.audio_channels, dim, 1)
        self.block = MAMBlock(dim, cfg.num_heads, cfg.mlp_ratio, kv_kernel)
        self.out_norm = nn.LayerNorm(dim)
        self.temporal_reduce = TemporalReduce(dim, cfg.fused_channels, cfg.temporal_kernel)
        self.k = cfg.temporal_kernel

    def align(self, audio: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, Ca, T, h, w) audio features -> (B, C, T, H, W) at this stage's size (per clip)."""
        b, ca, t, h, w = audio.shape
        y = self.align_conv(audio.transpose(1, 2).reshape(b * t, ca, h, w))
        if (h, w) != size:
            factor = size[0] // h  # reference: one integer factor, taken from the heights
            if (h * factor, w * factor) != tuple(size):
                raise UsageError(f"audio features {h}x{w} cannot be upsampled by an integer factor to {size}")
            y = F.interpolate(y, size=(h * factor, w * factor), mode="nearest")
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2).contiguous()

    def thop_macs(self, inputs: tuple, out: tuple) -> tuple[int, int]:
        """thop: the reference's side-output LayerNorm runs on all T frames; salrt normalises only
        the k frames the temporal reduction reads (the LayerNorm's own rule counts those)."""
        b, c, t, h, w = out[0].shape
        return 4 * b * c * (t - self.k) * h * w, 0

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None, audio: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upsample is not None:
            x = self.upsample(x)
        if skip is not None:
            x = x + skip
        x = self.block(x, audio)
        frames = self.out_norm(x[:, :, : self.k].permute(0, 2, 3, 4, 1))
        return x, self.temporal_reduce(frames)


class SaliencyHead(nn.Module):
    """Sum of the bilinearly resized side outputs -> conv3x3/BN/ReLU -> 1x1 conv -> sigmoid ->
    bilinear resize: four (B,Cf,h_i,w_i) sides and the fused size (h,w) -> (B,1,H,W).

    The 3x3 convolution of the sum runs at the sides' own resolutions (:func:`conv_of_resized_sum`):
    same weights and result up to rounding, a third of the FLOPs of the full-size convolution.
    """

    triton_kernel = "resize_tap_sum"

    def __init__(self, in_ch: int, mid_ch: int, out_size: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, mid_ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(mid_ch)
        self.logits = nn.Conv2d(mid_ch, 1, 1)
        self.out_size = out_size
        self.use_triton = self.triton_force = False  # salrt.kernels.enable: the fused resize_tap_sum

    def thop_macs(self, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
        """thop: the reference's 3x3 convolution over the fused (B, Cf, h, w) sum."""
        b, (h, w) = inputs[0][0].shape[0], inputs[1]
        co, ci, kh, kw = self.conv.weight.shape
        return b * co * h * w * ci * kh * kw, sum(p.numel() for p in self.conv.parameters())

    def conv_of_sum(self, sides: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        """``self.conv`` of the sum of ``sides`` resized to ``size``: (B, Cm, h, w)."""
        fused = self.use_triton and (sides[0].is_cuda or self.triton_force)
        return conv_of_resized_sum(sides, self.conv.weight, self.conv.bias, size, fused=fused)

    def forward(self, sides: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = torch.sigmoid(self.logits(F.relu(self.bn(self.conv_of_sum(sides, size)))))
        return F.interpolate(y, size=self.out_size, mode="bilinear", align_corners=False)


class SaliencyUNet(nn.Module):
    """The denoiser: (x_t, t, video features, aligned audio) -> predicted clean map x0."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.noise_channels
        self.time_embed = nn.ModuleList([nn.Linear(ch, 4 * ch), nn.Linear(4 * ch, 4 * ch)])
        self.noise_encoder = NoiseEncoder(cfg)
        dims = cfg.video_channels
        self.stages = nn.ModuleList(
            MAMStage(dims[max(i - 1, 0)], dims[i], cfg, cfg.kv_kernels[i], upsample=i > 0) for i in range(4)
        )
        self.head = SaliencyHead(cfg.fused_channels, cfg.head_channels, cfg.out_size)

    def align_audio(
        self, audio: torch.Tensor, video: list[torch.Tensor] | tuple[torch.Tensor, ...]
    ) -> list[torch.Tensor]:
        """Per-clip audio alignment for the four stages (independent of x_t and t).

        Args:
            audio: (B, Ca, T+1, h, w) audio features; video: the four video scales, coarsest first.
        Returns:
            Four tensors (B, C_i, T+1, H_i, W_i).
        """
        h0, w0 = video[0].shape[-2:]
        return [stage.align(audio, (h0 * 2**i, w0 * 2**i)) for i, stage in enumerate(self.stages)]

    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        video: list[torch.Tensor] | tuple[torch.Tensor, ...],
        audio_aligned: list[torch.Tensor] | tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        """One denoiser pass.

        Args:
            x_t: (B, 1, H, W) noisy map; t: (B,) integer timesteps.
            video: four (B, C_i, T, H_i, W_i) scales, coarsest first (only the first three are used).
            audio_aligned: output of :meth:`align_audio`.
        Returns:
            (B, 1, H, W) predicted x0 in 0..1.
        """
        temb = timestep_embedding(t, self.cfg.noise_channels).to(x_t.dtype)
        temb = self.time_embed[1](swish(self.time_embed[0](temb)))
        noise = self.noise_encoder(x_t, temb)
        # The noise features join the three coarsest video scales as an extra last frame.
        feats = [torch.cat([video[i], noise[i].unsqueeze(2)], dim=2) for i in range(3)]
        x = feats[0]
        sides = []
        for i, stage in enumerate(self.stages):
            x, side = stage(x, feats[i] if i in (1, 2) else None, audio_aligned[i])
            sides.append(side)
        # the side outputs meet at 16x the coarsest scale (the reference's fused size)
        return self.head(sides, (16 * video[0].shape[-2], 16 * video[0].shape[-1]))
