"""``salrt.pipeline.build``: one spec -> a ready backend; ``auto`` on CPU without an export runs
the cached export of the fastest exact backend, equal to the eager model's maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salrt import backends, pipeline
from salrt.models.synthetic import synthetic_inputs
from salrt.spec import RunSpec, SpecError

pytest.importorskip("onnx")


def test_auto_exports_once_and_matches_eager(tmp_path: Path) -> None:
    spec = RunSpec(config="tiny", random_weights=True, seed=3, cache_dir=str(tmp_path))
    notes: list[str] = []
    auto = pipeline.build(spec, progress=notes.append)
    if not backends.get(auto.spec.backend).needs_export:
        pytest.skip("no export backend installed: auto runs the eager model")
    assert auto.spec.export_dir and Path(auto.spec.export_dir).parent == tmp_path / "exports"
    assert any("one-time cost" in n for n in notes)
    again_notes: list[str] = []
    again = pipeline.build(spec, progress=again_notes.append)
    assert again.spec.export_dir == auto.spec.export_dir and again_notes == []  # reused: no work, no note
    eager = pipeline.build(spec.replace(backend="torch"))
    c = eager.model.config
    v, a, n = (x.numpy() for x in synthetic_inputs(c.video_shape, c.audio_shape, 1, seed=4))
    for steps in (4, 2):
        got = np.asarray(auto.backend.sample(v, a, steps=steps, noise=n))
        want = eager.backend.sample(v, a, steps=steps, noise=n).numpy()
        assert np.abs(got - want).max() < 1e-4, steps
    other = pipeline.build(spec.replace(seed=4), progress=lambda s: None)
    assert other.spec.export_dir != auto.spec.export_dir  # other weights, another export


def test_refusals_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as e:
        pipeline.build(RunSpec(config="tiny", cache_dir=str(tmp_path), backend="torch"))
    assert e.value.field == "checkpoint"
    with pytest.raises(SpecError) as e:
        pipeline.build(RunSpec(config="tiny", random_weights=True, backend="onnxruntime"))
    assert e.value.field == "export_dir"
    assert not (tmp_path / "exports").exists()


def test_steps_auto_needs_an_adaptive_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``steps=None`` (``--steps auto``) is for models that choose their own count: refused up front
    (a usage error, exit 2) for the others, never a failure in the middle of a run."""
    from salrt.cli import main
    from salrt.io import make_clip

    with pytest.raises(SpecError) as e:
        pipeline.build(RunSpec(config="tiny", random_weights=True, backend="torch", steps=None))
    assert e.value.field == "steps" and "adaptive" in str(e.value)
    for model in ("mubic", "avrsp"):  # adaptive, and one-pass: both accept it
        assert pipeline.build(RunSpec(model=model, config="tiny", random_weights=True, backend="torch", steps=None))
    clip = make_clip(tmp_path / "a.mp4", seed=1, seconds=0.2, width=96, height=64)
    args = ["run", str(clip.path), "-o", str(tmp_path / "o"), "--config", "tiny", "--random-weights", "--quiet"]
    assert main([*args, "--backend", "torch", "--steps", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--steps" in err and "adaptive" in err
