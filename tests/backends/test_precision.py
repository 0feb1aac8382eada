"""Inference precision (``--precision``): what each backend accepts on which CPU, the refusals as
one line before any weights load, and the bf16 path itself where this CPU computes bf16 natively."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from salrt import backends, hardware
from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
from salrt.backends.torch_backend import TorchBackend
from salrt.cli import main
from salrt.errors import UsageError
from salrt.io import make_clip
from salrt.pipeline import build, load_weights
from salrt.spec import RunSpec, SpecError

AVX2 = "fpu sse sse2 avx avx2 fma"
ZEN4 = AVX2 + " avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
TINY = ["--config", "tiny", "--random-weights", "--outputs", "npy", "--quiet"]


@pytest.fixture()
def cpu(monkeypatch: pytest.MonkeyPatch):
    """Pretend to be a CPU with the given flags."""

    def use(flags: str) -> None:
        monkeypatch.setattr(hardware, "_cpuinfo", lambda: ("Test CPU", frozenset(flags.split())))

    return use


def test_cpuinfo_and_isa(cpu) -> None:
    text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n\nprocessor\t: 1\n"
    assert hardware.parse_cpuinfo(text) == (
        "AMD EPYC",
        frozenset({"fpu", "avx2", "avx512f", "avx512_bf16", "avx512_vnni"}),
    )
    cpu(ZEN4)
    assert hardware.cpu_native_bf16() and hardware.cpu_isa() == "AVX-512 (BF16, VNNI)"
    cpu(AVX2)
    assert not hardware.cpu_native_bf16() and hardware.cpu_isa() == "AVX2"
    cpu(AVX2 + " amx_bf16 avx512f")
    assert hardware.cpu_native_bf16() and hardware.cpu_isa() == "AVX-512 (AMX)"


def problem(backend: str, precision: str, device: str = "cpu") -> str | None:
    return backends.get(backend).precision_problem(precision, device)


def test_precision_rules(cpu) -> None:
    cpu(AVX2)
    for backend in ("torch", "torch-compile", "openvino"):
        assert "AVX2" in problem(backend, "bf16") and "native bf16" in problem(backend, "bf16")
        assert "fp16" in problem(backend, "fp16", "cpu")
        assert problem(backend, "fp32", "cpu") is None
    assert problem("torch", "bf16", "cuda") is None and problem("torch", "fp16", "cuda:1") is None
    assert problem("onnxruntime", "bf16", "cpu") is None  # the export decides (checked at load)
    with pytest.raises(SpecError, match="unknown precision"):
        RunSpec(precision="int4").validated()
    cpu(ZEN4)
    assert problem("torch", "bf16", "cpu") is None and problem("openvino", "bf16") is None
    assert problem("torch", "fp16", "cpu") is not None


def test_refused_before_loading_weights(cpu, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cpu(AVX2)
    with pytest.raises(SpecError, match="no native bf16") as e:  # never reads the file
        build(RunSpec(checkpoint=str(tmp_path / "absent.pth"), precision="bf16", backend="torch"))
    assert e.value.field == "precision"
    with pytest.raises(SpecError, match="unknown precision"):
        build(RunSpec(random_weights=True, config="tiny", precision="tf32"))
    clip = make_clip(tmp_path / "a.mp4", seed=1, seconds=0.2, width=96, height=64)
    assert main(["run", str(clip.path), "-o", str(tmp_path / "o"), *TINY, "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "AVX2" in err and "--precision bf16" in err and "Traceback" not in err


def test_export_backends_run_their_exports_precision(tiny_export: Path, tmp_path: Path) -> None:
    ort = OnnxRuntimeBackend(str(tiny_export))
    assert ort.export_precision() == "fp32"
    ort.check_export("fp32")
    with pytest.raises(UsageError, match=r"runs its export's precision \(fp32\)"):
        ort.check_export("fp16")
    model = load_weights(RunSpec(random_weights=True, config="tiny"))
    with pytest.raises(UsageError, match="weights are fp32"):  # cuda: the rule allows fp16, the weights do not
        TorchBackend.open(RunSpec(device="cuda", precision="fp16"), model=model)


@pytest.mark.skipif(
    not hardware.cpu_native_bf16(), reason="this CPU has no native bf16 (the refusals are tested above)"
)
def test_bf16_runs_where_native(tiny_export: Path, tmp_path: Path) -> None:
    """torch and OpenVINO in bf16 give maps close to fp32 (an approximate path), through the CLI too."""
    clip = make_clip(tmp_path / "a.mp4", seed=2, seconds=0.4, width=96, height=64)
    maps = {}
    runs = {
        "torch fp32": ["--backend", "torch"],
        "torch bf16": ["--backend", "torch", "--precision", "bf16"],
        "openvino bf16": ["--export-dir", str(tiny_export), "--backend", "openvino", "--precision", "bf16"],
    }
    for name, extra in runs.items():
        out = tmp_path / name.replace(" ", "_")
        assert main(["run", str(clip.path), "-o", str(out), *TINY, "--seed", "0", *extra]) == 0, name
        maps[name] = np.load(out / "a_maps.npy").astype(np.float64)
    # the export's random weights are not the CLI's: compare OpenVINO bf16 with OpenVINO fp32
    ov32 = tmp_path / "ov32"
    assert main(["run", str(clip.path), "-o", str(ov32), *TINY, "--seed", "0", "--export-dir", str(tiny_export)]) == 0
    ref_ov = np.load(ov32 / "a_maps.npy").astype(np.float64)
    for got, want in ((maps["torch bf16"], maps["torch fp32"]), (maps["openvino bf16"], ref_ov)):
        assert got.shape == want.shape
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.98
        assert np.abs(got - want).max() <= 20  # uint8 maps: bf16 moves values, not the picture
    assert not np.array_equal(maps["torch bf16"], maps["torch fp32"])  # bf16 really ran
    net = build(RunSpec(random_weights=True, config="tiny", precision="bf16", backend="torch")).model
    assert next(net.parameters()).dtype == torch.bfloat16
