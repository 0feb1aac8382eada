"""TensorRT 10.x / 11.x builder and the torch-free TensorRT runtime, against recording stand-ins of
each API generation (TensorRT cannot be installed here; see trt_stand_in.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BLOCK_TORCH
from trt_stand_in import FakeCudart, Recorder, fake_pycuda_driver, make_trt  # tests/export/ (pytest's rootdir path)

import salrt.export.tensorrt as T
from salrt.backends.cuda_device import CudaPython, PyCuda
from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
from salrt.backends.tensorrt_backend import TensorRTNumpyBackend
from salrt.errors import SalrtError, TensorRTError
from salrt.export.onnx import export_onnx
from salrt.export.tensorrt import build_engine, build_engines, engine_key, engine_plan
from salrt.models.synthetic import synthetic_inputs

GENERATIONS = ("10.0.1", "10.12.0", "11.4.0")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from conftest import tiny_model

    out = {}
    for precision, batch in (("fp32", "1:2:3"), ("fp16", "2")):
        d = tmp_path_factory.mktemp(f"export_{precision}")
        export_onnx(tiny_model(), d, precision=precision, batch=batch, steps=4)
        out[precision] = d
    return out


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("version", GENERATIONS)
def test_engine_plan_per_api_generation(version: str) -> None:
    trt = make_trt(version, Recorder())
    assert engine_plan(trt, "fp32") == {"graph_precision": "fp32", "strongly_typed": True, "flag": None}
    assert engine_plan(trt, "fp16") == {"graph_precision": "fp16", "strongly_typed": True, "flag": None}
    if version.startswith("11."):  # weak typing removed: no bf16 engine from salrt's graphs
        with pytest.raises(TensorRTError, match="no weak-typing BF16 builder flag"):
            engine_plan(trt, "bf16")
    else:
        assert engine_plan(trt, "bf16") == {"graph_precision": "fp32", "strongly_typed": False, "flag": "BF16"}
    with pytest.raises(TensorRTError, match="unknown precision"):
        engine_plan(trt, "int8")


@pytest.mark.parametrize("version", GENERATIONS)
def test_builds_strongly_typed_engines(
    version: str, exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(T, "gpu_name", lambda: "Stand-in GPU")
    rec = Recorder()
    out = _copy(exports["fp16"], tmp_path)
    info = build_engines(out, cache_dir=tmp_path / "cache", trt=make_trt(version, rec), opt_level=3)
    assert info["precision"] == "fp16" and info["settings"]["strongly_typed"]
    assert set(info["engines"]) == {"video_encoder", "audio_encoder", "denoiser", "sampler"}
    names = rec.names()
    assert [c[1] for c in rec.calls if c[0] == "builder.create_network"] == [(1 << 1,)] * 4  # STRONGLY_TYPED
    assert "config.set_flag" not in names  # no weak-typing flag on a typed network
    assert ("config.builder_optimization_level=", (3,), {}) in rec.calls
    sets = [c[1] for c in rec.calls if c[0] == "profile.set_shape"]
    assert sets and all(s[1][0] == s[2][0] == s[3][0] == 2 for s in sets)  # the fixed batch 2
    man = json.loads((out / "manifest.json").read_text())
    assert man["tensorrt"]["engines"]["sampler"]["file"] == "sampler.fp16.engine"


def test_weak_typing_only_where_the_version_has_it(
    exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(T, "gpu_name", lambda: "Stand-in GPU")
    rec = Recorder()
    out = _copy(exports["fp32"], tmp_path)
    info = build_engines(out, precision="bf16", cache_dir=tmp_path / "c", trt=make_trt("10.12.0", rec))
    assert info["settings"] == {
        "workspace_gib": 4.0,
        "opt_level": None,
        "graph_precision": "fp32",
        "strongly_typed": False,
        "flag": "BF16",
    }
    assert ("config.set_flag", ("BF16",), {}) in rec.calls and ("builder.create_network", (0,), {}) in rec.calls
    with pytest.raises(TensorRTError, match="no weak-typing BF16"):
        build_engines(out, precision="bf16", cache_dir=tmp_path / "c", trt=make_trt("11.4.0", Recorder()))
    with pytest.raises(TensorRTError, match="export again with --precision fp16"):  # fp16 engines from fp16 graphs
        build_engines(out, precision="fp16", cache_dir=tmp_path / "c", trt=make_trt("11.4.0", Recorder()))


@pytest.mark.parametrize(
    ("fail", "needle"),
    [
        ({"parse_from_file": False}, "could not parse"),
        ({"add_optimization_profile": -1}, "add_optimization_profile"),
        ({"create_timing_cache": None}, "timing cache creation"),
        ({"set_timing_cache": False}, "set_timing_cache"),
        ({"build_serialized_network": None}, "engine build failed"),
    ],
)
def test_every_builder_result_is_checked(exports: dict[str, Path], tmp_path: Path, fail: dict, needle: str) -> None:
    onnx_path = exports["fp32"] / "denoiser.onnx"
    with pytest.raises(TensorRTError, match=needle):
        build_engine(onnx_path, tmp_path / "x.engine", precision="fp32", trt=make_trt("10.12.0", Recorder(), fail))


def test_engine_cache_key_covers_every_setting(
    exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = dict(onnx_sha256="a", trt_version="10.12", gpu="H100", precision="fp16", profile={"min": 1, "max": 2})
    k = engine_key(**base, workspace_gib=4.0, opt_level=None, strongly_typed=True)
    assert k != engine_key(**base, workspace_gib=8.0, opt_level=None, strongly_typed=True)
    assert k != engine_key(**base, workspace_gib=4.0, opt_level=5, strongly_typed=True)
    assert k != engine_key(**base, workspace_gib=4.0, opt_level=None, strongly_typed=False)
    monkeypatch.setattr(T, "gpu_name", lambda: "Stand-in GPU")
    out = _copy(exports["fp32"], tmp_path)
    first = build_engines(out, cache_dir=tmp_path / "cache", trt=make_trt("10.12.0", Recorder()))
    again = build_engines(out, cache_dir=tmp_path / "cache", trt=make_trt("10.12.0", Recorder()))
    other = build_engines(out, cache_dir=tmp_path / "cache", workspace_gib=2.0, trt=make_trt("10.12.0", Recorder()))
    assert not any(e["cached"] for e in first["engines"].values())
    assert all(e["cached"] for e in again["engines"].values())
    assert not any(e["cached"] for e in other["engines"].values())


def _engines(export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str = "11.4.0") -> tuple:
    monkeypatch.setattr(T, "gpu_name", lambda: "Stand-in GPU")
    out = _copy(export, tmp_path)
    rec = Recorder()
    trt = make_trt(version, rec)
    build_engines(out, cache_dir=tmp_path / "cache", trt=trt)
    return out, trt, rec


def _clip_inputs(b: TensorRTNumpyBackend, batch: int, seed: int) -> tuple[np.ndarray, ...]:
    """(video, audio, noise) numpy inputs of the export's config."""
    cfg = b.manifest["config"]
    video = (3, cfg["frames"], cfg["height"], cfg["width"])
    audio = (1, cfg["audio_slices"], cfg["audio_height"], cfg["audio_width"])
    return tuple(x.numpy() for x in synthetic_inputs(video, audio, batch, seed=seed))


@pytest.mark.parametrize("binding", ["cuda-python", "pycuda"])
def test_torch_free_runtime_equals_onnxruntime(
    binding: str, exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engines bound by name on device buffers of cuda-python / PyCUDA give the ONNX graphs' own
    results; 4 steps run the sampler engine, 2 steps the encoders + denoiser with the numpy update."""
    out, trt, rec = _engines(exports["fp32"], tmp_path, monkeypatch)
    api = CudaPython(FakeCudart(rec)) if binding == "cuda-python" else PyCuda(fake_pycuda_driver(rec))
    b = TensorRTNumpyBackend(out, device_api=api, trt=trt)
    ort = OnnxRuntimeBackend(str(out))
    cfg = b.manifest["config"]
    v, a, n = _clip_inputs(b, 3, seed=4)
    for steps in (4, 2):
        got = b.sample(v, a, steps=steps, noise=n)
        assert got.dtype == np.float32 and got.shape == (3, 1, cfg["height"], cfg["width"])
        assert np.array_equal(got, ort.sample(v, a, steps=steps, noise=n))
    names = rec.names()
    assert names.count("context.execute_async_v3") >= 1 + 2 + 2  # sampler; encoders twice; denoiser twice
    copies = "cudaMemcpyAsync" if binding == "cuda-python" else "memcpy_htod_async"
    assert copies in names
    b.close()


@pytest.mark.parametrize("binding", ["cuda-python", "pycuda"])
def test_torch_free_runtime_runs_in_another_thread_than_it_loaded(
    binding: str, exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """salrt run loads the backend in one thread and samples in its model thread: CUDA contexts are
    current per thread, so every call makes the device's context current where it runs (the
    stand-ins refuse work on a thread without it). Closing destroys the stream and releases the
    context; the loading thread is left with no context of ours current."""
    out, trt, rec = _engines(exports["fp32"], tmp_path, monkeypatch)
    if binding == "cuda-python":
        rt = FakeCudart(rec, devices=2)
        api = CudaPython(rt, device=1)  # not the device a fresh thread would use
    else:
        driver = fake_pycuda_driver(rec)
        api = PyCuda(driver)
        assert driver.current_stack() == []  # made, then popped: the loading thread holds nothing
    b = TensorRTNumpyBackend(out, device_api=api, trt=trt)
    ort = OnnxRuntimeBackend(str(out))
    v, a, n = _clip_inputs(b, 2, seed=6)
    got: dict[str, Any] = {}

    def model_thread() -> None:
        try:
            got["maps"] = b.sample(v, a, steps=4, noise=n)
        except BaseException as exc:  # reported below, in the test's thread
            got["error"] = exc

    for _ in range(2):  # a second thread reuses the buffers made on the first
        t = threading.Thread(target=model_thread)
        t.start()
        t.join()
        assert "error" not in got, got.get("error")
        assert np.array_equal(got["maps"], ort.sample(v, a, steps=4, noise=n))
    b.close()
    b.close()  # idempotent
    if binding == "cuda-python":
        assert "cudaStreamDestroy" in rec.names() and rt.streams == {} and rt.mem == {}
    else:
        assert driver.current_stack() == []
    with pytest.raises(SalrtError, match="closed"):
        b.sample(v, a, steps=4, noise=n)


def test_owned_pycuda_context_is_detached_on_close(
    exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, trt, rec = _engines(exports["fp32"], tmp_path, monkeypatch)
    driver = fake_pycuda_driver(rec)
    monkeypatch.setitem(sys.modules, "pycuda", types.SimpleNamespace(driver=driver))
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    b = TensorRTNumpyBackend(out, device_api="pycuda", trt=trt)
    v, a, n = _clip_inputs(b, 1, seed=7)
    b.sample(v, a, steps=4, noise=n)
    b.close()
    assert rec.names().count("Context.detach") == 1 and driver.current_stack() == []


def test_fixed_batch_engine_pads_and_slices(
    exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, trt, rec = _engines(exports["fp16"], tmp_path, monkeypatch)  # fixed batch 2
    b = TensorRTNumpyBackend(out, device_api=CudaPython(FakeCudart(rec)), trt=trt)
    v, a, n = _clip_inputs(b, 3, seed=5)
    got = b.sample(v, a, steps=4, noise=n)  # 3 clips on a batch-2 engine: 2 + (1 padded to 2)
    assert got.shape[0] == 3
    ort = OnnxRuntimeBackend(str(out))
    assert np.abs(got.astype(np.float32) - ort.sample(v, a, steps=4, noise=n).astype(np.float32)).max() == 0
    shapes = [c[1][1] for c in rec.calls if c[0] == "context.set_input_shape"]
    assert shapes and all(s[0] == 2 for s in shapes)


def test_runtime_errors_are_specific(exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, trt, rec = _engines(exports["fp32"], tmp_path, monkeypatch)
    b = TensorRTNumpyBackend(out, device_api=CudaPython(FakeCudart(rec)), trt=trt)
    g = b.roles["sampler"]
    big = {
        k: np.zeros((5, *v["shape"][1:]), np.int64 if v["dtype"] == "int64" else np.float32)
        for k, v in b.manifest["graphs"][g]["inputs"].items()
    }
    with pytest.raises(SalrtError, match="outside the engine's profile"):
        b.run(g, big)
    with pytest.raises(SalrtError, match="missing input"):
        b.run(g, {})
    with pytest.raises(SalrtError, match="sees none"):
        CudaPython(FakeCudart(rec, devices=0))
    bad = FakeCudart(rec)
    bad.cudaMalloc = lambda n: (2, 0)  # cudaErrorMemoryAllocation
    with pytest.raises(SalrtError, match="cudaMalloc failed"):
        CudaPython(bad).malloc(16)
    (out / "sampler.fp32.engine").unlink()
    with pytest.raises(SalrtError, match="listed in the manifest but missing"):
        TensorRTNumpyBackend(out, device_api=CudaPython(FakeCudart(rec)), trt=trt)


def test_torch_free_tensorrt_runs_without_torch(
    exports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole TensorRT path (load_backend, engines, cuda-python buffers) in a process where
    importing torch fails."""
    out, _, _ = _engines(exports["fp32"], tmp_path, monkeypatch)
    code = (
        BLOCK_TORCH
        + f"""
sys.path.insert(0, {str(Path(__file__).parent)!r})
import types, numpy as np
from trt_stand_in import FakeCudart, Recorder, make_trt
rec = Recorder()
sys.modules['tensorrt'] = make_trt('11.4.0', rec)
cuda = types.ModuleType('cuda'); bindings = types.ModuleType('cuda.bindings')
bindings.runtime = FakeCudart(rec); cuda.bindings = bindings
sys.modules.update({{'cuda': cuda, 'cuda.bindings': bindings, 'cuda.bindings.runtime': bindings.runtime}})
from salrt.backends.tensorrt_backend import load_tensorrt
b = load_tensorrt({str(out)!r})
m = b.manifest['config']
v = np.zeros((2, 3, m['frames'], m['height'], m['width']), np.float32)
a = np.zeros((2, 1, m['audio_slices'], m['audio_height'], m['audio_width']), np.float32)
y = b.sample(v, a, steps=4, seed=0)
assert type(b).__name__ == 'TensorRTNumpyBackend' and y.shape == (2, 1, m['height'], m['width'])
assert 'torch' not in sys.modules
print('ok', b.api.name)
"""
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok cuda-python", r.stderr[-3000:]
