"""Saliency -> QP offsets, ROI encoding through real encoders, and the C embedding (CMake)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from salrt.app.encode import block_qps, encode_with_maps, region_quality
from salrt.cli import main
from salrt.errors import SalrtError
from salrt.io import make_clip
from salrt.models import MODELS
from salrt.roi import QpMapper, RoiConfig, block_saliency, ffmpeg_regions, x264_quant_offsets

ROOT = Path(__file__).resolve().parents[2]


def test_mapping_properties() -> None:
    yy, xx = np.mgrid[0:90, 0:160]
    sal = np.exp(-((yy - 30) ** 2 + (xx - 100) ** 2) / 200.0)
    m = QpMapper((180, 320), 16, RoiConfig(strength=4, max_offset=6, floor=3, smoothing=0))
    off = m(sal)
    assert off.shape == (12, 20) and off.dtype == np.float32
    assert abs(float(off.mean())) < 0.3 and off.min() >= -6 - 1e-6 and off.max() <= 3 + 1e-6
    peak = np.unravel_index(block_saliency(sal, (180, 320), 16).argmax(), off.shape)
    assert off[peak] == off.min() < 0  # the most salient block gets the finest quantisation
    assert QpMapper((1080, 1920), 64)(sal).shape == (17, 30)  # AV1 superblocks, partial edge blocks
    sm = QpMapper((180, 320), 16, RoiConfig(smoothing=0.75))
    first = sm(sal)
    second = sm(np.roll(sal, 60, axis=1))
    np.testing.assert_allclose(
        second,
        0.75 * first + 0.25 * QpMapper((180, 320), 16, RoiConfig(smoothing=0))(np.roll(sal, 60, axis=1)),
        atol=1e-5,
    )
    with pytest.raises(SalrtError):
        RoiConfig(smoothing=1.0)


def test_encoder_formats() -> None:
    off = np.array([[-4.0, -4.0, 0.0, 2.0], [0.1, -2.0, -2.0, 2.0]], np.float32)
    assert np.frombuffer(x264_quant_offsets(off), np.float32).tolist() == off.ravel().tolist()
    regions = ffmpeg_regions(off, 16, (32, 64), 51.0, levels=9, min_abs=0.5)
    first = regions[0]
    assert (first["top"], first["bottom"], first["left"], first["right"]) == (0, 16, 0, 32)
    assert first["qoffset"] == pytest.approx(-4 / 51)  # FFmpeg's libx264/libx265: qoffset 1 = 51 QP
    assert all(-1 <= r["qoffset"] <= 1 for r in regions)
    assert not any(r["top"] == 16 and r["left"] == 0 for r in regions)  # |0.1| < min_abs: no region


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    return make_clip(tmp_path_factory.mktemp("roi") / "src.mp4", seed=3, width=320, height=192, seconds=1.2)


def test_x264_qps_follow_the_offsets_and_quality_moves(clip, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mp4"
    roi = tmp_path / "roi.mp4"
    encode_with_maps(str(clip.path), plain, clip.saliency, crf=30, roi=None)
    sink = encode_with_maps(str(clip.path), roi, clip.saliency, crf=30, roi=RoiConfig(strength=3))
    q = np.stack(block_qps(roi))
    off = np.stack(sink.offsets)
    assert q.shape == off.shape
    assert q[off < -1].mean() < q[off >= 0].mean() - 2  # the encoder really changed its QPs
    qp_plain = np.stack(block_qps(plain))
    assert q[off < -1].mean() < qp_plain[off < -1].mean()
    a, b = region_quality(clip.path, plain, clip.saliency), region_quality(clip.path, roi, clip.saliency)
    assert b["psnr_salient"] > a["psnr_salient"] + 1.0
    with av.open(str(roi)) as c:
        assert len(c.streams.audio) == 1 and sum(1 for _ in c.decode(video=0)) == clip.n_frames


def test_x265_encodes_with_roi(clip, tmp_path: Path) -> None:
    out = tmp_path / "hevc.mp4"
    encode_with_maps(str(clip.path), out, clip.saliency, codec="libx265", crf=30)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "hevc"
        assert sum(1 for _ in c.decode(video=0)) == clip.n_frames


def test_cli_encode(clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "maps.npy", clip.saliency)
    assert (
        main(["encode", str(clip.path), "-o", str(tmp_path / "a.mp4"), "--maps", str(tmp_path / "maps.npy"), "--quiet"])
        == 0
    )
    assert (
        main(
            [
                "encode",
                str(clip.path),
                "-o",
                str(tmp_path / "b.mp4"),
                "--config",
                "tiny",
                "--random-weights",
                "--steps",
                "1",
                "--stride",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    with av.open(str(tmp_path / "b.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == clip.n_frames
    capsys.readouterr()
    for args, code, needle in (
        (["--codec", "mpeg2video"], 2, "unsupported codec"),
        (["--maps", str(tmp_path / "no.npy")], 1, "cannot read"),
        ([], 2, "no --checkpoint"),
    ):
        assert main(["encode", str(clip.path), "-o", str(tmp_path / "x.mp4"), "--config", "tiny", *args]) == code
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0


def _has_x264() -> bool:
    return shutil.which("pkg-config") is not None and subprocess.run(["pkg-config", "--exists", "x264"]).returncode == 0


def _missing_prerequisite() -> str | None:
    """Why the C library cannot be built here (None: it can): every prerequisite checked first, so a
    machine without one skips with the reason instead of failing in CMake."""
    import sysconfig

    if shutil.which("cmake") is None:
        return "cmake not installed (.ci/run installs it)"
    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        return "no C compiler"
    if not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        return "no Python headers (python3-dev) to embed CPython"
    return None


@pytest.fixture(scope="module")
def c_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    build = tmp_path_factory.mktemp("cbuild")
    import sys

    examples = "ON" if _has_x264() else "OFF"  # the example encoder needs libx264; the library does not
    cfg = subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build),
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-DSALRT_BUILD_EXAMPLES={examples}",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert cfg.returncode == 0, cfg.stdout[-2000:] + cfg.stderr[-2000:]
    b = subprocess.run(["cmake", "--build", str(build), "-j2"], capture_output=True, text=True)
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-2000:]
    return build


@pytest.mark.parametrize("model", sorted(MODELS))
def test_c_api(c_build: Path, model: str) -> None:
    """Every model of the registry through the C API (tiny config, random weights)."""
    r = subprocess.run(
        [str(c_build / "salrt_api_test"), model],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_c_example_encoder(c_build: Path, tmp_path: Path) -> None:
    if not _has_x264():
        pytest.skip("libx264 (pkg-config x264) not installed: the example encoder is not built (.ci/run installs it)")
    clip = make_clip(tmp_path / "s.mp4", seed=5, width=160, height=96, seconds=0.8)
    yuv = tmp_path / "s.yuv"
    with av.open(str(clip.path)) as c, yuv.open("wb") as f:
        for fr in c.decode(video=0):
            f.write(fr.reformat(format="yuv420p").to_ndarray().tobytes())
    out, dump = tmp_path / "o.264", tmp_path / "off.bin"
    r = subprocess.run(
        [
            str(c_build / "roi_x264"),
            str(yuv),
            "160",
            "96",
            "25",
            str(out),
            '{"config": "tiny", "random_weights": true, "steps": 1}',
            "6",
            str(dump),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    q = np.stack(block_qps(out))
    off = np.fromfile(dump, np.float32).reshape(q.shape)
    assert q.shape[0] == clip.n_frames
    assert q[off < -0.5].mean() < q[off > 0.5].mean()  # QPs follow the saliency offsets
    bad = subprocess.run(
        [str(c_build / "roi_x264"), str(yuv), "160", "96", "25", str(out), '{"config": "tiny"}'],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "checkpoint" in bad.stderr and "Traceback" not in bad.stderr
