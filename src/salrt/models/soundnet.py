"""SoundNet-8 (Aytar et al., NeurIPS 2016): a 1-D convolutional network on raw waveforms.

Layers conv1..conv7 of the 8-layer model (the AudioSet-free teacher-student network); the
classifier heads conv8/conv8_2 are not built, as in STAViS and TAVDiff/AVRSP. Layout follows the
public PyTorch port (``soundnet8_final.pth``: keys ``conv{i}.0.weight/bias`` (Conv2d with a
(k, 1) kernel) and ``conv{i}.1.*`` (BatchNorm2d)), loaded with :func:`load_soundnet_pretrained`.
The waveform is (B, 1, N) at 22.05 kHz in [-1, 1] (SoundNet was trained at 22.05 kHz).
"""

from __future__ import annotations

import os

import torch
from torch import nn

from salrt.constants import WAVEFORM_RATE

# (out channels, kernel, stride, padding, max-pool after) of conv1..conv7
_LAYERS = (
    (16, 64, 2, 32, 8),
    (32, 32, 2, 16, 8),
    (64, 16, 2, 8, 1),
    (128, 8, 2, 4, 1),
    (256, 4, 2, 2, 4),
    (512, 4, 2, 2, 1),
    (1024, 4, 2, 2, 1),
)
SOUNDNET_RATE = WAVEFORM_RATE  # 22.05 kHz, what the input pipeline resamples waveforms to


class SoundNet(nn.Module):
    """(B, 1, N) waveform -> (B, C7, N / 2^13 / 256 ...) features: (B, 1024, L) for ``width_div`` 1."""

    def __init__(self, width_div: int = 1) -> None:
        super().__init__()
        cin = 1
        for i, (cout, k, s, p, pool) in enumerate(_LAYERS, 1):
            cout = max(cout // width_div, 1)
            layer = [
                nn.Conv2d(cin, cout, (k, 1), (s, 1), (p, 0)),
                nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1),
                nn.ReLU(),
            ]
            if pool > 1:
                layer.append(nn.MaxPool2d((pool, 1), (pool, 1)))
            self.add_module(f"conv{i}", nn.Sequential(*layer))
            cin = cout
        self.out_channels = cin

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[..., None]  # (B, 1, N, 1): the port's 2-D convolutions with (k, 1) kernels
        for i in range(1, len(_LAYERS) + 1):
            x = getattr(self, f"conv{i}")(x)
        return x[..., 0]


def load_soundnet_pretrained(model: SoundNet, path: str | os.PathLike[str]) -> list[str]:
    """Load ``soundnet8_final.pth``; returns the ignored keys (conv8 / conv8_2 heads)."""
    from salrt import checkpoint as ckpt

    sd = ckpt.extract_state_dict(ckpt.read_torch_file(path), str(path))
    keep = {k: v for k, v in sd.items() if k.split(".")[0] in {f"conv{i}" for i in range(1, 8)}}
    ckpt.check_and_load(model, keep, str(path))
    return sorted(set(sd) - set(keep))
