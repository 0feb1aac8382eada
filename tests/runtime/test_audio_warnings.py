"""Audio problems that run_stats.json counts are also said, once per input."""

from __future__ import annotations

from pathlib import Path

import av

from salrt import pipeline
from salrt.app.run import RunSettings, run
from salrt.io import make_clip
from salrt.spec import RunSpec

SPEC = RunSpec(model="student", config="tiny", random_weights=True, backend="torch")


def _audio_cut(src: Path, dst: Path, seconds: float) -> Path:
    """``src`` with its audio ending after ``seconds`` (the picture goes on)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        v, a = i.streams.video[0], i.streams.audio[0]
        ov, oa = o.add_stream_from_template(v), o.add_stream_from_template(a)
        for p in i.demux(v, a):
            if p.dts is None:
                continue
            if p.stream is a and p.pts is not None and float(p.pts * p.time_base) > seconds:
                continue
            p.stream = ov if p.stream is v else oa
            o.mux(p)
    return dst


def test_audio_that_ends_early_is_a_warning(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=1, seconds=2.0, width=96, height=64, ground_truth=False)
    cut = _audio_cut(clip.path, tmp_path / "cut.mp4", 0.8)
    pipe = pipeline.build(SPEC)
    stats = run(pipe, [str(cut)], tmp_path / "o", RunSettings(outputs=("npz",)))
    short = stats.media[0]["clips_short_audio"]
    assert short > 20
    said = [w for w in stats.warnings if "less audio than their window" in w]
    assert len(said) == 1 and f"{short} of {clip.n_frames} clips" in said[0]
    whole = run(pipe, [str(clip.path)], tmp_path / "o2", RunSettings(outputs=("npz",)))
    assert not [w for w in whole.warnings if "audio" in w]  # a complete track says nothing
