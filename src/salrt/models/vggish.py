"""VGGish audio encoder (convolutional ``features`` only) and DiffSal's audio temporal module."""

from __future__ import annotations

import os

import torch
from torch import nn

from salrt.checkpoint import check_and_load, extract_state_dict, read_torch_file
from salrt.errors import CheckpointError


class VGGishFeatures(nn.Module):
    """The VGGish conv stack: (N, 1, H, W) log-mel -> (N, C4, H/16, W/16).

    Layer indices match the torch port of VGGish (``features.0`` ... ``features.13``), so
    ``vggish.pth`` loads unchanged. The embedding MLP is not part of DiffSal's forward pass.
    """

    def __init__(self, channels: tuple[int, int, int, int] = (64, 128, 256, 512)) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        plan: list[int | str] = [c1, "M", c2, "M", c3, c3, "M", c4, c4, "M"]
        layers: list[nn.Module] = []
        in_ch = 1
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU()]
                in_ch = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class SelfAttention(nn.Module):
    """Pre-norm multi-head self-attention without qkv bias: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.attend = nn.Softmax(dim=-1)
        self.to_out = nn.Sequential(nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = self.attend((q @ k.transpose(-1, -2)) * self.scale)
        out = (attn @ v).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class FeedForward(nn.Module):
    """Pre-norm MLP: LayerNorm -> Linear -> GELU -> Linear. (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        # Indices 0, 1, 4 match the reference's Sequential (its dropouts sat at 3 and 5).
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Identity(), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AudioTemporalModule(nn.Module):
    """One transformer layer over all audio tokens of a clip (DiffSal's ``spatiotemp_net``).

    Shapes: (B, C, T, H, W) -> (B, C, T, H, W); attention spans all T*H*W tokens.

    The reference also computes a patch embedding plus a position embedding and then discards
    both (its transformer runs on the raw features); that dead branch is not built here, and
    its weights are listed as ignored when a checkpoint is imported.
    """

    def __init__(self, dim: int = 512, heads: int = 2, dim_head: int = 64, mlp_dim: int = 256, depth: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([SelfAttention(dim, heads, dim_head), FeedForward(dim, mlp_dim)]) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def thop_macs(self, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
        """thop: the reference's patch embedding (LayerNorm, Linear, LayerNorm), computed, then discarded."""
        d = inputs[0].shape[1]
        n = inputs[0].numel()
        return 4 * n + d * n + 4 * n, 4 * d + d * d + d

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = audio.shape
        x = audio.flatten(2).transpose(1, 2)
        for attn, ff in self.layers:
            x = attn(x) + x
            x = ff(x) + x
        x = self.norm(x)
        return x.transpose(1, 2).reshape(b, c, t, h, w)


class AudioEncoder(nn.Module):
    """VGGish features per log-mel slice + the temporal module.

    Input (B, 1, S, H, W) (S slices); output (B, C4, S, H/16, W/16).
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int] = (64, 128, 256, 512),
        heads: int = 2,
        dim_head: int = 64,
        mlp_dim: int = 256,
        temporal: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.audio_net = VGGishFeatures(channels)
        # ``temporal``: another refinement of the (B, C, S, h, w) features (MUBiC's Eqs. 3.5-3.8)
        self.spatiotemp_net = temporal or AudioTemporalModule(channels[-1], heads, dim_head, mlp_dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        b, _, s, h, w = audio.shape
        feats = self.audio_net(audio.reshape(b * s, 1, h, w))
        feats = feats.reshape(b, s, *feats.shape[1:]).transpose(1, 2)
        return self.spatiotemp_net(feats)


def load_vggish_pretrained(audio_net: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load ``vggish.pth`` (torch port) into the VGGish conv stack; its embeddings are ignored."""
    raw = extract_state_dict(read_torch_file(path), str(path))
    sd = {k: v for k, v in raw.items() if k.startswith("features.")}
    if not sd:
        raise CheckpointError(f"{path}: no 'features.' tensors: not a VGGish checkpoint")
    ignored = sorted(k for k in raw if not k.startswith("features."))
    unexpected = [k for k in ignored if not k.startswith(("embeddings.", "pproc."))]
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensor(s) {unexpected[:8]}")
    check_and_load(audio_net, sd, str(path))
    return ignored
