"""Triton model repositories (``salrt export --format triton``): every config.pbtxt parsed with
Triton's own ModelConfig protobuf and checked against the ONNX graph's real inputs and outputs;
versions, engines, batching; a missing or mismatched model refused by name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("tritonclient.grpc")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from salrt.cli import main  # noqa: E402
from salrt.errors import ExportError, SalrtError  # noqa: E402
from salrt.export.triton import check_repository, write_repository  # noqa: E402

ONNX_TYPES = {1: pb.TYPE_FP32, 10: pb.TYPE_FP16, 7: pb.TYPE_INT64}


@pytest.fixture(scope="module")
def export_dir(tiny_export: Path) -> Path:
    return tiny_export


def _parse(path: Path) -> pb.ModelConfig:
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def _graph_tensors(values) -> dict[str, tuple[int, list[int]]]:
    out = {}
    for v in values:
        t = v.type.tensor_type
        out[v.name] = (ONNX_TYPES[t.elem_type], [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim])
    return out


def test_every_config_matches_its_onnx_graph(export_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert main(["export", "--format", "triton", "--export-dir", str(export_dir), "-o", str(repo), "--quiet"]) == 0
    man = json.loads((export_dir / "manifest.json").read_text())
    names = sorted(p.name for p in repo.iterdir())
    assert names == ["diffsal", "diffsal_audio_encoder", "diffsal_denoiser", "diffsal_video_encoder", "diffsal_window"]
    for name in names[:-1]:  # the frames-once model (sequence batching) has tests of its own: test_window.py
        cfg = _parse(repo / name / "config.pbtxt")
        assert cfg.name == name and cfg.platform == "onnxruntime_onnx"
        assert cfg.max_batch_size == 4  # the export's batch range 1..4
        assert list(cfg.dynamic_batching.preferred_batch_size) == [2]
        assert cfg.dynamic_batching.max_queue_delay_microseconds == 2000
        assert [(g.count, g.kind) for g in cfg.instance_group] == [(1, pb.ModelInstanceGroup.KIND_AUTO)]
        g = onnx.load(str(repo / name / "1" / "model.onnx"))
        for side, tensors in (("input", g.graph.input), ("output", g.graph.output)):
            graph = _graph_tensors(tensors)
            conf = {t.name: t for t in getattr(cfg, side)}
            assert set(conf) == set(graph), (name, side)
            for k, (dtype, dims) in graph.items():
                t = conf[k]
                assert t.data_type == dtype
                assert dims[0] == -1  # the batch axis, left to Triton
                shape = list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
                assert len(shape) == len(dims) - 1 and all(g in (-1, c) for c, g in zip(shape, dims[1:])), (name, k)
                assert -1 not in shape
    # the servable is the unrolled sampler and carries the manifest the client reads
    top = _parse(repo / "diffsal" / "config.pbtxt")
    carried = json.loads(top.parameters["salrt_manifest"].string_value)
    assert carried["steps"] == 2 and carried["contract"] == man["contract"]
    assert carried["alphas_cumprod"] == man["alphas_cumprod"]
    assert json.loads((repo / "diffsal" / "manifest.json").read_text())["triton"]["servable"] == "diffsal"
    assert check_repository(repo)["servable"] == "diffsal"


def test_versions_and_the_export_command(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    base = ["export", "--config", "tiny", "--random-weights", "--format", "triton", "-o", str(repo), "--quiet"]
    assert main([*base, "--steps", "1", "--instances", "2", "--instance-kind", "cpu"]) == 0
    assert not list(repo.glob("*.onnx")) and not (repo / "manifest.json").exists()  # graphs moved into models
    assert main([*base, "--steps", "1", "--window-idle-s", "7.5"]) == 0
    assert sorted(p.name for p in (repo / "diffsal").iterdir() if p.is_dir()) == ["1", "2"]
    window = _parse(repo / "diffsal_window" / "config.pbtxt")
    assert window.sequence_batching.max_sequence_idle_microseconds == 7_500_000  # a vanished client's slot
    cfg = _parse(repo / "diffsal" / "config.pbtxt")
    assert cfg.max_batch_size == 1 and not cfg.HasField("dynamic_batching")  # a fixed batch-1 export
    assert cfg.version_policy.latest.num_versions == 1
    check_repository(repo)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".salrt-export")]


def _fake_engines(export_dir: Path, dest: Path) -> Path:
    d = dest / "with_engines"
    shutil.copytree(export_dir, d)
    man = json.loads((d / "manifest.json").read_text())
    engines = {}
    for g in ("denoiser", "sampler"):
        (d / f"{g}.fp16.engine").write_bytes(b"plan:" + g.encode())
        engines[g] = {"file": f"{g}.fp16.engine"}
    man["tensorrt"] = {"version": "10.12", "gpu": "H100", "precision": "fp16", "settings": {}, "engines": engines}
    (d / "manifest.json").write_text(json.dumps(man))
    return d


def test_engines_become_tensorrt_plan_models(export_dir: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    index = write_repository(_fake_engines(export_dir, tmp_path), repo)
    assert index["models"]["diffsal_trt"]["platform"] == "tensorrt_plan"
    cfg = _parse(repo / "diffsal_trt" / "config.pbtxt")
    assert cfg.platform == "tensorrt_plan" and cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    assert (repo / "diffsal_trt" / "1" / "model.plan").read_bytes() == b"plan:sampler"
    assert (repo / "diffsal_denoiser_trt").is_dir() and not (repo / "diffsal_video_encoder_trt").exists()
    assert check_repository(repo)["models"]["diffsal_denoiser_trt"]["graph"] == "denoiser"


def test_batch_ranges(export_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "e"
    shutil.copytree(export_dir, d)
    man = json.loads((d / "manifest.json").read_text())
    man["batch"] = {"min": 2, "opt": 2, "max": 4, "dynamic": True}
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ExportError, match="--dynamic-batch 1:2:4"):
        write_repository(d, tmp_path / "r1")
    man["batch"] = {"min": 2, "opt": 2, "max": 2, "dynamic": False}  # a fixed batch of 2: no Triton batching
    (d / "manifest.json").write_text(json.dumps(man))
    write_repository(d, tmp_path / "r2")
    cfg = _parse(tmp_path / "r2" / "diffsal_denoiser" / "config.pbtxt")
    assert cfg.max_batch_size == 0
    assert list(next(t for t in cfg.input if t.name == "x_t").dims)[0] == 2
    assert list(next(t for t in cfg.input if t.name == "t").dims) == [2]


@pytest.mark.parametrize("damage", ["missing_model", "missing_file", "dims", "replaced_graph", "renamed"])
def test_damaged_repository_is_refused_by_name(export_dir: Path, tmp_path: Path, damage: str) -> None:
    repo = tmp_path / "repo"
    write_repository(export_dir, repo)
    bad = "diffsal_denoiser"
    cfg = repo / bad / "config.pbtxt"
    if damage == "missing_model":
        shutil.rmtree(repo / bad)
    elif damage == "missing_file":
        (repo / bad / "1" / "model.onnx").unlink()
    elif damage == "dims":
        cfg.write_text(cfg.read_text().replace("dims: [ 1, 64, 128 ]", "dims: [ 1, 64, 64 ]", 1))
    elif damage == "replaced_graph":
        target = repo / bad / "1" / "model.onnx"
        target.unlink()
        shutil.copyfile(repo / "diffsal_audio_encoder" / "1" / "model.onnx", target)
    else:
        cfg.write_text(cfg.read_text().replace(f'name: "{bad}"', 'name: "other"'))
    with pytest.raises(SalrtError, match=f"model '{bad}'"):
        check_repository(repo)


def test_a_config_that_disagrees_with_its_graph_is_caught_without_the_index(export_dir: Path, tmp_path: Path) -> None:
    """The deep check reads the ONNX graph itself: an index edited to agree with a wrong config
    still fails on the graph."""
    repo = tmp_path / "repo"
    write_repository(export_dir, repo)
    cfg = repo / "diffsal" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("TYPE_FP32", "TYPE_FP16", 1))
    mpath = repo / "diffsal" / "manifest.json"
    m = json.loads(mpath.read_text())
    first = next(iter(m["triton"]["models"]["diffsal"]["inputs"]))
    m["triton"]["models"]["diffsal"]["inputs"][first]["dtype"] = "float16"
    mpath.write_text(json.dumps(m))
    with pytest.raises(SalrtError, match="model 'diffsal': .* in the graph"):
        check_repository(repo)
    assert np.isfinite(check_repository(repo, deep=False)["version"])  # the shallow check trusts the index
