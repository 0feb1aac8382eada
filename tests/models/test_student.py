"""The real-time student: causal, streaming, within its budgets, its state explicit in every
backend and kept per input by the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import salrt
from salrt.cost import cost_report
from salrt.io import make_clip
from salrt.models.synthetic import load_synthetic_weights


def _student(preset: str = "tiny", seed: int = 0) -> salrt.models.Student:
    return load_synthetic_weights(salrt.load_model("student", config=preset), seed).eval()


def _frames(model: salrt.models.Student, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = model.config
    return torch.randn(1, 3, n, c.height, c.width, generator=g), torch.randn(1, n, *c.audio_shape, generator=g)


@pytest.mark.parametrize("preset", ["s", "m"])
def test_budgets(preset: str) -> None:
    """<= 5 M parameters and <= 1.5 GFLOPs per map at its input size (the issue's budget)."""
    r = cost_report(salrt.models.StudentConfig.preset(preset), model="student")
    assert sum(r.params.values()) <= 5_000_000
    assert r.flops_per_clip <= 1.5e9 and r.steps == 0


def test_causal_and_stateful() -> None:
    """A frame's map depends on earlier frames (state) and never on later ones."""
    m = _student()
    v, a = _frames(m, 4)
    with torch.no_grad():
        maps = m.sequence(v, a)
        v2 = v.clone()
        v2[:, :, 3] += 1.0
        later = m.sequence(v2, a)
        v3 = v.clone()
        v3[:, :, 0] += 1.0
        earlier = m.sequence(v3, a)
    assert maps.shape == (1, 4, 1, m.config.height, m.config.width)
    assert torch.equal(maps[:, :3], later[:, :3]) and not torch.equal(maps[:, 3], later[:, 3])
    assert not torch.equal(maps[:, 2], earlier[:, 2])  # frame 0 reaches frame 2 through the state
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1


def test_step_graph_carries_the_state_like_torch(tmp_path: Path) -> None:
    """The exported step graph with explicit state gives torch's maps frame after frame."""
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.backends.torch_backend import TorchBackend
    from salrt.export.onnx import export_onnx

    m = _student()
    export_onnx(m, tmp_path / "e", batch="1:2:4")
    ort, tb = OnnxRuntimeBackend(str(tmp_path / "e")), TorchBackend(m)
    assert ort.streaming and tb.streaming and ort.state_shapes(2) == tb.state_shapes(2)
    v, a = _frames(m, 3, seed=1)
    v, a = torch.cat([v, v.flip(2)]), torch.cat([a, a.flip(1)])  # two streams
    st_o = {k: np.zeros(s, np.float32) for k, s in ort.state_shapes(2).items()}
    st_t = {k: torch.zeros(s) for k, s in tb.state_shapes(2).items()}
    for k in range(3):
        mo, st_o = ort.step(v[:, :, k : k + 1].numpy(), a[:, k].numpy(), st_o)
        mt, st_t = tb.step(v[:, :, k : k + 1], a[:, k], st_t)
        assert np.abs(mo - mt.numpy()).max() < 1e-5
    with pytest.raises(ValueError, match="batch"):
        m.step(v[:, :, :1], a[:1, 0], torch.zeros(tb.state_shapes(2)["h"]))


def test_run_keeps_one_state_per_input(tmp_path: Path) -> None:
    """salrt run --model student: a map for every frame (stride 1) of each of two inputs sampled in
    shared batches, each equal to that input streamed alone from the start state."""
    from salrt import pipeline
    from salrt.app.distill import stream_maps
    from salrt.app.run import RunSettings, run
    from salrt.io import open_media
    from salrt.io.contract import InputContract
    from salrt.spec import RunSpec

    clips = [make_clip(tmp_path / f"c{k}.mkv", seed=k, seconds=0.6, width=96, height=64) for k in range(2)]
    spec = RunSpec(model="student", config="tiny", random_weights=True, backend="torch")
    pipe = pipeline.build(spec)
    stats = run(pipe, [str(c.path) for c in clips], tmp_path / "o", RunSettings(outputs=("npz",), batch=4))
    assert not stats.errors and stats.state_resets == [0, 0]
    contract = InputContract.of(pipe.model.config)
    for c in clips:
        got = np.load(tmp_path / "o" / f"{c.path.stem}_maps.npz")["maps"]
        assert got.shape[0] == c.n_frames
        decoded = list(open_media(str(c.path), **contract.media_options()))
        video = np.stack([d.video[:, 0] for d in decoded])
        audio = np.stack([d.audio for d in decoded])
        ref = np.clip(np.rint(stream_maps(pipe.model, video, audio) * 255), 0, 255)
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_a_gap_resets_the_state() -> None:
    """Frames that do not follow by the stride (clips dropped, a reconnect) start from zeros."""
    from types import SimpleNamespace

    from salrt.backends.torch_backend import TorchBackend
    from salrt.runtime import RunOptions, Runtime, _Job

    m = _student()
    backend = TorchBackend(m)
    rt = Runtime(backend, ["a", "b"], RunOptions())
    c = m.config
    v, a = _frames(m, 1)

    def job(src: int, idx: int) -> _Job:
        clip = SimpleNamespace(video=v[0].numpy(), audio=a[0, 0].numpy(), target_index=idx)
        return _Job(src, clip, 0.0)

    rt._steps([job(0, 0), job(0, 1), job(1, 0), job(0, 2)])
    rt._steps([job(0, 5), job(1, 1)])
    assert rt.states.resets == [1, 0]
    outs = [rt.outs[0].get_nowait()[1] for _ in range(4)]
    assert np.array_equal(outs[0], outs[3])  # after the gap: the start state again, same frame
    assert not np.array_equal(outs[0], outs[1])
    assert c.frames == 1
