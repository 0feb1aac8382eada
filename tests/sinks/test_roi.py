"""The ROI encoder sink: the offsets' smoothing restarts at a scene cut (a new shot never carries
the previous shot's map), and the cut detector fires at cuts only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salrt.io import make_clip
from salrt.rd.media import read_frames
from salrt.roi import QpMapper, RoiConfig, SceneCuts
from salrt.sinks.roi import RoiEncoderSink


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("shots")
    a = make_clip(d / "a.mp4", seed=1, width=320, height=192, seconds=0.6, sample_rate=None)
    b = make_clip(d / "b.mp4", seed=2, width=320, height=192, seconds=0.6, sample_rate=None)
    fa, fps = read_frames(a.path)
    fb, _ = read_frames(b.path)
    return fa + fb, fps, len(fa)


def test_scene_cuts_fire_at_the_cut_only(two_shots) -> None:
    frames, _, n_a = two_shots
    detect = SceneCuts()
    cuts = [i for i, f in enumerate(frames) if detect(f.luma())]
    assert cuts == [n_a]
    flash = SceneCuts()
    y = np.full((90, 160), 60, np.uint8)
    assert not flash(y) and flash(np.full((90, 160), 220, np.uint8))  # a hard change of content


def test_mapper_reset_forgets_the_previous_shot() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.random((36, 64)), rng.random((36, 64))
    smoothed = QpMapper((72, 128), 16, RoiConfig(smoothing=0.75))
    smoothed(first)
    fresh = QpMapper((72, 128), 16, RoiConfig(smoothing=0.75))(second)
    assert not np.allclose(smoothed(second), fresh)
    smoothed2 = QpMapper((72, 128), 16, RoiConfig(smoothing=0.75))
    smoothed2(first)
    assert np.allclose(smoothed2(second, cut=True), fresh)


def test_sink_restarts_smoothing_at_the_cut(two_shots, tmp_path: Path) -> None:
    frames, fps, n_a = two_shots
    left, right = np.zeros((24, 40), np.float32), np.zeros((24, 40), np.float32)
    left[:, :10], right[:, 30:] = 1, 1  # shot A looks left, shot B right
    cfg = RoiConfig(smoothing=0.9)
    sink = RoiEncoderSink(tmp_path / "o.mp4", fps, None, codec="libx264", crf=30, roi=cfg)
    for i, f in enumerate(frames):
        sink.write(i, i / fps, f, left if i < n_a else right)
    sink.close()
    assert sink.cuts == 1
    fresh = QpMapper((192, 320), 16, cfg)(right)
    assert np.allclose(sink.offsets[n_a], fresh)  # the first frame of shot B: no trace of shot A
    assert sink.offsets[n_a - 1][:, :3].mean() < 0 < sink.offsets[n_a][:, :3].mean()  # A's left side finer, B's not


_X265_STRETCH = """
import sys
import numpy as np
from pathlib import Path
from salrt.roi import RoiConfig
from salrt.sinks.roi import RoiEncoderSink

sink = RoiEncoderSink(Path(sys.argv[1]), 25.0, None, codec="libx265", crf=28.0, roi=RoiConfig(3, 8, 4, smoothing=0))
rng = np.random.default_rng(0)
h, w = 144, 176
for i in range(90):
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    sal = np.full((h, w), 0.5, np.float32)  # flat: no block stands out, no region
    if i < 6 or i >= 60:  # a salient patch before and after the flat stretch
        sal[:32, :32] = 1.0
    sink.write(i, i / 25, frame, sal)
sink.close()
"""


def test_x265_offsets_after_a_stretch_without(tmp_path: Path) -> None:
    """x265 crashed (SIGSEGV) when a picture with quant offsets followed a stretch without (its frame
    pool's buffers): every picture now carries offsets. Run in a child so a crash fails the test."""
    import subprocess
    import sys

    out = tmp_path / "x.mkv"
    r = subprocess.run([sys.executable, "-c", _X265_STRETCH, str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
    assert len(read_frames(out)[0]) == 90


def test_an_av1_encode_leaves_the_scheduling_policy_alone(tmp_path: Path) -> None:
    """SVT-AV1 makes the thread that opens it SCHED_FIFO (as root); processes started afterwards
    inherited it and their BLAS threads starved each other (a training cache build hung)."""
    import os

    if not hasattr(os, "sched_getscheduler"):
        pytest.skip("no POSIX scheduling policies on this platform")
    before = os.sched_getscheduler(0)
    sink = RoiEncoderSink(tmp_path / "a.mkv", 25.0, None, codec="libsvtav1", crf=40.0, roi=None)
    for i in range(3):
        sink.write(i, i / 25, np.zeros((128, 256, 3), np.uint8), np.zeros((128, 256), np.float32))
    sink.close()
    assert os.sched_getscheduler(0) == before
