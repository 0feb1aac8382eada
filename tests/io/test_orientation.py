"""Display orientation (phone video): the display matrix is applied at decode, exactly as FFmpeg's
autorotate does, and every output (maps at source size, overlay, ROI encode) is upright."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from salrt.cli import main
from salrt.io import open_media, probe
from salrt.io.orientation import Orientation

TINY = ["--config", "tiny", "--random-weights", "--steps", "1"]
needs_display_rotation = pytest.mark.skipif(
    not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
    reason="writing a display matrix needs PyAV >= 17 (VideoStream.set_display_rotation)",
)


def _pattern(h: int = 48, w: int = 80) -> np.ndarray:
    """(h, w, 3) uint8 of 16x16 blocks in distinct colours: no rotation or flip maps it onto itself."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 4, size=(h // 16, w // 16, 3)).astype(np.uint8) * 80
    return np.kron(blocks, np.ones((16, 16, 1), np.uint8))


def _write(
    path: Path,
    deg: int,
    hflip: bool = False,
    vflip: bool = False,
    frames: int = 6,
    codec: str = "libx264rgb",
    img: np.ndarray | None = None,
) -> np.ndarray:
    """Writes ``frames`` copies of ``img`` (default the pattern) with a display matrix; returns ``img``."""
    img = _pattern() if img is None else np.ascontiguousarray(img)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25, options={"qp": "0"} if codec == "libx264rgb" else {"crf": "10"})
        s.width, s.height = img.shape[1], img.shape[0]
        s.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        s.set_display_rotation(deg, hflip=hflip, vflip=vflip)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return img


@needs_display_rotation
@pytest.mark.parametrize("deg", [0, 90, 180, -90])
@pytest.mark.parametrize("flips", [(False, False), (True, False), (False, True)])
def test_upright_equals_ffmpeg_autorotate(tmp_path: Path, deg: int, flips: tuple[bool, bool]) -> None:
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    path = tmp_path / "r.mp4"
    _write(path, deg, *flips, frames=1)
    with av.open(str(path)) as c:
        f = next(c.decode(video=0))
        up = Orientation.of(f).apply(f.to_ndarray(format="rgb24"))
    r = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    )
    ref = np.frombuffer(r.stdout, np.uint8)
    assert ref.size == up.size
    assert np.array_equal(ref.reshape(up.shape), up)


def test_orientations_and_their_names() -> None:
    a = np.arange(12).reshape(3, 4)
    assert Orientation.from_matrix([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30]).describe() == "rotated 90 degrees"
    o = Orientation.from_matrix([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30])
    assert np.array_equal(o.apply(a), np.rot90(a)) and o.size(4, 3) == (3, 4)
    assert Orientation.from_matrix([-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]).describe() == "mirrored"
    assert Orientation().apply(a) is a  # the identity copies nothing
    # yuv420p planes turn together: the upright packed frame equals the upright RGB's conversion
    yuv = av.VideoFrame.from_ndarray(_pattern(), format="rgb24").reformat(format="yuv420p").to_ndarray()
    turned = o.apply_yuv420p(yuv, 80, 48)
    assert turned.shape == (80 * 3 // 2, 48)
    assert np.array_equal(turned[:80], np.rot90(yuv[:48]))
    with pytest.raises(ValueError, match="multiple of 90"):
        Orientation.from_matrix([46341, 46341, 0, -46341, 46341, 0, 0, 0, 1 << 30])  # 45 degrees
    with pytest.raises(ValueError, match="9 entries"):
        Orientation.from_matrix([1, 0, 0, 1])


@needs_display_rotation
def test_a_portrait_phone_video_runs_upright(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Coded 80x48 landscape, displayed rotated 90 degrees: the model gets the upright picture, the
    info and --source-size maps are 48x80 (portrait), the overlay is portrait and a warning says so."""
    src = tmp_path / "phone.mp4"
    img = _write(src, 90)
    upright = np.rot90(img)
    info = probe(str(src))
    assert (info.width, info.height, info.orientation) == (48, 80, "rotated 90 degrees")
    plain = tmp_path / "plain.mp4"
    _write(plain, 0, img=upright)  # the same picture coded upright, no display matrix
    opts = dict(clip_len=2, keep_frames=True, size=(80, 48), resize="fast")
    with pytest.warns(UserWarning, match="rotated 90 degrees"):
        clips = list(open_media(str(src), **opts))
    expected = list(open_media(str(plain), **opts))
    assert len(clips) == len(expected) == 6
    for got, want in zip(clips, expected):
        assert got.video.shape == (3, 2, 80, 48)
        assert np.array_equal(got.video, want.video)  # the model sees the upright picture
    kept = clips[0].target_frame
    assert kept.shape == (80, 48, 3) and kept.format == "yuv420p"
    want = expected[0].target_frame.data
    # luma exact; chroma is subsampled before the turn here and after it there (edges differ)
    assert np.array_equal(kept.data[:80], want[:80])
    assert np.abs(kept.rgb().astype(int) - expected[0].target_frame.rgb()).mean() < 6  # a wrong turn: 75-89
    rc = main(["run", str(src), "-o", str(tmp_path / "o"), "--outputs", "npy,overlay", "--source-size", *TINY])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "rotated 90 degrees" in err and err.count("\n") < 20
    maps = np.load(tmp_path / "o" / "phone_maps.npy")
    assert maps.shape[1:] == (80, 48)
    with av.open(str(tmp_path / "o" / "phone_overlay.mp4")) as c:
        f = next(c.decode(video=0))
        assert (f.width, f.height) == (48, 80) and Orientation.of(f).identity


@needs_display_rotation
def test_encode_writes_the_upright_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "phone.mp4"
    img = _write(src, -90, codec="libx264")
    out = tmp_path / "enc.mp4"
    rc = main(["encode", str(src), "-o", str(out), *TINY])
    assert rc == 0, capsys.readouterr().err
    with av.open(str(out)) as c:
        f = next(c.decode(video=0))
        assert (f.width, f.height) == (48, 80) and Orientation.of(f).identity
        got = f.to_ndarray(format="rgb24").astype(int)
    assert np.abs(got - np.rot90(img, -1)).mean() < 12  # the picture, not just the size, is upright
