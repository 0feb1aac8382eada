"""The demo's main job from a plain install: the bundled model's ONNX export is the bundled weights,
the demo runs it without torch, and what the demo prints is what its outputs measure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BLOCK_TORCH

from salrt import metrics
from salrt.app.demo import bundled_checkpoint, bundled_export, centre_bias
from salrt.io import make_clip

pytestmark = pytest.mark.skipif(bundled_export() is None, reason="no bundled demo model in this checkout")


def test_bundled_models_have_the_presets_bundled_json_names() -> None:
    import json

    from salrt.app.demo import bundled_config
    from salrt.models import MODELS

    for model in ("diffsal", "student"):
        folder = bundled_checkpoint(model)
        if folder is None:
            continue
        have = json.loads((folder / "config.json").read_text())
        assert have["model"] == model
        cfg_cls = MODELS[model][1]
        assert cfg_cls.from_dict(have["config"]) == cfg_cls.preset(bundled_config(model))


def test_bundled_student_export_is_its_weights() -> None:
    """The bundled student's step graph gives its weights' maps, frame after frame with the state."""
    import torch

    import salrt
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.backends.torch_backend import TorchBackend

    if bundled_export("student") is None:
        pytest.skip("no bundled student in this checkout")
    model = salrt.load_model("student", checkpoint=str(bundled_checkpoint("student"))).eval()
    ort, tb = OnnxRuntimeBackend(str(bundled_export("student"))), TorchBackend(model)
    c = model.config
    g = torch.Generator().manual_seed(0)
    st_o = {k: np.zeros(s, np.float32) for k, s in ort.state_shapes(2).items()}
    st_t = {k: torch.zeros(s) for k, s in tb.state_shapes(2).items()}
    for _ in range(3):
        v, a = torch.randn(2, 3, 1, c.height, c.width, generator=g), torch.randn(2, *c.audio_shape, generator=g)
        mo, st_o = ort.step(v.numpy(), a.numpy(), st_o)
        mt, st_t = tb.step(v, a, st_t)
        assert np.abs(mo - mt.numpy()).max() < 1e-4


def test_bundled_export_is_the_bundled_weights() -> None:
    """A stale export (weights retrained, graphs not remade) would make the torch-free demo show
    another model: the graphs must give the weights' own maps."""
    import salrt
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.backends.torch_backend import TorchBackend
    from salrt.models.synthetic import synthetic_inputs

    model = salrt.load_model("diffsal", checkpoint=str(bundled_checkpoint()), config="tiny").eval()
    ort = OnnxRuntimeBackend(str(bundled_export()))
    c = ort.manifest["config"]
    v, a, noise = synthetic_inputs(
        (3, c["frames"], c["height"], c["width"]),
        (1, c["audio_slices"], c["audio_height"], c["audio_width"]),
        3,
        seed=2,
    )
    for steps in (4, 2):  # the unrolled sampler graph, and the encoders + denoiser loop
        ref = np.asarray(TorchBackend(model).sample(v, a, steps=steps, noise=noise))
        got = ort.sample(v.numpy(), a.numpy(), steps=steps, noise=noise.numpy())
        assert np.abs(got - ref).max() < 1e-4


def _number(text: str, before: str) -> float:
    m = re.search(re.escape(before) + r"\s*(-?[0-9.]+)", text)
    assert m, f"{before!r} not in the demo's output:\n{text}"
    return float(m.group(1))


@pytest.mark.parametrize("model", ["diffsal", "student"])
def test_demo_without_torch_prints_what_its_maps_measure(model: str, tmp_path: Path) -> None:
    """salrt demo (and demo --model student) in a process where torch cannot be imported (a plain
    ``pip install salrt``): exit 0, and the CCs it prints are those of the maps it wrote against the
    clip's ground truth; the trained models find the sounding object and need its sound."""
    if bundled_export(model) is None:
        pytest.skip(f"no bundled {model} in this checkout")
    out = tmp_path / "d"
    code = BLOCK_TORCH + (
        f"from salrt.cli import main; sys.exit(main(['demo', '--model', {model!r}, '-o', {str(out)!r}, "
        "'--seconds', '0.8']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    text = r.stdout + r.stderr
    printed = _number(text, "mean CC against the synthetic ground truth:")
    printed_prior = _number(text, "a centre-bias map that ignores the content scores")
    own = _number(text, "the CC falls from")
    swapped = _number(text, f"the CC falls from {own:.3f} to")
    truth = make_clip(tmp_path / "again.mp4", seed=0, seconds=0.8).saliency  # the demo's clip: seed 0
    maps = np.load(out / "demo_input_maps.npz")["maps"].astype(np.float64) / 255.0
    assert maps.shape == truth.shape
    assert printed == pytest.approx(np.mean([metrics.cc(m, g) for m, g in zip(maps, truth)]), abs=6e-4)
    prior = centre_bias(truth.shape[1:])
    assert printed_prior == pytest.approx(np.mean([metrics.cc(prior, g) for g in truth]), abs=6e-4)
    # the trained model finds the sounding object, and needs its sound to do it
    assert printed > printed_prior + 0.4 and own - swapped > 0.2


def test_missing_safetensors_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    block = BLOCK_TORCH.replace("name == 'torch' or name.startswith('torch.')", "name.startswith('safetensors')")
    code = block + (
        f"from salrt.cli import main; sys.exit(main(['demo', '-o', {str(tmp_path / 'd')!r}, '--backend', 'torch', "
        "'--seconds', '0.4']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert (
        "needs the 'safetensors" in last and "pip install 'salrt[torch]'" in last and "internal error" not in r.stderr
    )
