"""S3D (Xie et al., ECCV 2018): separable 3-D Inception backbone with four output scales.

Module names follow the public Kinetics-400 port (``S3D_kinetics400.pt``: keys ``base.0.conv_s.weight``,
``base.5.branch1.1.conv_t.weight``, ...), so that file loads with :func:`load_s3d_pretrained`;
its classifier (``fc.*``) is not built. Scales (TASED-Net / ViNet taps) for a (B, 3, T, H, W) clip:
192 ch at (T/2, H/4, W/4), 480 at (T/2, H/8, W/8), 832 at (T/4, H/16, W/16), 1024 at (T/8, H/32, W/32).
"""

from __future__ import annotations

import os

import torch
from torch import nn


class BasicConv3d(nn.Module):
    """Conv3d (no bias) + BatchNorm (eps 1e-3) + ReLU."""

    def __init__(
        self, cin: int, cout: int, kernel: int | tuple[int, int, int] = 1, stride: int = 1, padding: int = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=1e-3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class SepConv3d(nn.Module):
    """A (1,k,k) spatial conv then a (k,1,1) temporal conv, each with BatchNorm + ReLU."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv_s = nn.Conv3d(cin, cout, (1, k, k), (1, stride, stride), (0, padding, padding), bias=False)
        self.bn_s = nn.BatchNorm3d(cout, eps=1e-3, momentum=1e-3)
        self.relu_s = nn.ReLU()
        self.conv_t = nn.Conv3d(cout, cout, (k, 1, 1), (stride, 1, 1), (padding, 0, 0), bias=False)
        self.bn_t = nn.BatchNorm3d(cout, eps=1e-3, momentum=1e-3)
        self.relu_t = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu_s(self.bn_s(self.conv_s(x)))
        return self.relu_t(self.bn_t(self.conv_t(x)))


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> sep3 | 1x1 -> sep3 | maxpool -> 1x1, concatenated."""

    def __init__(self, cin: int, b0: int, b1: tuple[int, int], b2: tuple[int, int], b3: int) -> None:
        super().__init__()
        self.branch0 = BasicConv3d(cin, b0)
        self.branch1 = nn.Sequential(BasicConv3d(cin, b1[0]), SepConv3d(b1[0], b1[1], 3, padding=1))
        self.branch2 = nn.Sequential(BasicConv3d(cin, b2[0]), SepConv3d(b2[0], b2[1], 3, padding=1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), BasicConv3d(cin, b3))
        self.out_channels = b0 + b1[1] + b2[1] + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], dim=1)


# (in, b0, b1, b2, b3) of Mixed_3b .. Mixed_5c, with a width multiplier for tiny configs
_MIXED = {
    "3b": (192, 64, (96, 128), (16, 32), 32),
    "3c": (256, 128, (128, 192), (32, 96), 64),
    "4b": (480, 192, (96, 208), (16, 48), 64),
    "4c": (512, 160, (112, 224), (24, 64), 64),
    "4d": (512, 128, (128, 256), (24, 64), 64),
    "4e": (512, 112, (144, 288), (32, 64), 64),
    "4f": (528, 256, (160, 320), (32, 128), 128),
    "5b": (832, 256, (160, 320), (32, 128), 128),
    "5c": (832, 384, (192, 384), (48, 128), 128),
}


def _mixed(name: str, div: int) -> Mixed:
    cin, b0, b1, b2, b3 = _MIXED[name]

    def d(c):
        return max(c // div, 1)

    return Mixed(d(cin), d(b0), (d(b1[0]), d(b1[1])), (d(b2[0]), d(b2[1])), d(b3))


class S3D(nn.Module):
    """S3D backbone; ``width_div`` > 1 divides every width (tiny test configs only).

    Input (B, 3, T, H, W); output the four scales, finest first (see the module docstring).
    """

    def __init__(self, width_div: int = 1) -> None:
        super().__init__()

        def d(c):
            return max(c // width_div, 1)

        self.base = nn.Sequential(
            SepConv3d(3, d(64), 7, stride=2, padding=3),  # 0
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            BasicConv3d(d(64), d(64)),
            SepConv3d(d(64), d(192), 3, padding=1),  # 3: scale 1
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
            _mixed("3b", width_div),
            _mixed("3c", width_div),  # 6: scale 2
            nn.MaxPool3d(3, 2, 1),
            *(_mixed(n, width_div) for n in ("4b", "4c", "4d", "4e", "4f")),  # 12: scale 3
            nn.MaxPool3d(2, 2, 0),
            _mixed("5b", width_div),
            _mixed("5c", width_div),  # 15: scale 4
        )
        self.taps = (3, 6, 12, 15)
        self.out_channels = (d(192), self.base[6].out_channels, self.base[12].out_channels, self.base[15].out_channels)

    def forward(self, video: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = video
        for i, layer in enumerate(self.base):
            x = layer(x)
            if i in self.taps:
                outs.append(x)
        return outs


def load_s3d_pretrained(model: S3D, path: str | os.PathLike[str]) -> list[str]:
    """Load the public ``S3D_kinetics400.pt`` (a state dict, optionally ``module.``-prefixed).

    Returns the ignored keys (the classifier ``fc.*``); any missing or mis-shaped key is an error.
    """
    from salrt import checkpoint as ckpt

    sd = ckpt.extract_state_dict(ckpt.read_torch_file(path), str(path))
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    ignored = [k for k in sd if not k.startswith("base.")]
    ckpt.check_and_load(model, {k: v for k, v in sd.items() if k.startswith("base.")}, str(path))
    return ignored
