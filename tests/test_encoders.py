"""salrt.encoders: each encoder's ROI route as FFmpeg's wrappers apply it (measured, not assumed)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from salrt.encoders import ENCODERS, encoder, merge_options, refusal, roi_config, roi_encoders
from salrt.errors import UsageError
from salrt.sinks.files import keep_scheduling


def _encode(path: Path, codec: str, options: dict[str, str], roi: str | None, n: int = 3) -> None:
    import av

    h, w = 128, 256
    base = np.full((h, w, 3), 128, np.uint8)
    base[::2] += 20
    with av.open(str(path), "w") as c, keep_scheduling():  # SVT-AV1 would leave this process SCHED_FIFO
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt, s.options = w, h, "yuv420p", options
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.roll(base, i, axis=1), format="rgb24").reformat(format="yuv420p")
            f.pts = i
            if roi:
                g = av.filter.Graph()
                src = g.add_buffer(width=w, height=h, format="yuv420p", time_base=Fraction(1, 25))
                a = g.add("addroi", f"x=0:y=0:w={w // 2}:h={h}:qoffset={roi}:clear=0")
                src.link_to(a)
                sink = g.add("buffersink")
                a.link_to(sink)
                g.configure()
                g.push(f)
                f = g.pull()
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_x264_applies_qoffset_times_51(tmp_path: Path) -> None:
    """FFmpeg's libx264 wrapper: qoffset 1/10 raises the block QP by 5.1 (-> 5): the scale salrt
    divides by (the 25 it used before made every offset twice the configured one)."""
    from salrt.app.encode import block_qps

    opts = {"crf": "30", "preset": "veryfast", "x264-params": "mbtree=0:aq-strength=0.0001"}
    _encode(tmp_path / "plain.mp4", "libx264", opts, None)
    _encode(tmp_path / "roi.mp4", "libx264", opts, "1/10")
    plain, roi = block_qps(tmp_path / "plain.mp4")[0], block_qps(tmp_path / "roi.mp4")[0]
    left = roi[:, : roi.shape[1] // 2] - plain[:, : roi.shape[1] // 2]
    assert np.allclose(left, round(0.1 * ENCODERS["libx264"].roi.qp_range))
    assert np.array_equal(roi[:, roi.shape[1] // 2 :], plain[:, roi.shape[1] // 2 :])


def _size(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(p.size for p in c.demux(video=0) if p.size)


def test_vp9_takes_roi_and_svtav1_ignores_it(tmp_path: Path) -> None:
    """The basis of the table: libvpx-vp9 (real-time mode, aq-mode 0) changes with ROI side data;
    FFmpeg's libsvtav1 produces the same bitstream size with or without it."""
    vp9 = ENCODERS["libvpx-vp9"].encode_options(roi=True, crf=40)
    _encode(tmp_path / "v0.webm", "libvpx-vp9", vp9, None, n=4)
    _encode(tmp_path / "v1.webm", "libvpx-vp9", vp9, "-1/2", n=4)
    assert _size(tmp_path / "v1.webm") > 1.2 * _size(tmp_path / "v0.webm")
    av1 = ENCODERS["libsvtav1"].encode_options(roi=False, crf=40)
    _encode(tmp_path / "a0.mkv", "libsvtav1", av1, None, n=4)
    _encode(tmp_path / "a1.mkv", "libsvtav1", av1, "-1/2", n=4)
    assert _size(tmp_path / "a0.mkv") == _size(tmp_path / "a1.mkv")


def test_refusals_and_ranges() -> None:
    assert roi_encoders() == ["libx264", "libx265", "libvpx-vp9"]
    msg = refusal("libsvtav1")
    assert msg.startswith("libsvtav1: ") and "libx264, libx265, libvpx-vp9" in msg
    with pytest.raises(UsageError, match="libsvtav1"):
        ENCODERS["libsvtav1"].encode_options(roi=True, crf=30)
    with pytest.raises(UsageError, match="0 to 51"):
        encoder("libx264").rate_options(60)
    assert encoder("libvpx-vp9").rate_options(40) == {"crf": "40", "b": "0"}
    with pytest.raises(UsageError, match="unsupported codec 'h263'"):
        encoder("h263")


def test_options_merge_and_roi_defaults() -> None:
    merged = merge_options({"x265-params": "log-level=error:aq-mode=2"}, {"x265-params": "aq-mode=3"})
    assert merged == {"x265-params": "log-level=error:aq-mode=3"}
    opts = ENCODERS["libx265"].encode_options(roi=False, variant="aq3", crf=30)
    assert opts["x265-params"] == "log-level=error:aq-mode=3" and opts["crf"] == "30"
    assert ENCODERS["libvpx-vp9"].encode_options(roi=True, crf=30)["aq-mode"] == "0"
    cfg = roi_config("libvpx-vp9", strength=5.0, floor=None)
    assert cfg.strength == 5.0 and cfg.floor == ENCODERS["libvpx-vp9"].roi.config.floor
