"""Quality metrics: libvmaf's PSNR-Y equals salrt's EW-PSNR with flat weights on a real encode;
the weights decide which errors count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from salrt.io import make_clip
from salrt.rd.media import read_frames, write_reference
from salrt.rd.quality import ew_psnr, libvmaf, luma_planes
from salrt.sinks.roi import RoiEncoderSink


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("quality")
    clip = make_clip(d / "src.mp4", seed=4, width=320, height=192, seconds=0.8)
    frames, fps = read_frames(clip.path)
    write_reference(frames, fps, clip.path, d / "ref.mkv")
    sink = RoiEncoderSink(d / "enc.mkv", fps, None, codec="libx264", crf=34, roi=None)
    for i, f in enumerate(frames):
        sink.write(i, i / fps, f, np.zeros((2, 2)))
    sink.close()
    return d, frames


def test_reference_is_lossless_with_audio(encoded) -> None:
    import av

    d, frames = encoded
    planes = list(luma_planes(d / "ref.mkv"))
    assert len(planes) == len(frames) and all(np.array_equal(p, f.luma()) for p, f in zip(planes, frames))
    with av.open(str(d / "ref.mkv")) as c:
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "pcm_s16le"


def test_libvmaf_psnr_equals_flat_ew_psnr(encoded) -> None:
    d, frames = encoded
    m = libvmaf(d / "enc.mkv", d / "ref.mkv")
    ref = [f.luma() for f in frames]
    flat = ew_psnr(ref, luma_planes(d / "enc.mkv"), {"flat": lambda i: np.ones(ref[0].shape)})["flat"]
    assert m["frames"] == len(frames)
    assert flat == pytest.approx(m["psnr_y"], abs=1e-4)
    assert 20 < m["psnr_y"] < 50 and 0.5 < m["ssim"] < 1 and 0 < m["vmaf"] < 100
    same = libvmaf(d / "ref.mkv", d / "ref.mkv")
    assert same["vmaf"] > 97 and same["ssim"] == pytest.approx(1.0)


def test_weights_decide_which_errors_count() -> None:
    ref = [np.full((32, 32), 100, np.uint8)]
    dec = ref[0].copy()
    dec[:, :16] += 10  # errors in the left half only
    left = np.zeros((32, 32))
    left[:, :16] = 1
    res = ew_psnr(ref, iter([dec]), {"left": lambda i: left, "right": lambda i: 1 - left})
    assert res["left"] == pytest.approx(10 * np.log10(255**2 / 100))
    assert res["right"] > 100  # no error where the weight is
    with pytest.raises(Exception, match="frames"):
        ew_psnr(ref + ref, iter([dec]), {"left": lambda i: left})


def test_path_is_written_for_reports(encoded) -> None:
    d, _ = encoded
    assert Path(d / "enc.mkv").stat().st_size > 0
