"""ONNX export (tiny config), onnxruntime backend, TensorRT op check and build path."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import BLOCK_TORCH

from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
from salrt.backends.torch_backend import TorchBackend
from salrt.cli import main
from salrt.errors import MissingDependency, require
from salrt.export.onnx import BatchSpec, ExportError, export_onnx
from salrt.export.tensorrt import check_tensorrt_ops, supported_ops
from salrt.models.synthetic import synthetic_inputs
from salrt.spec import RunSpec


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, dict]:
    from conftest import tiny_model

    out = tmp_path_factory.mktemp("export")
    man = export_onnx(tiny_model(), out, batch="1:2:3", steps=4)
    return out, man


def test_manifest_and_validation(exported: tuple[Path, dict]) -> None:
    out, man = exported
    assert set(man["graphs"]) == {"video_encoder", "audio_encoder", "denoiser", "sampler"}
    for g in man["graphs"].values():
        path = out / g["file"]
        onnx.checker.check_model(str(path))
        if importlib.util.find_spec("onnxsim") is not None:  # simplified when onnxsim is installed
            assert g["after_simplify"]["nodes"] < g["before_simplify"]["nodes"]
        assert [c["batch"] for c in g["validation"]] == [1, 3]  # dynamic batch checked off the traced size
        for c in g["validation"]:
            for e in c["outputs"].values():
                assert e["max_abs"] < 1e-4
        import hashlib

        assert hashlib.sha256(path.read_bytes()).hexdigest() == g["sha256"]
    assert man["graphs"]["denoiser"]["inputs"]["t"]["dtype"] == "int64"
    assert man["preprocessing"]["video"]["mean"][0] == pytest.approx(114.7748)
    assert json.loads((out / "manifest.json").read_text())["timesteps"] == [750, 500, 250, 0]


def test_onnxruntime_backend_matches_torch(exported: tuple[Path, dict], tiny) -> None:
    out, _ = exported
    ort_b = OnnxRuntimeBackend(str(out))
    torch_b = TorchBackend(tiny)
    c = tiny.config
    video, audio, noise = synthetic_inputs(c.video_shape, c.audio_shape, 2, seed=5)
    ref4 = torch_b.sample(video, audio, steps=4, noise=noise).numpy()
    got4 = ort_b.sample(video.numpy(), audio.numpy(), steps=4, noise=noise.numpy())  # sampler.onnx
    assert np.abs(got4 - ref4).max() < 1e-4
    ref2 = torch_b.sample(video, audio, steps=2, noise=noise).numpy()
    got2 = ort_b.sample(video.numpy(), audio.numpy(), steps=2, noise=noise.numpy())  # graphs + numpy DDIM
    assert np.abs(got2 - ref2).max() < 1e-4
    feats = ort_b.encode(video.numpy(), audio.numpy())
    x0 = ort_b.denoise(noise.numpy(), np.array([750, 10]), feats)
    ref = torch_b.denoise(noise, torch.tensor([750, 10]), torch_b.encode(video, audio)).numpy()
    assert np.abs(x0 - ref).max() < 1e-4


def test_tensorrt_static_op_check(exported: tuple[Path, dict], tmp_path: Path) -> None:
    out, man = exported
    assert "Conv" in supported_ops()["supported"]
    for g in man["graphs"].values():
        assert check_tensorrt_ops(out / g["file"]) == []
    node = onnx.helper.make_node("Unique", ["x"], ["y"])
    bad = onnx.helper.make_model(
        onnx.helper.make_graph(
            [node, onnx.helper.make_node("Resize", ["x", "", "s"], ["z"], mode="cubic")],
            "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
            [onnx.numpy_helper.from_array(np.ones(1, np.float32), "s")],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    onnx.save(bad, tmp_path / "bad.onnx")
    problems = check_tensorrt_ops(tmp_path / "bad.onnx")
    assert any("Unique" in p for p in problems) and any("cubic" in p for p in problems)


def test_fp16_export(tmp_path: Path, tiny) -> None:
    man = export_onnx(tiny, tmp_path, precision="fp16", batch="2", graphs=("sampler",))
    e = man["graphs"]["sampler"]["validation"][0]["outputs"]["map"]
    assert e["cc"] > 0.999 and e["max_abs"] < 0.05
    assert man["graphs"]["sampler"]["inputs"]["video"]["dtype"] == "float16"


def test_validation_failure_is_loud(tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    import salrt.export.onnx as ex

    monkeypatch.setattr(ex, "FP32_TOLERANCE", 0.0)
    with pytest.raises(ExportError, match="validation failed"):
        export_onnx(tiny, tmp_path, graphs=("denoiser",))


def test_batch_spec_and_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert BatchSpec.parse("1:4:16").dynamic and not BatchSpec.parse("4").dynamic
    for bad in ("0", "4:2:8", "a", "1:2"):
        with pytest.raises(ExportError):
            BatchSpec.parse(bad)
    for args, needle in (
        (["export", "--config", "tiny", "-o", str(tmp_path)], "no --checkpoint"),
        (
            ["export", "--config", "tiny", "--random-weights", "-o", str(tmp_path), "--dynamic-batch", "3:1:2"],
            "invalid batch",
        ),
        (["export", "--config", "tiny", "--random-weights", "-o", str(tmp_path), "--precision", "bf16"], "bf16"),
        (["export", "--config", "tiny", "--random-weights", "-o", str(tmp_path), "--opset", "8"], "opset"),
    ):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0


def test_missing_optional_packages_name_the_extra() -> None:
    with pytest.raises(MissingDependency, match=r"pip install 'salrt\[tensorrt\]'"):
        require("tensorrt", "the TensorRT backend")
    with pytest.raises(ValueError, match="export_dir"):
        OnnxRuntimeBackend.open(RunSpec(), export_dir=None)
    with pytest.raises(Exception, match="no manifest.json"):
        OnnxRuntimeBackend("/nonexistent")


def test_onnxruntime_path_runs_without_torch(exported: tuple[Path, dict], tmp_path: Path) -> None:
    """The export runs on a synthetic clip in a process where importing torch fails."""
    out, _ = exported
    code = (
        BLOCK_TORCH
        + f"""
import numpy as np
from salrt.io import make_clip, open_media
from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
clip = make_clip({str(tmp_path / "c.mp4")!r}, seed=1, width=96, height=64, seconds=0.2)
b = OnnxRuntimeBackend({str(out)!r})
media = open_media(str(clip.path), size=(64, 128), audio_size=(32, 64))
n = 0
for c in media:
    m = b.sample(c.video[None], c.audio[None], steps=4, seed=0)
    assert m.shape == (1, 1, 64, 128) and np.isfinite(m).all()
    n += 1
assert 'torch' not in sys.modules
print(n)
"""
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "5"


def test_validation_rejects_nan_and_constant_outputs() -> None:
    """A graph whose outputs are NaN/inf or constant fails validation in every precision (fp16's CC
    check used to let NaN through: CC of NaN is NaN)."""
    from salrt.export.onnx import check_validation, output_errors

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((2, 1, 8, 8)).astype(np.float32)

    def check(got: np.ndarray, precision: str, want: np.ndarray = ref) -> None:
        check_validation("sampler", [{"batch": 2, "outputs": {"map": output_errors(got, want)}}], precision)

    for precision in ("fp32", "fp16"):
        check(ref.copy(), precision)  # equal: passes
        bad_nan = ref.copy()
        bad_nan[0, 0, 0, 0] = np.nan
        with pytest.raises(ExportError, match="non-finite"):
            check(bad_nan, precision)
        with pytest.raises(ExportError, match="non-finite"):
            check(np.full_like(ref, np.inf), precision)
        with pytest.raises(ExportError, match="constant where PyTorch"):
            check(np.full_like(ref, 0.5), precision)
    flat = np.full_like(ref, 0.25)
    check(flat + 1e-3, "fp16", flat)  # PyTorch's output is constant too: values agree to fp16 rounding
    with pytest.raises(ExportError, match="fp16 CC"):
        check(flat + 0.5, "fp16", flat)
    with pytest.raises(ExportError, match="fp16 CC"):
        check(ref + rng.standard_normal(ref.shape).astype(np.float32) * 3, "fp16")
