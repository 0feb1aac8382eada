"""Deterministic synthetic weights and inputs for parity tests and benchmarks.

Weights are drawn per tensor from a generator seeded by (seed, name), so the same state dict can
be rebuilt anywhere from the list of names and shapes alone (the reference's names included).
Scales are chosen so that outputs stay in a sensitive range and depend on every input.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import torch


def _gen(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))


def synthetic_tensor(name: str, shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """One synthetic parameter or buffer, chosen by its name and shape."""
    g = _gen(seed, name)
    shape = tuple(int(s) for s in shape)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "num_batches_tracked":
        return torch.zeros(shape, dtype=torch.long)
    if leaf == "running_mean":
        return 0.1 * torch.randn(shape, generator=g)
    if leaf == "running_var":
        return 0.75 + 0.5 * torch.rand(shape, generator=g)
    if "rel_pos" in leaf or leaf in ("cls_token", "pos_embedding"):
        return 0.1 * torch.randn(shape, generator=g)
    if len(shape) == 1:
        if leaf == "weight":  # norm scales
            return 1.0 + 0.1 * torch.randn(shape, generator=g)
        return 0.05 * torch.randn(shape, generator=g)
    fan_in = math.prod(shape[1:])
    return torch.randn(shape, generator=g) / math.sqrt(fan_in)


def synthetic_state_dict(shapes: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """A full state dict for the given names and shapes."""
    return {k: synthetic_tensor(k, v, seed) for k, v in shapes.items()}


def load_synthetic_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fill ``model`` in place with :func:`synthetic_state_dict` of its own names and shapes."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(synthetic_state_dict(shapes, seed))
    return model


def synthetic_inputs(
    video_shape: Sequence[int], audio_shape: Sequence[int], batch: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(video, audio, x_T) with standard-normal entries, from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, *video_shape, generator=g)
    audio = torch.randn(batch, *audio_shape, generator=g)
    noise = torch.randn(batch, 1, video_shape[-2], video_shape[-1], generator=g)
    return video, audio, noise
