"""MViTv2 video encoder in the mmaction2 layout (DiffSal's ``visual_net``).

Pooling attention with decomposed relative positions and residual pooling, four output
scales. Parameter names follow the mmaction2 checkpoint so released weights load as they are.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from salrt.checkpoint import check_and_load, extract_state_dict, read_torch_file
from salrt.errors import CheckpointError


@dataclass(frozen=True)
class MViTConfig:
    """MViTv2 hyper-parameters (defaults: ``arch='small'`` of mmaction2)."""

    embed_dim: int = 96
    depth: int = 16
    num_heads: int = 1
    downscale_layers: tuple[int, ...] = (1, 3, 14)
    mlp_ratio: float = 4.0
    kv_stride: tuple[int, int, int] = (1, 8, 8)
    # Size the relative-position tables are built for. The reference always builds them for a
    # 16x224x224 clip and interpolates them at run time for other sizes (224x384 included).
    table_input: tuple[int, int, int] = (16, 224, 224)
    in_channels: int = 3

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the four output scales, finest first."""
        return tuple(self.embed_dim * 2**i for i in range(len(self.downscale_layers) + 1))


def _patch_grid(cfg: MViTConfig, t: int, h: int, w: int) -> tuple[int, int, int]:
    """Token grid of the (3,7,7)/(2,4,4)/(1,3,3) patch embedding for a T x H x W clip."""
    return ((t + 2 - 3) // 2 + 1, (h + 6 - 7) // 4 + 1, (w + 6 - 7) // 4 + 1)


def _rel_pos_table(table: torch.Tensor, q_size: int, k_size: int) -> torch.Tensor:
    """Relative position embeddings for every (query, key) pair along one axis.

    Args:
        table: (L, C) learned table.
    Returns:
        (q_size, k_size, C).
    """
    length = 2 * max(q_size, k_size) - 1
    if table.shape[0] != length:
        table = F.interpolate(table.t().unsqueeze(0), size=length, mode="linear").squeeze(0).t()
    q_ratio = max(k_size / q_size, 1.0)
    k_ratio = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=table.device)[:, None] * q_ratio
    k_coords = torch.arange(k_size, device=table.device)[None, :] * k_ratio
    index = (q_coords - k_coords) + (k_size - 1) * k_ratio
    return table[index.long()]


def _pool_tokens(
    x: torch.Tensor, pool: nn.Module, grid: tuple[int, int, int], norm: nn.Module | None = None
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Pool the patch tokens of ``x`` on their 3-D grid, keeping the class token.

    Args:
        x: (B, heads, 1 + T*H*W, C) with the class token first.
    Returns:
        (B, heads, 1 + T'*H'*W', C) and the pooled grid (T', H', W').
    """
    b, heads, _, c = x.shape
    t, h, w = grid
    cls_tok, tokens = x[:, :, :1], x[:, :, 1:]
    tokens = tokens.reshape(b * heads, t, h, w, c).permute(0, 4, 1, 2, 3)
    tokens = pool(tokens)
    out_grid = (tokens.shape[2], tokens.shape[3], tokens.shape[4])
    tokens = tokens.reshape(b, heads, c, -1).transpose(2, 3)
    x = torch.cat((cls_tok, tokens), dim=2)
    if norm is not None:
        x = norm(x)
    return x, out_grid


class PoolingAttention(nn.Module):
    """Multi-head pooling attention with decomposed relative positions (MViTv2).

    Shapes: (B, 1 + N, in_dim) -> (B, 1 + N', out_dim), N' the pooled query grid.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_heads: int,
        stride_q: tuple[int, int, int],
        stride_kv: tuple[int, int, int],
        table_grid: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.out_dim = out_dim
        head_dim = out_dim // num_heads
        self.scale = head_dim**-0.5
        self.qkv = nn.Linear(in_dim, out_dim * 3)
        self.proj = nn.Linear(out_dim, out_dim)

        def pooling(stride: tuple[int, int, int]) -> nn.Conv3d:
            return nn.Conv3d(head_dim, head_dim, 3, stride=stride, padding=1, groups=head_dim, bias=False)

        self.pool_q, self.norm_q = pooling(stride_q), nn.LayerNorm(head_dim)
        self.pool_k, self.norm_k = pooling(stride_kv), nn.LayerNorm(head_dim)
        self.pool_v, self.norm_v = pooling(stride_kv), nn.LayerNorm(head_dim)
        size = table_grid[1]
        rel_dim = 2 * max(size // stride_q[1], size // stride_kv[1]) - 1
        self.rel_pos_h = nn.Parameter(torch.zeros(rel_dim, head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(rel_dim, head_dim))
        self.rel_pos_t = nn.Parameter(torch.zeros(2 * table_grid[0] - 1, head_dim))
        # False: materialised scores as the reference computes them (cost accounting, baselines).
        self.fused = True

    def _relative_scores(
        self, q: torch.Tensor, q_grid: tuple[int, int, int], k_grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """Per-query relative-position terms for each key coordinate along t, h and w.

        Returns (B, heads, Nq, Kt + Kh + Kw) for the patch queries (class token excluded). The
        bias of query i and key (jt, jh, jw) is rel[i, jt] + rel[i, Kt + jh] + rel[i, Kt + Kh + jw].
        """
        b, heads, _, c = q.shape
        rt = _rel_pos_table(self.rel_pos_t, q_grid[0], k_grid[0])
        rh = _rel_pos_table(self.rel_pos_h, q_grid[1], k_grid[1])
        rw = _rel_pos_table(self.rel_pos_w, q_grid[2], k_grid[2])
        r_q = q[:, :, 1:].reshape(b, heads, *q_grid, c)
        rel_t = torch.einsum("bythwc,tkc->bythwk", r_q, rt)
        rel_h = torch.einsum("bythwc,hkc->bythwk", r_q, rh)
        rel_w = torch.einsum("bythwc,wkc->bythwk", r_q, rw)
        nq = q_grid[0] * q_grid[1] * q_grid[2]
        return torch.cat([rel_t, rel_h, rel_w], dim=-1).reshape(b, heads, nq, -1)

    @staticmethod
    def _key_indicators(grid: tuple[int, int, int], like: torch.Tensor) -> torch.Tensor:
        """(1 + Kt*Kh*Kw, Kt + Kh + Kw) one-hot coordinates of every key; zeros for the class token."""
        kt, kh, kw = grid
        n = kt * kh * kw
        idx = torch.arange(n, device=like.device)
        eye_t = torch.eye(kt, dtype=like.dtype, device=like.device)
        eye_h = torch.eye(kh, dtype=like.dtype, device=like.device)
        eye_w = torch.eye(kw, dtype=like.dtype, device=like.device)
        onehot = torch.cat([eye_t[idx // (kh * kw)], eye_h[(idx // kw) % kh], eye_w[idx % kw]], dim=-1)
        return F.pad(onehot, (0, 0, 1, 0))

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        q, q_grid = _pool_tokens(q, self.pool_q, grid, self.norm_q)
        k, k_grid = _pool_tokens(k, self.pool_k, grid, self.norm_k)
        v, _ = _pool_tokens(v, self.pool_v, grid, self.norm_v)

        rel = F.pad(self._relative_scores(q, q_grid, k_grid), (0, 0, 1, 0))
        attend = self._attention_fused if self.fused else self._attention_unfused
        out = attend(q, k, v, rel, k_grid)
        out = out + F.pad(q[:, :, 1:], (0, 0, 1, 0))  # residual pooling, class token excluded
        out = out.transpose(1, 2).reshape(b, -1, self.out_dim)
        return self.proj(out), q_grid

    def _attention_unfused(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel: torch.Tensor, k_grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """Reference-style: materialised scores plus the broadcast (Nq x Nk) bias, then softmax."""
        b, heads, nq1, _ = q.shape
        kt, kh, kw = k_grid
        r = rel[:, :, 1:]
        bias = (r[..., :kt, None, None] + r[..., None, kt : kt + kh, None] + r[..., None, None, kt + kh :]).reshape(
            b, heads, nq1 - 1, kt * kh * kw
        )
        attn = (q * self.scale) @ k.transpose(-2, -1) + F.pad(bias, (1, 0, 1, 0))
        return attn.softmax(dim=-1) @ v

    def _attention_fused(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel: torch.Tensor, k_grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """softmax(q k^T * scale + bias) in one fused kernel: the decomposed bias is a dot product of
        per-query terms with one-hot key coordinates, so it rides along as extra channels of q and k
        and the (Nq x Nk) bias is never materialised."""
        b = q.shape[0]
        q_aug = torch.cat([q * self.scale, rel], dim=-1)
        keys = self._key_indicators(k_grid, k).expand(b, self.num_heads, -1, -1)
        k_aug = torch.cat([k, keys], dim=-1)
        extra = rel.shape[-1]
        # v is zero-padded to the augmented width: the fused CPU kernel needs equal head dims.
        return F.scaled_dot_product_attention(q_aug, k_aug, F.pad(v, (0, extra)), scale=1.0)[..., : v.shape[-1]]


class MLP(nn.Module):
    """fc1 -> GELU -> fc2. Shapes: (..., in_dim) -> (..., out_dim)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class MViTBlock(nn.Module):
    """One MViTv2 block: pooling attention + MLP, with a pooled (and projected) skip path."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        num_heads: int,
        mlp_ratio: float,
        stride_q: tuple[int, int, int],
        stride_kv: tuple[int, int, int],
        table_grid: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(in_dim)
        self.attn = PoolingAttention(in_dim, out_dim, num_heads, stride_q, stride_kv, table_grid)
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = MLP(out_dim, int(out_dim * mlp_ratio), out_dim)
        self.proj = nn.Linear(in_dim, out_dim) if in_dim != out_dim else None
        if math.prod(stride_q) > 1:
            kernel = tuple(s + 1 if s > 1 else s for s in stride_q)
            self.pool_skip = nn.MaxPool3d(kernel, stride_q, tuple(k // 2 for k in kernel))
        else:
            self.pool_skip = None

    def forward(self, x: torch.Tensor, grid: tuple[int, int, int]) -> tuple[torch.Tensor, tuple[int, int, int]]:
        x_norm = self.norm1(x)
        x_attn, out_grid = self.attn(x_norm, grid)
        skip = self.proj(x_norm) if self.proj is not None else x
        if self.pool_skip is not None:
            skip, _ = _pool_tokens(skip.unsqueeze(1), self.pool_skip, grid)
            skip = skip.squeeze(1)
        x = skip + x_attn
        return x + self.mlp(self.norm2(x)), out_grid


class PatchEmbed3D(nn.Module):
    """Conv3d (3,7,7) / stride (2,4,4) / pad (1,3,3): (B,3,T,H,W) -> (B, T'*H'*W', C)."""

    def __init__(self, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.projection = nn.Conv3d(in_channels, embed_dim, (3, 7, 7), stride=(2, 4, 4), padding=(1, 3, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        x = self.projection(x)
        grid = (x.shape[2], x.shape[3], x.shape[4])
        return x.flatten(2).transpose(1, 2), grid


class MViT(nn.Module):
    """MViTv2 backbone returning four scales.

    Input (B, 3, T, H, W) normalised video. Output, coarsest first (as the reference):
    [(B, 8C, T/2, H/32, W/32), (B, 4C, T/2, H/16, W/16), (B, 2C, T/2, H/8, W/8), (B, C, T/2, H/4, W/4)].
    """

    def __init__(self, cfg: MViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        self.patch_embed = PatchEmbed3D(cfg.in_channels, c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        grid = _patch_grid(cfg, *cfg.table_input)
        blocks = []
        dims, heads, stride_kv = c, cfg.num_heads, cfg.kv_stride
        self.stage_ends: dict[int, int] = {i - 1: s for s, i in enumerate(cfg.downscale_layers)}
        self.stage_ends[cfg.depth - 1] = len(cfg.downscale_layers)
        for i in range(cfg.depth):
            out_dims = dims
            stride_q = (1, 1, 1)
            if i in cfg.downscale_layers:
                heads *= 2
                out_dims = dims * 2
                stride_q = (1, 2, 2)
                stride_kv = tuple(max(s // 2, 1) for s in stride_kv)
            blocks.append(MViTBlock(dims, out_dims, heads, cfg.mlp_ratio, stride_q, stride_kv, grid))
            if i in cfg.downscale_layers:
                grid = (grid[0] // stride_q[0], grid[1] // stride_q[1], grid[2] // stride_q[2])
            dims = out_dims
        self.blocks = nn.ModuleList(blocks)
        for stage, ch in enumerate(cfg.out_channels):
            self.add_module(f"norm{stage}", nn.LayerNorm(ch))

    def forward(self, video: torch.Tensor) -> list[torch.Tensor]:
        b = video.shape[0]
        x, grid = self.patch_embed(video)
        x = torch.cat((self.cls_token.expand(b, -1, -1), x), dim=1)
        outs = []
        for i, block in enumerate(self.blocks):
            x, grid = block(x, grid)
            if i in self.stage_ends:
                # Reference quirk (mmaction2): the stage norm's output also feeds the next block.
                x = getattr(self, f"norm{self.stage_ends[i]}")(x)
                outs.append(x[:, 1:].transpose(1, 2).reshape(b, x.shape[2], *grid))
        return outs[::-1]


@contextmanager
def reference_attention(module: nn.Module) -> Iterator[None]:
    """Run every MViT attention inside ``module`` with materialised scores, as the reference does."""
    layers = [m for m in module.modules() if isinstance(m, PoolingAttention)]
    for m in layers:
        m.fused = False
    try:
        yield
    finally:
        for m in layers:
            m.fused = True


def load_mvit_pretrained(video_encoder: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load the mmaction2 MViTv2-S Kinetics-400 checkpoint into the video encoder.

    Keys under ``backbone.`` are used, the classifier head is ignored. Relative-position tables
    of another length are linearly resized (as the reference does). The checkpoint carries only
    the last stage norm (``norm3``); ``norm0..2`` keep their identity initialisation, as in the
    reference. Returns the names that were initialised that way.
    """
    raw = extract_state_dict(read_torch_file(path), str(path))
    sd = {k[len("backbone.") :]: v for k, v in raw.items() if k.startswith("backbone.")}
    if not sd:
        raise CheckpointError(f"{path}: no 'backbone.' tensors: not an mmaction2 MViT checkpoint")
    own = video_encoder.state_dict()
    for k, v in list(sd.items()):
        if ".attn.rel_pos" in k and k in own and v.shape[1] == own[k].shape[1] and v.shape[0] != own[k].shape[0]:
            sd[k] = F.interpolate(v.t().unsqueeze(0), size=own[k].shape[0], mode="linear").reshape(v.shape[1], -1).t()
    allowed = {f"norm{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    default_init = sorted(k for k in allowed if k in own and k not in sd)
    for k in default_init:
        sd[k] = torch.ones_like(own[k]) if k.endswith("weight") else torch.zeros_like(own[k])
    check_and_load(video_encoder, sd, str(path))
    return default_init
