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
