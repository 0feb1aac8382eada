"""The embedding's Session (what libsalrt_embed calls) makes the maps ``salrt run`` makes for
models whose map belongs to the newest frame: the last-frame models and the streaming student
(its state carried from frame to frame)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from salrt import pipeline
from salrt.app.embed import Session
from salrt.app.run import RunSettings, run
from salrt.io import make_clip
from salrt.spec import RunSpec


@pytest.mark.parametrize("model", ["student", "avrsp"])
def test_session_maps_equal_salrt_run(model: str, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=2, seconds=0.6, width=96, height=64, sample_rate=22050, channels=1)
    spec = RunSpec(model=model, config="tiny", random_weights=True, backend="torch", steps=2)
    stats = run(pipeline.build(spec), [str(clip.path)], tmp_path / "o", RunSettings(outputs=("npz",)))
    assert not stats.errors
    want = np.load(tmp_path / "o" / "a_maps.npz")["maps"]

    s = Session(spec, stride=1, fps=25.0)
    with av.open(str(clip.path)) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]).astype(np.float32)
    s.push_audio(samples.tobytes(), 1, 22050)  # the whole track first: every window complete, as for a file
    got = []
    with av.open(str(clip.path)) as c:
        for k, f in enumerate(c.decode(video=0)):
            rgb = f.to_ndarray(format="rgb24")
            s.push_frame(rgb.tobytes(), rgb.shape[1], rgb.shape[0], "rgb24", int(k * 40_000))
            h, w = want.shape[1:]
            _, data, _, _ = s.pull_map(w, h)
            got.append(np.frombuffer(data, np.float32).reshape(h, w))
    got = np.clip(np.rint(np.stack(got) * 255), 0, 255).astype(int)
    assert got.shape == want.shape
    assert np.abs(got - want.astype(int)).max() <= 2  # uint8 rounding of a resized map
