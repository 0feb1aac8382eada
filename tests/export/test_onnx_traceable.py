"""The encoders and the denoiser are pure tensor functions that torch.onnx.export accepts."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from salrt.models.diffsal import DiffSal


class _Encoders(nn.Module):
    def __init__(self, m: DiffSal) -> None:
        super().__init__()
        self.m = m

    def forward(self, video: torch.Tensor, audio: torch.Tensor):
        f = self.m.encode(video, audio)
        return (*f.video, f.audio, *f.audio_aligned)


class _Denoiser(nn.Module):
    def __init__(self, m: DiffSal) -> None:
        super().__init__()
        self.m = m

    def forward(self, x_t, t, v0, v1, v2, v3, a0, a1, a2, a3):
        return self.m.denoiser(x_t, t, (v0, v1, v2, v3), (a0, a1, a2, a3))


@pytest.mark.parametrize("part", ["encoders", "denoiser"])
def test_onnx_export(tmp_path, tiny, tiny_inputs, part):
    video, audio, noise = tiny_inputs
    if part == "encoders":
        module, args = _Encoders(tiny), (video, audio)
    else:
        f = tiny.encode(video, audio)
        module, args = _Denoiser(tiny), (noise, torch.tensor([750, 250]), *f.video, *f.audio_aligned)
    module.eval()  # the exporter restores the wrapper's mode afterwards, recursively: keep the shared model in eval
    path = tmp_path / f"{part}.onnx"
    torch.onnx.export(module, args, str(path), dynamo=False, opset_version=17)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert len(model.graph.node) > 10
