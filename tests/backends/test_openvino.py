"""The OpenVINO backend over an export: maps equal onnxruntime's (exact f32), every step count,
batches inside and outside the export's range, the default CPU choice, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salrt import backends
from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
from salrt.cli import main
from salrt.errors import SalrtError, UsageError
from salrt.io import make_clip
from salrt.spec import RunSpec

pytest.importorskip("openvino")
from salrt.backends.openvino_backend import OpenVinoBackend  # noqa: E402


@pytest.fixture(scope="module")
def export_dir(tiny_export: Path) -> Path:
    return tiny_export


def test_maps_equal_onnxruntime(export_dir: Path, tmp_path: Path) -> None:
    ov = OpenVinoBackend(export_dir, cache_dir=tmp_path / "cache")
    assert ov.inference_precision in ("f32", "<Type: 'float32'>") or "32" in ov.inference_precision
    ort = OnnxRuntimeBackend(str(export_dir))
    g = ort.manifest["graphs"]
    rng = np.random.default_rng(0)
    for b in (1, 3, 6):  # 6: above the export's range, split
        video = rng.standard_normal((b, *g["video_encoder"]["inputs"]["video"]["shape"][1:])).astype(np.float32)
        audio = rng.standard_normal((b, *g["audio_encoder"]["inputs"]["audio"]["shape"][1:])).astype(np.float32)
        noise = rng.standard_normal((b, 1, 64, 128)).astype(np.float32)
        for steps in (2, 4):  # 2: the unrolled sampler graph; 4: encoders + denoiser in salrt's loop
            x = ov.sample(video, audio, steps=steps, noise=noise)
            y = ort.sample(video, audio, steps=steps, noise=noise)
            assert x.shape == (b, 1, 64, 128) and np.abs(x - y).max() <= 1e-5, (b, steps)


def test_default_backend_on_cpu_and_cli(export_dir: Path, tmp_path: Path) -> None:
    assert backends.resolve("auto", "cpu", str(export_dir), None, False).name == "openvino"
    assert backends.resolve("auto", "cpu", None, None, can_export=True).name == "openvino"  # the cached export
    assert backends.resolve("auto", "cpu", None, None, can_export=False).name == "torch"
    assert backends.resolve("auto", "cpu", None, "http://x:8000", False).name == "triton"
    clip = make_clip(tmp_path / "a.mp4", seed=2, seconds=0.3, width=96, height=64)
    for backend in ("auto", "openvino", "onnxruntime"):
        out = tmp_path / backend
        args = ["run", str(clip.path), "-o", str(out), "--export-dir", str(export_dir), "--outputs", "npy", "--quiet"]
        assert main([*args, "--backend", backend]) == 0
    ov, ort = np.load(tmp_path / "openvino" / "a_maps.npy"), np.load(tmp_path / "onnxruntime" / "a_maps.npy")
    assert np.abs(ov.astype(int) - ort.astype(int)).max() <= 1
    assert np.array_equal(np.load(tmp_path / "auto" / "a_maps.npy"), ov)


def test_errors(export_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="precision"):
        OpenVinoBackend(export_dir, precision="int4")
    with pytest.raises(SalrtError, match="not available"):
        OpenVinoBackend(export_dir, device="NPU")
    with pytest.raises(SalrtError, match="no manifest.json"):
        OpenVinoBackend(tmp_path)
    with pytest.raises(UsageError, match="export_dir"):
        OpenVinoBackend.open(RunSpec(), export_dir=None)
